//! Local receivers for delivery tests: an HTTP server on port 0 that records every
//! request and checks it against the shapes Slack, Statuspage and liftoff's webhook
//! document, and an SMTP server (Python's aiosmtpd) started on port 0 and stopped by PID.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use liftoff_notify::{Event, Notice, NotifySpec};
use serde_json::Value;

// --- plans and notices ---------------------------------------------------------------

/// The `notify:` section of a plan (indented two spaces), with `vars` as its environment.
pub fn notify_spec(notify: &str, vars: &[(&str, &str)]) -> NotifySpec {
    let source = format!(
        "version: 1\nname: shop-api-2.0\nservice: shop-api\nnotify:\n{notify}steps:\n  - run: echo hi\n"
    );
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    match liftoff_plan::parse(&source, &lookup) {
        Ok(plan) => plan.notify.expect("the plan has notify"),
        Err(e) => panic!("{}\n{source}", e.render("plan.yaml")),
    }
}

/// A notice with live figures: candidate 7.24% errors and 911ms p95 at 25%, stable
/// 0.11% and 182ms.
pub fn notice(event: Event) -> Notice {
    let mut n = Notice::new(
        "01JD6Y8R6C2S4/42",
        event,
        "2026-03-14T09:26:53Z".parse().expect("a timestamp"),
        "shop-api",
        "01JD6Y8R6C2S4",
        "shop-api-2.0",
    );
    n.step = Some("traffic 25%".into());
    n.weight = liftoff_plan::Weight::from_basis_points(2500);
    n.elapsed = Some(std::time::Duration::from_secs(25 * 60 + 34));
    n.reason = Some("error_rate > 5% over 30s for 1m".into());
    n.figures = Some(liftoff_notify::Figures {
        stable: Some(liftoff_notify::VersionFigures {
            requests: 9120,
            error_rate: Some(0.0011),
            p95_ms: Some(182.0),
            rps: 152.0,
        }),
        candidate: Some(liftoff_notify::VersionFigures {
            requests: 3040,
            error_rate: Some(0.0724),
            p95_ms: Some(911.0),
            rps: 50.7,
        }),
    });
    n
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// --- HTTP ------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body of {} {} is not JSON ({e})", self.method, self.path))
    }
}

type Respond = dyn Fn(&Recorded, usize) -> (u16, String) + Send + Sync;

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    respond: Arc<Respond>,
}

/// Records every request; answers with `respond(request, how many came before it)`.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpReceiver {
    pub async fn start(
        respond: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let shared = Shared {
            requests: Arc::default(),
            respond: Arc::new(respond),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            requests: shared.requests,
        }
    }

    /// Answers every request with 200 `ok`, like Slack.
    pub async fn ok() -> Self {
        Self::start(|_, _| (200, "ok".into())).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let request = Recorded {
        method,
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    };
    let before = {
        let mut all = shared.requests.lock().expect("lock");
        all.push(request.clone());
        all.len() - 1
    };
    let (status, body) = (shared.respond)(&request, before);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

// --- documented request shapes --------------------------------------------------------

fn content_type_is_json(r: &Recorded) {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "{} {}: Content-Type is {ct:?}",
        r.method,
        r.path
    );
}

/// Slack's incoming webhooks: a POST of JSON with a non-empty `text` string and, when
/// present, `blocks`: an array of objects with a `type`; a `section` has a text object
/// (`mrkdwn` or `plain_text`, at most 3000 characters), a `context` 1 to 10 elements.
pub fn assert_slack_shape(r: &Recorded) -> Value {
    assert_eq!(r.method, Method::POST);
    content_type_is_json(r);
    let body = r.json();
    let object = body.as_object().expect("a JSON object");
    for key in object.keys() {
        assert!(
            ["text", "blocks", "attachments", "thread_ts", "mrkdwn"].contains(&key.as_str()),
            "Slack does not document top-level `{key}`"
        );
    }
    let text = body["text"].as_str().expect("`text` is a string");
    assert!(!text.trim().is_empty(), "`text` is empty");
    let blocks = body["blocks"].as_array().expect("`blocks` is an array");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    for block in blocks {
        let kind = block["type"].as_str().expect("a block has a `type`");
        match kind {
            "section" => text_object(&block["text"], 3000),
            "context" => {
                let elements = block["elements"].as_array().expect("context elements");
                assert!((1..=10).contains(&elements.len()));
                for e in elements {
                    text_object(e, 3000);
                }
            }
            "header" => text_object(&block["text"], 150),
            "divider" => {}
            other => panic!("unexpected block type {other}"),
        }
    }
    body
}

fn text_object(v: &Value, max: usize) {
    let kind = v["type"].as_str().expect("a text object has a `type`");
    assert!(["mrkdwn", "plain_text"].contains(&kind), "text type {kind}");
    let text = v["text"].as_str().expect("a text object has `text`");
    assert!(
        !text.is_empty() && text.chars().count() <= max,
        "text length"
    );
}

