//! Email over SMTP (lettre): STARTTLS required by default, TLS from the start for
//! `smtps://`, plain only when the plan says `starttls: false`.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use liftoff_plan::notify::{EmailSpec, SmtpSecurity};

use crate::deliver::{Outcome, tls_refused};

/// A message and the transport to send it through, built once per delivery.
pub(crate) struct Mail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    message: Message,
}

/// Builds the message and the transport. `Err` is a detail for a delivery that cannot
/// be attempted (an address lettre refuses, a bad extra root certificate).
pub(crate) fn prepare(
    spec: &EmailSpec,
    subject: &str,
    body: &str,
    message_id: &str,
    extra_roots: &[Vec<u8>],
    timeout: Duration,
) -> Result<Mail, String> {
    let mailbox = |s: &str, what: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| format!("email.{what}: `{s}` is not a valid address: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox(&spec.from, "from")?)
        .subject(subject)
        .message_id(Some(message_id.to_string()))
        .header(ContentType::TEXT_PLAIN);
    for to in &spec.to {
        builder = builder.to(mailbox(to, "to")?);
    }
    let message = builder
        .body(body.to_string())
        .map_err(|e| format!("could not build the message: {e}"))?;

    let host = spec.host();
    let tls = match spec.security {
        SmtpSecurity::None => Tls::None,
        security => {
            let mut params = TlsParameters::builder(host.to_string());
            for pem in extra_roots {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| format!("an extra root certificate does not parse: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("could not set up TLS: {e}"))?;
            match security {
                SmtpSecurity::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            }
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(spec.port)
        .timeout(Some(timeout))
        .tls(tls);
    if let (Some(user), Some(password)) = (&spec.username, &spec.password) {
        transport = transport.credentials(Credentials::new(
            user.expose().to_string(),
            password.expose().to_string(),
        ));
    }
    Ok(Mail {
        transport: transport.build(),
        message,
    })
}

impl Mail {
    pub(crate) async fn send(&self) -> Outcome {
        match self.transport.send(self.message.clone()).await {
            Ok(response) => Outcome::Done(format!("SMTP {}", response.code())),
            // Refused by the server for good (5xx: bad credentials, unknown recipient), a
            // configuration lettre rejects, or TLS that cannot succeed (a certificate that
            // does not verify): another attempt would end the same way.
            Err(e) if e.is_permanent() || e.is_client() || e.is_tls() || tls_refused(&e) => {
                Outcome::Fail(describe(&e))
            }
            Err(e) => Outcome::retry(describe(&e)),
        }
    }
}

/// lettre's message, without the repetitions of its nested errors
/// ("Connection error: Connection error: ...").
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let text = e.to_string();
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}
