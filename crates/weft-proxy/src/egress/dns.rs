//! A small, bounded DNS stub resolver for egress: hosts outside the mesh are resolved by
//! asking one DNS server over UDP, and answers are cached for their TTL. The server is set
//! explicitly so tests can point the proxy at a DNS server on loopback.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

/// The largest answer read: what fits one packet without fragmentation (DNS flag day 2020).
const MAX_DATAGRAM: usize = 1232;
const TRY_TIMEOUT: Duration = Duration::from_secs(1);
const TRIES: usize = 2;
const MAX_CACHED_NAMES: usize = 1024;
/// Caps how long a changed address can go unseen, whatever the server claims.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// An IP literal never changes; callers may keep it as long as they like.
const LITERAL_TTL: Duration = Duration::from_secs(24 * 3600);
const MAX_CNAME_HOPS: usize = 8;
const MAX_POINTER_JUMPS: usize = 16;
/// In wire form, length octets and the root label included (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const RCODE_NXDOMAIN: u8 = 3;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_OPT: u16 = 41;
/// The OPT record a query ends with: root name, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;
const CLASS_IN: u16 = 1;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DnsError {
    #[error("no address for {0}")]
    NotFound(String),
    #[error("DNS server answered rcode {rcode}")]
    Server { rcode: u8 },
    #[error("DNS answer truncated")]
    Truncated,
    #[error("DNS server did not answer in time")]
    Timeout,
    #[error("malformed DNS answer")]
    Malformed,
    #[error("not a host name: {0}")]
    BadName(String),
    #[error("no nameserver in /etc/resolv.conf")]
    NoNameserver,
    #[error("DNS query failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub addrs: Vec<IpAddr>,
    /// How long the addresses may be used: the smallest TTL of the records that gave them.
    pub ttl: Duration,
}

#[derive(Debug)]
pub(crate) struct Resolver {
    server: SocketAddr,
    /// Names (validated, lower-case, no trailing dot) → answer and when it expires.
    cache: Mutex<HashMap<String, (Resolved, Instant)>>,
}

/// A bounds-checked cursor over a datagram: every read fails with `Malformed` past the end.
struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

/// One answer record; names are in lower-cased wire form so they compare byte for byte.
struct Record {
    owner: Vec<u8>,
    ttl: u32,
    data: Rdata,
}

enum Rdata {
    A(Ipv4Addr),
    Cname(Vec<u8>),
    Other,
}

impl Resolver {
    pub(crate) fn new(server: SocketAddr) -> Self {
        Self {
            server,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The host's resolver: the first usable `nameserver` of /etc/resolv.conf.
    pub(crate) fn system() -> Result<Self, DnsError> {
        let conf = std::fs::read_to_string("/etc/resolv.conf")?;
        let ip = nameserver(&conf).ok_or(DnsError::NoNameserver)?;
        Ok(Self::new(SocketAddr::new(ip, 53)))
    }

    pub(crate) async fn resolve(&self, host: &str) -> Result<Resolved, DnsError> {
        // An IPv6 literal arrives bracketed from a URI authority.
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![ip],
                ttl: LITERAL_TTL,
            });
        }
        let name = normalize(host)?;
        if let Some(hit) = self.cached(&name, Instant::now()) {
            return Ok(hit);
        }
        let mut resolved = self.query(&name).await?;
        resolved.ttl = resolved.ttl.min(MAX_TTL);
        self.store(name, &resolved, Instant::now());
        Ok(resolved)
    }

    /// A live entry, with the TTL it has left.
    fn cached(&self, name: &str, now: Instant) -> Option<Resolved> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (resolved, expires) = cache.get(name).filter(|(_, expires)| now < *expires)?;
        Some(Resolved {
            addrs: resolved.addrs.clone(),
            ttl: expires.saturating_duration_since(now),
        })
    }

    fn store(&self, name: String, resolved: &Resolved, now: Instant) {
        let ttl = resolved.ttl.min(MAX_TTL);
        if ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED_NAMES && !cache.contains_key(&name) {
            cache.retain(|_, (_, expires)| now < *expires);
            // Still full of live names: starting over is simpler than picking victims, and
            // costs one query per name.
            if cache.len() >= MAX_CACHED_NAMES {
                cache.clear();
            }
        }
        cache.insert(name, (resolved.clone(), now + ttl));
    }

    async fn query(&self, name: &str) -> Result<Resolved, DnsError> {
        let local: SocketAddr = if self.server.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        // Connected, so the kernel drops datagrams from anyone but the server.
        socket.connect(self.server).await?;
        // One id for both tries, so a late answer to the first still counts.
        let id = fastrand::u16(..);
        let query = encode_query(id, name);
        for _ in 0..TRIES {
            socket.send(&query).await?;
            let answer = tokio::time::timeout(TRY_TIMEOUT, receive(&socket, id, name));
            if let Ok(answer) = answer.await {
                return answer;
            }
            tracing::debug!(host = name, server = %self.server, "DNS server did not answer in time");
        }
        Err(DnsError::Timeout)
    }
}

