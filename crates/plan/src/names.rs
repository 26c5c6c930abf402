//! The plan's two names: `service`, an identifier that reaches routes, files and PromQL,
//! and `name`, a launch's title that is only shown.

use crate::decode::{Decoder, Node, location};

/// The longest service name: a DNS label's length.
pub const MAX_SERVICE_NAME_LEN: usize = 63;

/// The longest launch name, in characters.
pub const MAX_LAUNCH_NAME_LEN: usize = 128;

/// A service name identifies: it names the builtin router's route and the deployment
/// log files, is substituted into PromQL as `{{service}}` and exported as
/// `LIFTOFF_SERVICE`. So `[A-Za-z0-9._-]{1,63}`, nothing that needs escaping anywhere.
pub(crate) fn service_name(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<String> {
    let name = dec.string(node, "service")?;
    let rule =
        format!("a service name is 1 to {MAX_SERVICE_NAME_LEN} letters, digits, `.`, `_` or `-`");
    let bad = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if let Some((offset, c)) = bad {
        let at = dec.locate_offset(node, &name, offset);
        dec.error_hint(
            at,
            format!(
                "service: `{}` is not a service name: it holds `{}`",
                shorten(&name),
                shown(c)
            ),
            rule,
        );
        return None;
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        dec.error_hint(
            location(node),
            format!(
                "service: `{}` is {} characters long, more than {MAX_SERVICE_NAME_LEN}",
                shorten(&name),
                name.len()
            ),
            rule,
        );
        return None;
    }
    Some(name)
}

/// A launch name is only shown (status, history, notifications, reports), never used
/// to find anything: any text, but on one line and short enough to read there.
pub(crate) fn launch_name(dec: &mut Decoder<'_>, node: &Node<'_>) -> Option<String> {
    let name = dec.string(node, "name")?;
    let rule = format!("a launch name is one line of at most {MAX_LAUNCH_NAME_LEN} characters");
    if let Some((offset, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        let at = dec.locate_offset(node, &name, offset);
        dec.error_hint(
            at,
            format!(
                "name: `{}` holds the control character `{}`",
                shorten(&name),
                shown(c)
            ),
            rule,
        );
        return None;
    }
    let chars = name.chars().count();
    if chars > MAX_LAUNCH_NAME_LEN {
        dec.error_hint(
            location(node),
            format!(
                "name: `{}` is {chars} characters long, more than {MAX_LAUNCH_NAME_LEN}",
                shorten(&name)
            ),
            rule,
        );
        return None;
    }
    Some(name)
}

/// At most 40 characters of `s`, control characters escaped, for an error message.
fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(40).map(shown).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// A character as an error message shows it: `\0`, `\n`, `\u{7f}` for control characters.
fn shown(c: char) -> String {
    if c.is_control() {
        c.escape_debug().to_string()
    } else {
        c.to_string()
    }
}
