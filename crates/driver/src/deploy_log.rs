//! The deployment log: one human-readable file per launch, a line per journal record
//! with its UTC time, written as the launch runs (the journal keeps the structured
//! record; this is the file an operator tails or attaches to a ticket).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub(crate) struct DeploymentLog {
    path: Option<PathBuf>,
}

impl DeploymentLog {
    pub fn disabled() -> Self {
        Self { path: None }
    }

    /// `<dir>/<service>-<launch id>-<UTC YYYY-MM-DD_HH-MM-SS of its creation>.log`.
    pub fn new(dir: &Path, service: &str, id: &str, created_at: &str) -> Self {
        let stamp = created_at
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime("%Y-%m-%d_%H-%M-%S").to_string())
            .unwrap_or_else(|_| "unknown-time".into());
        let service: String = service
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            path: Some(dir.join(format!("{service}-{id}-{stamp}.log"))),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Append lines; a log that cannot be written is reported, never fails the launch.
    pub async fn append(&self, lines: Vec<String>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(&path)?;
            let mut text = String::new();
            for line in lines {
                text.push_str(&line);
                text.push('\n');
            }
            file.write_all(text.as_bytes())
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the deployment log"),
            Err(e) => tracing::warn!(error = %e, "deployment log writer failed"),
        }
    }
}
