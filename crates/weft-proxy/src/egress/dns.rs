//! A small, bounded DNS stub resolver for egress: hosts outside the mesh are resolved by
//! asking one DNS server over UDP, and answers are cached for their TTL. The server is set
//! explicitly so tests can point the proxy at a DNS server on loopback. The messages are
//! written and read by [`weft_http::dns`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use weft_http::dns::{encode_query, normalize, parse_response, MAX_DATAGRAM};
pub(crate) use weft_http::dns::{DnsError, Resolved};

const TRY_TIMEOUT: Duration = Duration::from_secs(1);
const TRIES: usize = 2;
const MAX_CACHED_NAMES: usize = 1024;
/// Caps how long a changed address can go unseen, whatever the server claims.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// An IP literal never changes; callers may keep it as long as they like.
const LITERAL_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub(crate) struct Resolver {
    server: SocketAddr,
    /// Names (validated, lower-case, no trailing dot) → answer and when it expires.
    cache: Mutex<HashMap<String, (Resolved, Instant)>>,
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
mod tests;
