//! `openssl` (Debian's) as an intruder or an operator would run it against the mesh: a TLS
//! client with or without a certificate, and the reading of what a server presented.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Runs `openssl` with `args`, `input` on its stdin; what it printed, both streams.
pub async fn openssl(args: &[&str], input: &[u8]) -> String {
    let mut child = tokio::process::Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs (scripts/test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    // Left open a moment, so s_client reads what the server says before it quits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("openssl finishes")
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl s_client` to `addr` sending one HTTP/1.1 request, with `extra` flags.
pub async fn s_client(addr: SocketAddr, extra: &[&str]) -> String {
    let connect = addr.to_string();
    let mut args = vec!["s_client", "-connect", &connect, "-alpn", "http/1.1"];
    args.extend_from_slice(extra);
    openssl(&args, b"GET / HTTP/1.1\r\nhost: hello\r\n\r\n").await
}

/// The certificates a server at `addr` presents, as PEM, leaf first (ALPN `alpn`).
pub async fn presented(addr: SocketAddr, alpn: &str) -> Vec<String> {
    let connect = addr.to_string();
    let shown = openssl(
        &[
            "s_client",
            "-connect",
            &connect,
            "-alpn",
            alpn,
            "-showcerts",
        ],
        b"",
    )
    .await;
    let mut out = Vec::new();
    let mut rest = shown.as_str();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..]
            .find("-----END CERTIFICATE-----")
            .map(|e| start + e + "-----END CERTIFICATE-----".len())
            .expect("a whole certificate");
        out.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    out
}

/// One field of a PEM certificate as `openssl x509` prints it (`-serial`, `-ext
/// subjectAltName` …).
pub async fn x509(pem: &str, field: &[&str]) -> String {
    let mut args = vec!["x509", "-noout"];
    args.extend_from_slice(field);
    openssl(&args, pem.as_bytes()).await
}
