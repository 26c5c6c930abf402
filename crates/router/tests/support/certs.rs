//! Certificates for the TLS tests, made by the openssl command: a CA and the
//! certificates it signs (ECDSA P-256, valid two days).

use std::path::{Path, PathBuf};
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A certificate authority named `name` in `dir`: `ca.pem` (returned) and `ca.key`.
pub fn ca(dir: &Path, name: &str) -> PathBuf {
    let subject = format!("/CN={name}");
    let args = [
        &["req", "-x509"][..],
        &EC,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
        &["-subj", &subject],
    ]
    .concat();
    openssl(dir, &args);
    dir.join("ca.pem")
}

/// A certificate with common name `cn` for `names` (`DNS:a.test,IP:127.0.0.1`), signed
/// by the CA in `dir`: `<file>.pem` and `<file>.key`.
pub fn leaf(dir: &Path, cn: &str, names: &str, file: &str) -> (PathBuf, PathBuf) {
    let ext = format!("{file}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName={names}\n")).unwrap();
    let (key, csr, pem) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.pem"),
    );
    let subject = format!("/CN={cn}");
    let request = [
        &["req"][..],
        &EC,
        &["-keyout", &key, "-out", &csr, "-subj", &subject],
    ]
    .concat();
    openssl(dir, &request);
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
            &ext,
        ],
    );
    (dir.join(pem), dir.join(key))
}
