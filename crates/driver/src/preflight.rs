//! What a plan needs from the host it runs on, checked before anything starts: the
//! builtin router's certificate/key pairs load and match, and the CA its `https://`
//! instances are verified against holds certificates. `liftoff validate` runs it
//! (unless `--no-env`), and so does the daemon before it creates a launch, so a bad
//! pair is a problem at the key's position in the plan, not a failed traffic step (the
//! router checks again when it loads the pair, on its own host).

use std::path::Path;

use liftoff_plan::{Diagnostic, Location, Plan, PlanErrors, RouterSpec};
use liftoff_router::tls::{TlsError, client_config, load_pair};

/// Every problem of the plan's host files, at the position of the key naming the file.
pub fn check(plan: &Plan) -> Result<(), PlanErrors> {
    let Some(RouterSpec::Builtin(b)) = &plan.router else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for pair in &b.tls {
        let Err(e) = load_pair(Path::new(&pair.cert), Path::new(&pair.key)) else {
            continue;
        };
        // Where the file at fault is named; a mismatch is the key's.
        let at: Location = match &e {
            TlsError::Read { path, .. }
            | TlsError::NoCertificate { path }
            | TlsError::BadPem { path, .. }
                if path == Path::new(&pair.cert) =>
            {
                pair.cert_at
            }
            _ => pair.key_at,
        };
        problems.push(Diagnostic {
            location: at,
            message: format!("router.tls: {e}"),
            hint: Some(hint(&e).into()),
        });
    }
    if let Some((ca, at)) = &b.upstreams.ca
        && let Err(e) = client_config(Some(Path::new(ca)))
    {
        problems.push(Diagnostic {
            location: *at,
            message: format!("router.upstreams.ca: {e}"),
            hint: Some(
                "a PEM file of the CA certificates that signed the instances' certificates".into(),
            ),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort_by_key(|d| (d.location.line, d.location.col));
        Err(PlanErrors(problems))
    }
}

fn hint(e: &TlsError) -> &'static str {
    match e {
        TlsError::Read { .. } => {
            "the router reads it on this host; check the path and that the daemon's user may read it"
        }
        TlsError::Mismatch { .. } => {
            "give the key the certificate was issued for (renewals replace both files)"
        }
        _ => "PEM files: the certificate chain leaf first, and its private key",
    }
}
