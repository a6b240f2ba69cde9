//! A tiny DNS server on loopback, so the proxy's egress resolves names the test controls:
//! it answers A queries from a table the test can change and counts the queries it gets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Names (lower-case, no trailing dot) → address and TTL in seconds.
type Records = Arc<Mutex<HashMap<String, (Ipv4Addr, u32)>>>;

const HEADER_LEN: usize = 12;
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u16 = 3;

pub struct DnsServer {
    pub addr: SocketAddr,
    records: Records,
    queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DnsServer {
    /// Serves `(name, address, ttl)` records on a fresh loopback port.
    pub async fn start(records: &[(&str, Ipv4Addr, u32)]) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind the DNS server");
        let addr = socket.local_addr().expect("DNS server address");
        let table: HashMap<String, (Ipv4Addr, u32)> = records
            .iter()
            .map(|&(name, ip, ttl)| (key(name), (ip, ttl)))
            .collect();
        let records: Records = Arc::new(Mutex::new(table));
        let queries = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(serve(socket, records.clone(), queries.clone()));
        Self {
            addr,
            records,
            queries,
            task,
        }
    }

    /// Adds or changes a record; later queries see it.
    pub fn set(&self, name: &str, ip: Ipv4Addr, ttl: u32) {
        self.records.lock().unwrap().insert(key(name), (ip, ttl));
    }

    /// How many queries the server has received.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn serve(socket: UdpSocket, records: Records, queries: Arc<AtomicUsize>) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(reply) = buf.get(..len).and_then(|query| answer(query, &records)) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        let _ = socket.send_to(&reply, from).await;
    }
}

/// The reply to a query with one question, or `None` for anything else.
fn answer(query: &[u8], records: &Records) -> Option<Vec<u8>> {
    let flags = u16_at(query, 2)?;
    if flags & 0x8000 != 0 || u16_at(query, 4)? != 1 {
        return None;
    }
    let (name, name_end) = question_name(query)?;
    let qtype = u16_at(query, name_end)?;
    u16_at(query, name_end + 2)?;
    let question_end = name_end + 4;

    let known = records.lock().unwrap().get(&name).copied();
    let (rcode, record) = match known {
        None => (RCODE_NXDOMAIN, None),
        Some(record) if qtype == TYPE_A => (0, Some(record)),
        Some(_) => (0, None),
    };

    // The query's header and question, minus anything after them (an EDNS record).
    let mut reply = query.get(..question_end)?.to_vec();
    let rd = flags & 0x0100;
    reply[2..4].copy_from_slice(&(0x8000 | 0x0080 | rd | rcode).to_be_bytes());
    reply[6..HEADER_LEN].copy_from_slice(&[0, u8::from(record.is_some()), 0, 0, 0, 0]);
    if let Some((ip, ttl)) = record {
        // The owner is a pointer to the question's name, right after the header.
        reply.extend_from_slice(&[0xC0, HEADER_LEN as u8]);
        reply.extend_from_slice(&TYPE_A.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&ttl.to_be_bytes());
        reply.extend_from_slice(&4u16.to_be_bytes());
        reply.extend_from_slice(&ip.octets());
    }
    Some(reply)
}

/// The question's name, lower-case without a trailing dot, and where it ends. Queries do not
/// compress their one name, so a pointer here is garbage.
fn question_name(query: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            return Some((labels.join(".").to_ascii_lowercase(), at + 1));
        }
        if len > 63 {
            return None;
        }
        let label = query.get(at + 1..at + 1 + len)?;
        labels.push(std::str::from_utf8(label).ok()?);
        at += 1 + len;
    }
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    let bytes = packet.get(at..at + 2)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}
