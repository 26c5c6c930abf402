//! Atlassian Statuspage: the launch as a scheduled maintenance, and a component's status.
//!
//! Calls (`Authorization: OAuth <api key>`, JSON bodies):
//! - `POST   /v1/pages/{page}/incidents` `{"incident": {name, status: "in_progress",
//!   scheduled_for, scheduled_until, body, component_ids}}` opens the maintenance;
//! - `PATCH  /v1/pages/{page}/incidents/{id}` `{"incident": {status?, body}}` posts an
//!   update (and `completed` ends it);
//! - `PATCH  /v1/pages/{page}/components/{component}` `{"component": {status}}`.

use liftoff_plan::notify::StatuspageSpec;
use reqwest::Method;
use serde_json::json;

use crate::deliver::{Notifier, Outcome, authorization};
use crate::render::StatuspageUpdate;

/// What a launch has open on its status page: the maintenance opened by an earlier
/// delivery ([`crate::Delivery::incident_id`]). Journal it; pass it back on every
/// delivery of the launch, so updates go to that maintenance instead of opening another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatuspageState {
    pub incident_id: Option<String>,
}

/// One delivery's calls, resumable: a retry does not repeat what already succeeded
/// (a second maintenance must never be opened because the component call failed).
pub(crate) struct StatuspageRun<'a> {
    spec: &'a StatuspageSpec,
    update: &'a StatuspageUpdate,
    incident: Option<String>,
    opened: Option<String>,
    incident_done: bool,
    component_done: bool,
    nothing_to_do: bool,
    done: Vec<String>,
}

impl<'a> StatuspageRun<'a> {
    pub(crate) fn new(
        spec: &'a StatuspageSpec,
        update: &'a StatuspageUpdate,
        state: &StatuspageState,
    ) -> Self {
        let incident = state.incident_id.clone();
        let incident_done = !update
            .incident
            .as_ref()
            .is_some_and(|change| incident.is_some() || change.open);
        let component_done = update.component.is_none() || spec.component_id.is_none();
        Self {
            spec,
            update,
            incident,
            opened: None,
            incident_done,
            component_done,
            nothing_to_do: incident_done && component_done,
            done: Vec::new(),
        }
    }

    pub(crate) fn nothing_to_do(&self) -> bool {
        self.nothing_to_do
    }

    pub(crate) fn opened(&self) -> Option<String> {
        self.opened.clone()
    }

    /// The delivery's detail: what succeeded, then what failed last.
    pub(crate) fn detail(&self, delivered: bool, last: &str) -> String {
        if delivered || self.done.is_empty() {
            last.to_string()
        } else {
            format!("{}; {last}", self.done.join("; "))
        }
    }

    fn base(&self) -> String {
        format!(
            "{}/v1/pages/{}",
            self.spec.api_url.expose().trim_end_matches('/'),
            self.spec.page_id.expose()
        )
    }

    pub(crate) async fn attempt(&mut self, notifier: &Notifier, key: &str) -> Outcome {
        let headers = authorization(self.spec.api_key.expose(), key);
        if !self.incident_done
            && let Some(change) = &self.update.incident
        {
            let (method, url, body) = match &self.incident {
                Some(id) if valid_id(id) => {
                    let mut incident = json!({ "body": change.body });
                    if let Some(status) = change.status {
                        incident["status"] = json!(status);
                    }
                    (
                        Method::PATCH,
                        format!("{}/incidents/{id}", self.base()),
                        json!({ "incident": incident }),
                    )
                }
                Some(_) => {
                    return Outcome::Fail(
                        "the launch's maintenance id is not a Statuspage id".into(),
                    );
                }
                None => {
                    let mut incident = json!({
                        "name": change.name,
                        "status": change.status.unwrap_or("in_progress"),
                        "scheduled_for": iso8601(change.scheduled_for),
                        "scheduled_until": iso8601(change.scheduled_until),
                        "body": change.body,
                    });
                    if let Some(component) = &self.spec.component_id {
                        incident["component_ids"] = json!([component.expose()]);
                    }
                    (
                        Method::POST,
                        format!("{}/incidents", self.base()),
                        json!({ "incident": incident }),
                    )
                }
            };
            let creating = method == Method::POST;
            let answer = match notifier
                .send_json(method, &url, headers.clone(), body.to_string().into_bytes())
                .await
            {
                Ok(answer) => answer,
                Err(outcome) => return prefixed("maintenance", outcome),
            };
            match answer.outcome() {
                Outcome::Done(status) if creating => {
                    let id = serde_json::from_str::<serde_json::Value>(&answer.body)
                        .ok()
                        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
                        .filter(|id| valid_id(id));
                    let Some(id) = id else {
                        // Opened, but we cannot update it: retrying would open another.
                        return Outcome::Fail(format!(
                            "maintenance: {status}, but the answer has no incident id"
                        ));
                    };
                    self.done
                        .push(format!("maintenance {id} opened ({status})"));
                    self.incident = Some(id.clone());
                    self.opened = Some(id);
                }
                Outcome::Done(status) => {
                    let id = self.incident.as_deref().unwrap_or_default();
                    let what = match change.status {
                        Some("completed") => "completed",
                        _ => "updated",
                    };
                    self.done
                        .push(format!("maintenance {id} {what} ({status})"));
                }
                other => return prefixed("maintenance", other),
            }
            self.incident_done = true;
        }
        if !self.component_done
            && let (Some(status), Some(component)) =
                (self.update.component, &self.spec.component_id)
        {
            let url = format!("{}/components/{}", self.base(), component.expose());
            let body = json!({ "component": { "status": status.as_str() } });
            let answer = match notifier
                .send_json(Method::PATCH, &url, headers, body.to_string().into_bytes())
                .await
            {
                Ok(answer) => answer,
                Err(outcome) => return prefixed("component", outcome),
            };
            match answer.outcome() {
                Outcome::Done(code) => {
                    self.done
                        .push(format!("component {} ({code})", status.as_str()));
                }
                other => return prefixed("component", other),
            }
            self.component_done = true;
        }
        Outcome::Done(self.done.join("; "))
    }
}

fn prefixed(what: &str, outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Done(d) => Outcome::Done(d),
        Outcome::Retry { detail, after } => Outcome::Retry {
            detail: format!("{what}: {detail}"),
            after,
        },
        Outcome::Fail(d) => Outcome::Fail(format!("{what}: {d}")),
    }
}

/// Statuspage ids are short and alphanumeric; nothing unsafe in a URL path may reach one.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `2026-01-31T12:00:00Z`: ISO 8601 in UTC, whole seconds.
fn iso8601(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
