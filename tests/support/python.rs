//! Python peers for tests (`support/*.py`): a server that prints its port on its first line,
//! and a client run to completion.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `support/NAME`, beside this crate's sources.
pub fn script(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("support")
        .join(name)
}

/// Starts `python3 support/SCRIPT ARGS…` (killed when dropped) and reads the port it serves
/// on from its first line of output.
pub async fn serve(script_name: &str, args: &[&str]) -> (Child, u16) {
    let mut child = Command::new("python3")
        .arg(script(script_name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (the test command installs what the scripts import)");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script_name} printed no port within 20 s"))
        .expect("read the server's output")
        .unwrap_or_else(|| panic!("{script_name} ended before printing its port"));
    let port = first
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{script_name} printed {first:?}, not a port"));
    (child, port)
}

/// Runs `python3 support/SCRIPT ARGS…` to its end with no proxy set in its environment
/// (a script that wants one sets it), and asserts it succeeded.
pub async fn run(script_name: &str, args: &[&str]) -> String {
    let out: Output = Command::new("python3")
        .arg(script(script_name))
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("grpc_proxy")
        .output()
        .await
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script_name} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