/// Statuspage's REST API: the path, the method, `Authorization: OAuth <key>`, and the
/// documented body of each call. Returns which call it was.
pub fn assert_statuspage_shape(r: &Recorded, page: &str, api_key: &str) -> StatuspageCall {
    assert_eq!(
        r.header("authorization"),
        Some(format!("OAuth {api_key}").as_str()),
        "{} {}",
        r.method,
        r.path
    );
    content_type_is_json(r);
    let prefix = format!("/v1/pages/{page}/");
    let rest = r
        .path
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{} is not under {prefix}", r.path));
    let body = r.json();
    let segments: Vec<&str> = rest.split('/').collect();
    let ids_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    match (r.method.as_str(), segments.as_slice()) {
        ("POST", ["incidents"]) => {
            let incident = only_key(&body, "incident");
            allowed_keys(
                incident,
                &[
                    "name",
                    "status",
                    "impact_override",
                    "scheduled_for",
                    "scheduled_until",
                    "body",
                    "component_ids",
                    "components",
                    "deliver_notifications",
                ],
            );
            assert!(incident["name"].as_str().is_some_and(|n| !n.is_empty()));
            let status = incident["status"].as_str().expect("status");
            assert!(["scheduled", "in_progress", "verifying", "completed"].contains(&status));
            for key in ["scheduled_for", "scheduled_until"] {
                let t = incident[key].as_str().expect(key);
                t.parse::<jiff::Timestamp>()
                    .unwrap_or_else(|e| panic!("{key} {t:?} is not ISO 8601: {e}"));
            }
            if let Some(ids) = incident.get("component_ids") {
                assert!(
                    ids.as_array()
                        .is_some_and(|a| a.iter().all(|i| i.is_string()))
                );
            }
            StatuspageCall::OpenIncident(incident.clone())
        }
        ("PATCH", ["incidents", id]) => {
            assert!(ids_ok(id), "incident id {id}");
            let incident = only_key(&body, "incident");
            allowed_keys(
                incident,
                &["name", "status", "body", "components", "component_ids"],
            );
            if let Some(status) = incident.get("status") {
                let status = status.as_str().expect("status");
                assert!(["scheduled", "in_progress", "verifying", "completed"].contains(&status));
            }
            StatuspageCall::UpdateIncident(id.to_string(), incident.clone())
        }
        ("PATCH", ["components", id]) => {
            assert!(ids_ok(id), "component id {id}");
            let component = only_key(&body, "component");
            allowed_keys(component, &["status", "name", "description"]);
            let status = component["status"].as_str().expect("status").to_string();
            assert!(
                [
                    "operational",
                    "under_maintenance",
                    "degraded_performance",
                    "partial_outage",
                    "major_outage"
                ]
                .contains(&status.as_str())
            );
            StatuspageCall::Component(id.to_string(), status)
        }
        (method, _) => panic!("Statuspage has no {method} {}", r.path),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum StatuspageCall {
    OpenIncident(Value),
    UpdateIncident(String, Value),
    Component(String, String),
}

fn only_key<'v>(body: &'v Value, key: &str) -> &'v Value {
    let object = body.as_object().expect("a JSON object");
    assert_eq!(object.len(), 1, "the body wraps one `{key}` object: {body}");
    object
        .get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {body}"))
}

fn allowed_keys(v: &Value, allowed: &[&str]) {
    for key in v.as_object().expect("an object").keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "undocumented key `{key}` in {v}"
        );
    }
}

// --- SMTP ------------------------------------------------------------------------------

/// aiosmtpd on 127.0.0.1, port chosen by the OS and printed by the script. Each message
/// is appended to a JSON-lines file. With `auth`, AUTH is required; with `tls`, STARTTLS
/// is offered and required (and AUTH only after it).
const SMTP_SERVER: &str = r#"
import asyncio, email, email.policy, json, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

out, user, password, cert, key = sys.argv[1:6]

class Handler:
    async def handle_DATA(self, server, session, envelope):
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "body": message.get_body(preferencelist=("plain",)).get_content(),
            "login": login,
            "tls": session.ssl is not None,
        }
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 Message accepted"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    # handled=False: aiosmtpd answers 535 itself on a failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

async def main():
    context = None
    if cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
    def factory():
        return SMTP(Handler(), hostname="localhost",
                    authenticator=authenticator if user else None,
                    auth_required=bool(user),
                    auth_require_tls=bool(cert),
                    tls_context=context, require_starttls=bool(cert))
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

pub struct SmtpServer {
    pub port: u16,
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start(auth: Option<(&str, &str)>, tls: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("messages.jsonl");
        let (cert, key) = match tls {
            Some((cert_pem, key_pem)) => {
                let cert = dir.path().join("cert.pem");
                let key = dir.path().join("key.pem");
                std::fs::write(&cert, cert_pem).expect("write cert");
                std::fs::write(&key, key_pem).expect("write key");
                (cert.display().to_string(), key.display().to_string())
            }
            None => (String::new(), String::new()),
        };
        let (user, password) = auth.unwrap_or(("", ""));
        // Its complaints (TLS handshakes the tests make fail) go to a file, not the log.
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let mut child = Command::new("python3")
            .args(["-W", "ignore", "-c", SMTP_SERVER])
            .arg(&out)
            .args([user, password, &cert, &key])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect(
                "python3 (the tests need python3 with aiosmtpd: python3 -m pip install aiosmtpd)",
            );
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = match line.trim().parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                panic!(
                    "the SMTP test server did not start (is aiosmtpd installed? \
                     python3 -m pip install aiosmtpd); it printed {line:?}\n{stderr}"
                );
            }
        };
        Self {
            port,
            child,
            out,
            _dir: dir,
        }
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // Our own child, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it: (CA PEM, leaf PEM, key PEM).
pub fn test_certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "liftoff notify test CA");
    let ca_pem = ca.self_signed(&ca_key).expect("CA").pem();
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params");
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf");
    (ca_pem, leaf.pem(), leaf_key.serialize_pem())
}
