//! `router.tls` end to end: `liftoff validate` checks each pair at its key's position,
//! the daemon refuses a launch with a bad pair before anything runs, and a launch
//! serves HTTPS through the daemon's router (curl, with the test's own CA).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{BIN, Daemon, demo_app, stderr, stdout, workdir};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
}

/// A CA (`ca.pem`) and a certificate for `name` signed by it: `<file>.pem`, `<file>.key`.
fn certificates(dir: &Path, name: &str, file: &str) -> (PathBuf, PathBuf) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=liftoff test CA",
            ],
        );
    }
    std::fs::write(dir.join("san.ext"), format!("subjectAltName=DNS:{name}\n")).unwrap();
    let (key, csr, pem) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.pem"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    (dir.join(pem), dir.join(key))
}

fn plan(tls: &str, p1: u16, p2: u16) -> String {
    format!(
        "version: 1\nname: secure\nservice: shop\nrouter:\n  kind: builtin\n  listen: 127.0.0.1:0\n{tls}  stable: http://127.0.0.1:{p1}\n  candidate: http://127.0.0.1:{p2}\nsteps:\n  - traffic: 50%\n  - approve: {{ role: go }}\n  - traffic: 100%\n"
    )
}

#[test]
fn validate_checks_each_tls_pair_at_the_position_of_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a_pem, a_key) = certificates(dir.path(), "a.test", "a");
    let (_, b_key) = certificates(dir.path(), "b.test", "b");
    let missing = dir.path().join("missing.pem");
    let tls = format!(
        "  tls:\n    - {{ cert: {}, key: {} }}\n    - {{ cert: {}, key: {} }}\n    - {{ cert: {}, key: {} }}\n",
        a_pem.display(),
        a_key.display(),
        a_pem.display(),
        b_key.display(),
        missing.display(),
        a_key.display(),
    );
    // A CA that is not one (a key), for the https instances.
    let tls = format!("{tls}  upstreams: {{ ca: {} }}\n", a_key.display());
    let path = dir.path().join("plan.yaml");
    std::fs::write(&path, plan(&tls, 9000, 9001)).unwrap();
    let p = path.display().to_string();
    let out = Command::new(BIN).args(["validate", &p]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    // The mismatched key, at the key's value; the missing certificate at the cert's.
    let key_col = 4 + "- { cert: , key: ".len() + a_pem.display().to_string().len() + 1;
    assert!(
        err.contains(&format!(
            "{p}:9:{key_col}: router.tls: {} is not the key of the certificate in {}",
            b_key.display(),
            a_pem.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:10:15: router.tls: cannot read {}",
            missing.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: give the key the certificate was issued for"),
        "{err}"
    );
    assert_eq!(
        err.matches("router.tls:").count(),
        2,
        "the good pair passes: {err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:11:20: router.upstreams.ca: {}: no PEM certificate in it",
            a_key.display()
        )),
        "{err}"
    );

    // Without the host's files (CI on another machine): valid.
    let out = Command::new(BIN)
        .args(["validate", "--no-env", &p])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_daemon_refuses_a_bad_pair_and_serves_https_with_a_good_one() {
    let certs = tempfile::tempdir().unwrap();
    let (a_pem, a_key) = certificates(certs.path(), "shop.test", "shop");
    let (_, other_key) = certificates(certs.path(), "other.test", "other");
    let (_s, p1) = demo_app("1.0.0");
    let (_c, p2) = demo_app("2.0.0");
    let work = workdir();
    let state = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(state.path());

    let bad = format!(
        "  tls: {{ cert: {}, key: {} }}\n",
        a_pem.display(),
        other_key.display()
    );
    std::fs::write(work.path().join("plan.yaml"), plan(&bad, p1, p2)).unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("is not the key of the certificate in"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&daemon.cli(work.path(), &["history"]))
            .matches("secure")
            .count(),
        0,
        "no launch was created"
    );

    let good = format!(
        "  tls: {{ cert: {}, key: {} }}\n",
        a_pem.display(),
        a_key.display()
    );
    std::fs::write(work.path().join("plan.yaml"), plan(&good, p1, p2)).unwrap();
    let out = daemon.cli(work.path(), &["launch", "plan.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let s = daemon.wait_for(work.path(), &id, Duration::from_secs(15), |s| {
        s["status"] == "waiting-approval"
    });
    let listen = s["traffic"]["listen"].as_str().unwrap().to_string();
    let port = listen.rsplit(':').next().unwrap();
    let mut versions = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(certs.path().join("ca.pem"))
            .args(["--resolve", &format!("shop.test:{port}:127.0.0.1")])
            .arg(format!("https://shop.test:{port}/health"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        versions.insert(stdout(&out));
    }
    assert_eq!(versions.len(), 2, "a 50% split over HTTPS: {versions:?}");
    // Plain HTTP on a TLS listener is not served.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("http://{listen}/health")])
        .output()
        .unwrap();
    assert!(!stdout(&out).contains("ok v"), "{}", stdout(&out));
}
