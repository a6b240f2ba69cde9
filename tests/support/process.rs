//! A `weft` process started for a test: its stderr kept as a log, and its start-up line
//! (the one naming the addresses it bound) awaited and parsed.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

pub struct Started {
    pub child: Child,
    /// The start-up line, with `name=addr` fields.
    pub line: String,
    pub log: Arc<Mutex<String>>,
}

/// Spawns `cmd` (stderr piped, killed on drop) and waits up to 10 s for a stderr line
/// containing `marker`.
pub async fn spawn_until(mut cmd: Command, marker: &'static str) -> Started {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn for {marker:?}: {e}"));
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = oneshot::channel();
    let sink = Arc::clone(&log);
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains(marker) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line.clone());
                }
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let line = match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(line)) => line,
        _ => panic!("no {marker:?} line:\n{}", log.lock().unwrap()),
    };
    Started { child, line, log }
}

impl Started {
    /// The address logged as `name=ADDR` in the start-up line, if there is one.
    pub fn try_addr(&self, name: &str) -> Option<SocketAddr> {
        let key = format!("{name}=");
        let start = self.line.find(&key)? + key.len();
        self.line[start..].split_whitespace().next()?.parse().ok()
    }

    /// The address logged as `name=ADDR` in the start-up line.
    pub fn addr(&self, name: &str) -> SocketAddr {
        let key = format!("{name}=");
        let start = self.line.find(&key).expect("address in start-up line") + key.len();
        self.line[start..]
            .split_whitespace()
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name} address in {:?}", self.line))
    }
}
