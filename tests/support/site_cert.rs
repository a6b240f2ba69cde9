//! A web site's certificate as an operator would have one for the ingress: a CA of its own
//! and a server certificate for a host name, made with Debian's `openssl`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SiteCert {
    /// The CA a client trusts the site with (`curl --cacert`).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A new CA and a certificate for `host` signed by it, as `dir/{tag}-*.pem`.
pub fn issue(dir: &Path, tag: &str, host: &str) -> SiteCert {
    let ca = dir.join(format!("{tag}-ca.pem"));
    let ca_key = dir.join(format!("{tag}-ca-key.pem"));
    run(
        &[
            &["req", "-x509"],
            &EC_KEY[..],
            &["-days", "2", "-subj", &format!("/CN={tag} test CA")],
        ]
        .concat(),
        &[("-keyout", &ca_key), ("-out", &ca)],
    );
    sign(dir, tag, tag, host)
}

/// A new P-256 key, unencrypted.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

fn run(args: &[&str], files: &[(&str, &PathBuf)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, file) in files {
        cmd.arg(flag).arg(file);
    }
    let out = cmd
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate for `name` (its common name and DNS name) signed by the CA `issue` made
/// under `ca_tag` in `dir`, as `dir/{tag}-cert.pem` and `dir/{tag}-key.pem`: a second
/// holder under the same CA (a client certificate, say).
pub fn sign(dir: &Path, ca_tag: &str, tag: &str, name: &str) -> SiteCert {
    let path = |name: &str| dir.join(format!("{tag}-{name}"));
    let ca = dir.join(format!("{ca_tag}-ca.pem"));
    let ca_key = dir.join(format!("{ca_tag}-ca-key.pem"));
    let (cert, key, csr, ext) = (
        path("cert.pem"),
        path("key.pem"),
        path("req.csr"),
        path("ext.cnf"),
    );
    std::fs::write(&ext, format!("subjectAltName=DNS:{name}\n")).unwrap();
    run(
        &[&["req"], &EC_KEY[..], &["-subj", &format!("/CN={name}")]].concat(),
        &[("-keyout", &key), ("-out", &csr)],
    );
    run(
        &["x509", "-req", "-days", "2", "-CAcreateserial"],
        &[
            ("-in", &csr),
            ("-CA", &ca),
            ("-CAkey", &ca_key),
            ("-extfile", &ext),
            ("-out", &cert),
        ],
    );
    SiteCert { ca, cert, key }
}
