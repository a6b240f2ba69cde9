//! DNS messages on the wire, for the proxy's egress resolver: a query for one A record, and
//! the answer's addresses read out of a datagram from anyone, bounds-checked throughout
//! (compression pointers that only point back, CNAME chains of bounded length). Sockets,
//! retries and the cache are the resolver's, in weft-proxy.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The largest answer read: what fits one packet without fragmentation (DNS flag day 2020).
pub const MAX_DATAGRAM: usize = 1232;
const MAX_CNAME_HOPS: usize = 8;
const MAX_POINTER_JUMPS: usize = 16;
/// In wire form, length octets and the root label included (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 255;

pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
const RCODE_NXDOMAIN: u8 = 3;
pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
const TYPE_OPT: u16 = 41;
/// The OPT record a query ends with: root name, type, class, TTL, RDLENGTH.
pub const OPT_LEN: usize = 11;
pub const CLASS_IN: u16 = 1;

/// Why a host did not resolve: what the answer said or how it was broken, or why no answer
/// came. One type for the wire and the resolver, so callers match on one.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
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
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    /// How long the addresses may be used: the smallest TTL of the records that gave them.
    pub ttl: Duration,
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

/// The addresses a response gives for `name`, or `None` if the datagram answers another
/// query (a stray, or a late answer to an earlier one) and should be ignored.
pub fn parse_response(packet: &[u8], id: u16, name: &str) -> Result<Option<Resolved>, DnsError> {
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

pub fn encode_query(id: u16, name: &str) -> Vec<u8> {
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
pub fn encode_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// The name as queried and cached: checked, lower-case, without the trailing dot.
pub fn normalize(host: &str) -> Result<String, DnsError> {
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

#[doc(hidden)]
pub mod answer;

#[cfg(test)]
mod tests;
