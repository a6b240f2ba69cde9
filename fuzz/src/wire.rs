//! Binary messages from the network: the Destination API's updates and routes as a proxy
//! reads them off its stream from `weft control`, and DNS answers as the egress resolver
//! reads them off UDP.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Buf;
use prost::Message;
use weft_api::destination::{self, update::Kind, Update};
use weft_api::routes::{routes_from_wire, routes_to_wire};
use weft_core::Resolution;
use weft_discovery::updates::Followed;
use weft_http::dns::{self, DnsError};

/// Updates read off one stream, at most: a stream's worth of changes, bounded for speed.
const MAX_UPDATES: usize = 64;

/// A stream of length-delimited `Update`s, folded as the proxy folds them: a snapshot holds
/// exactly its endpoints, an add makes its endpoints present and a remove absent, and the
/// set is always one entry per address, in order.
pub fn destination(data: &[u8]) {
    let mut buf = data;
    let mut followed = Followed::default();
    for _ in 0..MAX_UPDATES {
        if !buf.has_remaining() {
            return;
        }
        let Ok(update) = Update::decode_length_delimited(&mut buf) else {
            return;
        };
        let expected = expectation(&update);
        // An endpoint the proxy cannot read fails the stream, which is then reopened.
        let Ok(resolution) = followed.apply(update) else {
            return;
        };
        let addrs: Vec<SocketAddr> = match resolution {
            None => continue,
            Some(Resolution::DoesNotExist) => {
                assert!(matches!(expected, Expect::Gone));
                continue;
            }
            Some(Resolution::Pending) => panic!("a stream never says pending"),
            Some(Resolution::Endpoints(set)) => set.iter().map(|e| e.addr).collect(),
        };
        assert!(addrs.windows(2).all(|w| w[0] < w[1]), "{addrs:?}");
        let present: BTreeSet<SocketAddr> = addrs.into_iter().collect();
        match expected {
            Expect::Exactly(set) => assert_eq!(present, set),
            Expect::Present(set) => assert!(present.is_superset(&set)),
            Expect::Absent(set) => assert!(present.is_disjoint(&set)),
            Expect::Gone => panic!("DoesNotExist resolves to DoesNotExist"),
            Expect::Nothing => {}
        }
    }
}

/// What an update must leave, by address.
enum Expect {
    Exactly(BTreeSet<SocketAddr>),
    Present(BTreeSet<SocketAddr>),
    Absent(BTreeSet<SocketAddr>),
    Gone,
    Nothing,
}

fn expectation(update: &Update) -> Expect {
    let addrs = |set: &destination::EndpointSet| {
        set.endpoints
            .iter()
            .filter_map(|e| e.addr.parse().ok())
            .collect()
    };
    match &update.kind {
        Some(Kind::Snapshot(set)) => Expect::Exactly(addrs(set)),
        Some(Kind::Add(set)) => Expect::Present(addrs(set)),
        Some(Kind::Remove(set)) => Expect::Absent(addrs(set)),
        Some(Kind::NoEndpoints(_)) => Expect::Exactly(BTreeSet::new()),
        Some(Kind::DoesNotExist(_)) => Expect::Gone,
        None => Expect::Nothing,
    }
}

/// A service's routes off the wire: routes accepted, written back as the control plane
/// writes them, read the same.
pub fn destination_routes(data: &[u8]) {
    let Ok(msg) = destination::Routes::decode(data) else {
        return;
    };
    let had_rules = !msg.rules.is_empty();
    match routes_from_wire(msg) {
        Ok(Some(routes)) => {
            let again = routes_from_wire(routes_to_wire(Some(&routes)));
            assert_eq!(again, Ok(Some(routes)));
        }
        Ok(None) => assert!(!had_rules),
        Err(_) => {}
    }
}

/// A DNS answer to the query for `www.example.com` with id 7 (as the resolver's own tests
/// build them): the addresses are never none, and a datagram answers only the query with
/// its own id.
pub fn dns_response(data: &[u8]) {
    const NAME: &str = "www.example.com";
    let short = data.len() < 12;
    let ignored = |result: &Result<Option<dns::Resolved>, DnsError>| {
        matches!(result, Ok(None)) || (short && matches!(result, Err(DnsError::Malformed)))
    };
    let result = dns::parse_response(data, 7, NAME);
    match &result {
        Ok(Some(resolved)) => assert!(!resolved.addrs.is_empty()),
        Ok(None) => {}
        Err(DnsError::Malformed | DnsError::NotFound(_) | DnsError::Truncated) => {}
        Err(DnsError::Server { rcode }) => assert!(*rcode != 0 && *rcode < 16),
        Err(e) => panic!("no I/O, no timeout, no name checks here: {e}"),
    }
    let Some(id) = data.get(..2).map(|id| u16::from_be_bytes([id[0], id[1]])) else {
        assert!(matches!(result, Err(DnsError::Malformed)));
        return;
    };
    if id != 7 {
        assert!(ignored(&result), "{result:?}");
    }
    let other = dns::parse_response(data, id.wrapping_add(1), NAME);
    assert!(ignored(&other), "{other:?}");
}
