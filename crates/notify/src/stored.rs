//! A [`Notice`] as the store's outbox keeps it until it is delivered: JSON, version 1.
//!
//! A compatibility boundary (a notice written by one build may be delivered by the next,
//! after an upgrade), so the conversion is explicit: fields are only added, a reader
//! takes what it knows, and the notice's `id` is not kept (it is the idempotency key,
//! derived from the outbox row when the notice is delivered). Holds no secret: a
//! notice carries what messages may show, never a channel's URL, key or password.

use std::time::Duration;

use liftoff_plan::Weight;
use liftoff_plan::notify::Event;
use serde_json::{Value, json};

use crate::{Figures, Notice, VersionFigures};

const VERSION: u64 = 1;

impl Notice {
    /// The notice as the outbox stores it.
    pub fn to_stored(&self) -> String {
        let version = |v: &Option<VersionFigures>| {
            v.as_ref().map(|v| {
                json!({
                    "requests": v.requests,
                    "error_rate": v.error_rate.filter(|x| x.is_finite()),
                    "p95_ms": v.p95_ms.filter(|x| x.is_finite()),
                    "rps": Some(v.rps).filter(|x| x.is_finite()),
                })
            })
        };
        let millis =
            |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        json!({
            "version": VERSION,
            "event": self.event.name(),
            "at": self.at.to_string(),
            "service": self.service,
            "launch_id": self.launch_id,
            "launch_name": self.launch_name,
            "step": self.step,
            "weight_bp": self.weight.map(Weight::basis_points),
            "figures": self.figures.as_ref().map(|f| json!({
                "stable": version(&f.stable),
                "candidate": version(&f.candidate),
            })),
            "elapsed_ms": millis(self.elapsed),
            "approver": self.approver,
            "role": self.role,
            "reason": self.reason,
            "verdict": self.verdict,
            "next_checkpoint_ms": millis(self.next_checkpoint),
        })
        .to_string()
    }

    /// A stored notice back, with `id` as its id. `Err` says what does not read.
    pub fn from_stored(id: &str, text: &str) -> Result<Notice, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        if v["version"].as_u64() != Some(VERSION) {
            return Err(format!("unknown version {}", v["version"]));
        }
        let text = |key: &str| v[key].as_str().map(str::to_string);
        let required = |key: &str| text(key).ok_or_else(|| format!("no `{key}`"));
        let event = required("event")?;
        let event = Event::from_name(&event).ok_or_else(|| format!("unknown event `{event}`"))?;
        let at = required("at")?
            .parse()
            .map_err(|e| format!("`at` is not a time: {e}"))?;
        let millis = |key: &str| v[key].as_u64().map(Duration::from_millis);
        let version = |f: &Value| {
            f.is_object().then(|| VersionFigures {
                requests: f["requests"].as_u64().unwrap_or(0),
                error_rate: f["error_rate"].as_f64(),
                p95_ms: f["p95_ms"].as_f64(),
                rps: f["rps"].as_f64().unwrap_or(f64::NAN),
            })
        };
        let figures = &v["figures"];
        let mut n = Notice::new(
            id,
            event,
            at,
            required("service")?,
            required("launch_id")?,
            required("launch_name")?,
        );
        n.step = text("step");
        n.weight = v["weight_bp"]
            .as_u64()
            .and_then(|bp| u16::try_from(bp).ok())
            .and_then(Weight::from_basis_points);
        n.figures = figures.is_object().then(|| Figures {
            stable: version(&figures["stable"]),
            candidate: version(&figures["candidate"]),
        });
        n.elapsed = millis("elapsed_ms");
        n.approver = text("approver");
        n.role = text("role");
        n.reason = text("reason");
        n.verdict = text("verdict");
        n.next_checkpoint = millis("next_checkpoint_ms");
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_notice_reads_back_as_it_was() {
        let mut n = Notice::new(
            "ignored",
            Event::Checkpoint,
            "2026-12-06T10:00:00.123Z".parse().unwrap(),
            "shop",
            "a1b2c3",
            "shop 2.0",
        );
        n.step = Some("watch".into());
        n.weight = Weight::from_basis_points(2_550);
        n.figures = Some(Figures {
            stable: Some(VersionFigures {
                requests: 120,
                error_rate: Some(0.01),
                p95_ms: Some(41.5),
                rps: 2.0,
            }),
            candidate: None,
        });
        n.elapsed = Some(Duration::from_millis(90_500));
        n.reason = Some("why".into());
        n.verdict = Some("passed".into());
        n.next_checkpoint = Some(Duration::from_secs(3600));
        let back = Notice::from_stored("key-1", &n.to_stored()).unwrap();
        assert_eq!(back.id, "key-1");
        assert_eq!(
            back,
            Notice {
                id: "key-1".into(),
                ..n
            }
        );
        assert!(Notice::from_stored("k", r#"{"version":2}"#).is_err());
    }
}