impl<'a> Reader<'a> {
    fn new(packet: &'a [u8]) -> Self {
        Self { packet, pos: 0 }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let packet = self.packet;
        let end = self.pos.checked_add(n).ok_or(DnsError::Malformed)?;
        let bytes = packet.get(self.pos..end).ok_or(DnsError::Malformed)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DnsError> {
        self.bytes(N)?.try_into().map_err(|_| DnsError::Malformed)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn byte_at(&self, at: usize) -> Result<u8, DnsError> {
        self.packet.get(at).copied().ok_or(DnsError::Malformed)
    }

    /// A name, decompressed, in lower-cased wire form. Each pointer must land before where
    /// the name (or the last pointer's target) began, so pointers cannot loop.
    fn name(&mut self) -> Result<Vec<u8>, DnsError> {
        let mut name = Vec::new();
        let mut at = self.pos;
        let mut floor = self.pos;
        let mut resume = None;
        let mut jumps = 0;
        loop {
            let len = self.byte_at(at)?;
            match len {
                0 => {
                    name.push(0);
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(name);
                }
                1..=63 => {
                    let end = at + 1 + usize::from(len);
                    let label = self.packet.get(at + 1..end).ok_or(DnsError::Malformed)?;
                    name.push(len);
                    name.extend(label.iter().map(u8::to_ascii_lowercase));
                    if name.len() >= MAX_NAME_LEN {
                        return Err(DnsError::Malformed);
                    }
                    at = end;
                }
                0xC0..=0xFF => {
                    let pointer = u16::from_be_bytes([len, self.byte_at(at + 1)?]);
                    let target = usize::from(pointer & 0x3FFF);
                    jumps += 1;
                    if target >= floor || jumps > MAX_POINTER_JUMPS {
                        return Err(DnsError::Malformed);
                    }
                    resume = resume.or(Some(at + 2));
                    at = target;
                    floor = target;
                }
                // 0x40 and 0x80: extended label types, obsolete.
                _ => return Err(DnsError::Malformed),
            }
        }
    }

    fn record(&mut self) -> Result<Record, DnsError> {
        let owner = self.name()?;
        let (rtype, class, ttl) = (self.u16()?, self.u16()?, self.u32()?);
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let rdata = self.bytes(len)?;
        let data = match (rtype, class) {
            (TYPE_A, CLASS_IN) => {
                let octets: [u8; 4] = rdata.try_into().map_err(|_| DnsError::Malformed)?;
                Rdata::A(Ipv4Addr::from(octets))
            }
            (TYPE_CNAME, CLASS_IN) => {
                let mut inner = Reader {
                    packet: self.packet,
                    pos: start,
                };
                let target = inner.name()?;
                // The target must fill the record's data exactly, not run past it.
                if inner.pos != self.pos {
                    return Err(DnsError::Malformed);
                }
                Rdata::Cname(target)
            }
            _ => Rdata::Other,
        };
        Ok(Record { owner, ttl, data })
    }
}

async fn receive(socket: &UdpSocket, id: u16, name: &str) -> Result<Resolved, DnsError> {
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        let len = socket.recv(&mut buf).await?;
        let datagram = buf.get(..len).ok_or(DnsError::Malformed)?;
        if let Some(resolved) = parse_response(datagram, id, name)? {
            return Ok(resolved);
        }
    }
}

/// The addresses a response gives for `name`, or `None` if the datagram answers another
/// query (a stray, or a late answer to an earlier one) and should be ignored.
fn parse_response(packet: &[u8], id: u16, name: &str) -> Result<Option<Resolved>, DnsError> {
    let mut r = Reader::new(packet);
    let [answer_id, flags, questions, answers, _authority, _additional] =
        [r.u16()?, r.u16()?, r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    if answer_id != id || flags & FLAG_QR == 0 || questions != 1 {
        return Ok(None);
    }
    let qname = encode_name(name);
    let (asked, qtype, qclass) = (r.name()?, r.u16()?, r.u16()?);
    if asked != qname || qtype != TYPE_A || qclass != CLASS_IN {
        return Ok(None);
    }
    match (flags & 0x000F) as u8 {
        0 => {}
        RCODE_NXDOMAIN => return Err(DnsError::NotFound(name.to_string())),
        rcode => return Err(DnsError::Server { rcode }),
    }
    let truncated = flags & FLAG_TC != 0;
    let records = if truncated {
        // What did arrive is as good as it is: the records before the cut.
        (0..answers).map_while(|_| r.record().ok()).collect()
    } else {
        (0..answers)
            .map(|_| r.record())
            .collect::<Result<Vec<_>, _>>()?
    };
    let (addrs, ttl) = follow(&records, &qname);
    if addrs.is_empty() && truncated {
        return Err(DnsError::Truncated);
    }
    if addrs.is_empty() {
        return Err(DnsError::NotFound(name.to_string()));
    }
    Ok(Some(Resolved {
        addrs,
        ttl: Duration::from_secs(u64::from(ttl)),
    }))
}

/// The A records for `qname`, through at most `MAX_CNAME_HOPS` aliases in the same
/// response, and the smallest TTL along the way.
fn follow(records: &[Record], qname: &[u8]) -> (Vec<IpAddr>, u32) {
    let mut name = qname;
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_CNAME_HOPS {
        let mut addrs = Vec::new();
        let mut alias = None;
        for record in records.iter().filter(|r| r.owner.as_slice() == name) {
            match &record.data {
                Rdata::A(ip) => {
                    addrs.push(IpAddr::V4(*ip));
                    ttl = ttl.min(record.ttl);
                }
                Rdata::Cname(target) => alias = Some((target.as_slice(), record.ttl)),
                Rdata::Other => {}
            }
        }
        if !addrs.is_empty() {
            return (addrs, ttl);
        }
        let Some((target, alias_ttl)) = alias else {
            break;
        };
        ttl = ttl.min(alias_ttl);
        name = target;
    }
    (Vec::new(), 0)
}

fn encode_query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + name.len() + 6 + OPT_LEN);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&FLAG_RD.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    // No answer or authority records; one additional, EDNS's OPT, so the server may answer
    // in up to `MAX_DATAGRAM` bytes rather than 512 (past which it would truncate).
    packet.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
    packet.extend_from_slice(&encode_name(name));
    packet.extend_from_slice(&TYPE_A.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: the root name, type 41, the payload size as its class, no flags, no options.
    packet.push(0);
    packet.extend_from_slice(&TYPE_OPT.to_be_bytes());
    packet.extend_from_slice(&(MAX_DATAGRAM as u16).to_be_bytes());
    packet.extend_from_slice(&[0; 6]);
    packet
}

/// `name` must have passed `normalize`, so every label fits its length octet.
fn encode_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// The name as queried and cached: checked, lower-case, without the trailing dot.
fn normalize(host: &str) -> Result<String, DnsError> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(DnsError::BadName(host.to_string()));
    }
    Ok(name.to_ascii_lowercase())
}

