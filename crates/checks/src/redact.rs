/// Replaces the values of a plan's variables (secrets) in free text such as command
/// output, before it is journaled or shown.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

pub const REDACTED: &str = "[redacted]";

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().map(str::to_string).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_secret_wins() {
        let r = Redactor::new(["hunter2", "hunter2-and-more"]);
        assert_eq!(
            r.redact("a hunter2-and-more b hunter2"),
            "a [redacted] b [redacted]"
        );
    }
}