fn nameserver(conf: &str) -> Option<IpAddr> {
    conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(addr)) => addr.parse().ok(),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    const NAME: &str = "www.example.com";

    /// A response header and the question for `name`, as a server echoes them.
    fn response(id: u16, flags: u16, answers: u16, name: &str) -> Vec<u8> {
        let mut packet = encode_query(id, name);
        // The question only: a server answers with its own OPT, after the answers.
        packet.truncate(packet.len() - OPT_LEN);
        packet[2..4].copy_from_slice(&flags.to_be_bytes());
        packet[6..8].copy_from_slice(&answers.to_be_bytes());
        packet[10..12].copy_from_slice(&0u16.to_be_bytes());
        packet
    }

    /// Appends a record and returns where its data starts, for pointers to it.
    fn record(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> usize {
        packet.extend_from_slice(owner);
        packet.extend_from_slice(&rtype.to_be_bytes());
        packet.extend_from_slice(&CLASS_IN.to_be_bytes());
        packet.extend_from_slice(&ttl.to_be_bytes());
        packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        let at = packet.len();
        packet.extend_from_slice(rdata);
        at
    }

    fn pointer(offset: usize) -> [u8; 2] {
        (0xC000 | offset as u16).to_be_bytes()
    }

    fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    /// www → edge → cdn → 192.0.2.7, every name compressed against an earlier one.
    fn cname_chain() -> Vec<u8> {
        let mut packet = response(7, FLAG_QR | FLAG_RD, 3, NAME);
        // "example.com" in the question starts after "www": offset 12 + 4.
        let edge = record(
            &mut packet,
            &pointer(12),
            TYPE_CNAME,
            300,
            b"\x04edge\xC0\x10",
        );
        let cdn = record(
            &mut packet,
            &pointer(edge),
            TYPE_CNAME,
            30,
            b"\x03cdn\xC0\x10",
        );
        record(&mut packet, &pointer(cdn), TYPE_A, 60, &[192, 0, 2, 7]);
        packet
    }

    fn is_malformed(result: Result<Option<Resolved>, DnsError>) -> bool {
        matches!(result, Err(DnsError::Malformed))
    }

    #[test]
    fn encodes_a_recursive_query_for_one_a_record() {
        let mut expected: Vec<u8> = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        expected.extend_from_slice(b"\x03api\x07example\x03com\x00\x00\x01\x00\x01");
        // EDNS: OPT for the root, a 1232-byte payload.
        expected.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode_query(0xBEEF, "api.example.com"), expected);
    }

    #[test]
    fn follows_a_cname_chain_through_compression_pointers() {
        let resolved = parse_response(&cname_chain(), 7, NAME).unwrap().unwrap();
        assert_eq!(resolved.addrs, vec![ip(192, 0, 2, 7)]);
        assert_eq!(resolved.ttl, Duration::from_secs(30));
    }

    #[test]
    fn every_truncation_of_a_response_is_malformed_not_a_panic() {
        let packet = cname_chain();
        for len in 0..packet.len() {
            assert!(
                is_malformed(parse_response(&packet[..len], 7, NAME)),
                "{len}"
            );
        }
    }

    #[test]
    fn rejects_a_pointer_loop_and_a_forward_pointer() {
        let mut looped = response(7, FLAG_QR, 1, NAME);
        let at = looped.len();
        let mut owner = vec![1, b'a'];
        owner.extend_from_slice(&pointer(at));
        record(&mut looped, &owner, TYPE_A, 60, &[192, 0, 2, 7]);
        assert!(is_malformed(parse_response(&looped, 7, NAME)));

        let mut forward = response(7, FLAG_QR, 1, NAME);
        let ahead = forward.len() + 2;
        record(&mut forward, &pointer(ahead), TYPE_A, 60, &[192, 0, 2, 7]);
        assert!(is_malformed(parse_response(&forward, 7, NAME)));
    }

    #[test]
    fn ignores_answers_to_other_queries() {
        let packet = cname_chain();
        assert!(parse_response(&packet, 8, NAME).unwrap().is_none());
        assert!(parse_response(&packet, 7, "api.example.com")
            .unwrap()
            .is_none());
    }

    #[test]
    fn maps_rcodes_and_truncation_to_errors() {
        let answer = |flags: u16| parse_response(&response(7, FLAG_QR | flags, 0, NAME), 7, NAME);
        assert!(matches!(answer(3), Err(DnsError::NotFound(_))));
        assert!(matches!(answer(2), Err(DnsError::Server { rcode: 2 })));
        assert!(matches!(answer(FLAG_TC), Err(DnsError::Truncated)));
        assert!(matches!(answer(0), Err(DnsError::NotFound(_))));
        // Truncated after the name's address: what arrived serves.
        let mut cut = response(7, FLAG_QR | FLAG_TC, 3, NAME);
        record(&mut cut, &pointer(12), TYPE_A, 20, &[192, 0, 2, 1]);
        cut.extend_from_slice(&[0xC0, 12, 0, 1]);
        let resolved = parse_response(&cut, 7, NAME).unwrap().unwrap();
        assert_eq!(resolved.addrs, vec![ip(192, 0, 2, 1)]);
    }

    #[test]
    fn validates_host_names() {
        assert_eq!(normalize("API.Example.com.").unwrap(), "api.example.com");
        let longest = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert!(normalize(&longest).is_ok());
        let too_long = format!("{longest}e");
        let long_label = "a".repeat(64);
        let bad = [
            "",
            ".",
            "a..b",
            "a_b.com",
            "ex ample.com",
            "é.com",
            "a.com..",
            too_long.as_str(),
            long_label.as_str(),
        ];
        for name in bad {
            assert!(
                matches!(normalize(name), Err(DnsError::BadName(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn reads_the_first_nameserver() {
        let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
        assert_eq!(nameserver(conf), Some(ip(10, 0, 0, 2)));
        assert_eq!(nameserver("search example.com\n"), None);
    }

    #[test]
    fn cache_serves_until_the_ttl_passes_and_stays_bounded() {
        let resolver = Resolver::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
        let now = Instant::now();
        let answer = Resolved {
            addrs: vec![ip(192, 0, 2, 1)],
            ttl: Duration::from_secs(10),
        };
        resolver.store("a.example".to_string(), &answer, now);
        let hit = resolver
            .cached("a.example", now + Duration::from_secs(4))
            .unwrap();
        assert_eq!(hit.ttl, Duration::from_secs(6));
        assert!(resolver
            .cached("a.example", now + Duration::from_secs(10))
            .is_none());

        let uncacheable = Resolved {
            ttl: Duration::ZERO,
            ..answer.clone()
        };
        resolver.store("zero.example".to_string(), &uncacheable, now);
        assert!(resolver.cached("zero.example", now).is_none());

        for i in 0..=MAX_CACHED_NAMES {
            resolver.store(format!("n{i}.example"), &answer, now);
        }
        assert!(resolver.cache.lock().unwrap().len() <= MAX_CACHED_NAMES);
    }

    #[tokio::test]
    async fn resolve_caches_for_the_ttl_then_asks_again() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let resolver = Resolver::new(server.local_addr().unwrap());
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = server.recv_from(&mut buf).await {
                counted.fetch_add(1, Ordering::SeqCst);
                // The question back, without the query's OPT (this server knows no EDNS).
                let mut reply = buf[..len - OPT_LEN].to_vec();
                reply[2..4].copy_from_slice(&(FLAG_QR | FLAG_RD).to_be_bytes());
                reply[6..8].copy_from_slice(&1u16.to_be_bytes());
                reply[10..12].copy_from_slice(&0u16.to_be_bytes());
                record(&mut reply, &pointer(12), TYPE_A, 1, &[10, 1, 2, 3]);
                let _ = server.send_to(&reply, from).await;
            }
        });

        let first = resolver.resolve("svc.example.com").await.unwrap();
        assert_eq!(first.addrs, vec![ip(10, 1, 2, 3)]);
        resolver.resolve("SVC.example.com.").await.unwrap();
        assert_eq!(queries.load(Ordering::SeqCst), 1);

        tokio::time::sleep(Duration::from_millis(1100)).await;
        resolver.resolve("svc.example.com").await.unwrap();
        assert_eq!(queries.load(Ordering::SeqCst), 2);
        task.abort();
    }
}
