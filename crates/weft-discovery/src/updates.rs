//! One service's Destination API stream folded into what the proxy routes on: a snapshot
//! replaces everything, adds and removes change it, and `NoEndpoints`/`DoesNotExist` empty
//! it. Kept apart from the stream's I/O so it is tested, and fuzzed, on messages alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use weft_api::{from_wire, BadEndpoint, Kind, Update};
use weft_core::{Endpoint, EndpointSet, Resolution};

/// What one stream has said of its service so far.
#[derive(Debug, Default)]
pub struct Followed {
    set: BTreeMap<SocketAddr, Endpoint>,
    /// The service's ports and failover zones, from the last snapshot (only snapshots
    /// carry them).
    ports: Arc<[u16]>,
    failover: Arc<[String]>,
}

impl Followed {
    /// Applies one update: the service's resolution after it, or `None` for a message of a
    /// kind this proxy does not know (a newer control plane's), which changes nothing. An
    /// endpoint that cannot be read fails the stream: its state would be a guess.
    pub fn apply(&mut self, update: Update) -> Result<Option<Resolution>, BadEndpoint> {
        match update.kind {
            Some(Kind::Snapshot(s)) => {
                self.set.clear();
                for ep in s.endpoints {
                    let ep = from_wire(ep)?;
                    self.set.insert(ep.addr, ep);
                }
                self.ports = s
                    .ports
                    .into_iter()
                    .filter_map(|p| u16::try_from(p).ok())
                    .collect();
                self.failover = s.failover.into();
            }
            Some(Kind::Add(s)) => {
                for ep in s.endpoints {
                    let ep = from_wire(ep)?;
                    self.set.insert(ep.addr, ep);
                }
            }
            Some(Kind::Remove(s)) => {
                for ep in s.endpoints {
                    self.set.remove(&from_wire(ep)?.addr);
                }
            }
            Some(Kind::NoEndpoints(_)) => self.set.clear(),
            Some(Kind::DoesNotExist(_)) => {
                self.set.clear();
                return Ok(Some(Resolution::DoesNotExist));
            }
            None => return Ok(None),
        }
        Ok(Some(self.resolution()))
    }

    fn resolution(&self) -> Resolution {
        let endpoints: Vec<Endpoint> = self.set.values().cloned().collect();
        let set = EndpointSet::new(endpoints, Arc::clone(&self.ports));
        Resolution::Endpoints(set.with_failover(Arc::clone(&self.failover)))
    }
}

#[cfg(test)]
mod tests {
    use weft_api::destination;

    use super::*;

    fn endpoint(addr: &str) -> destination::Endpoint {
        destination::Endpoint {
            addr: addr.into(),
            ..Default::default()
        }
    }

    fn set(addrs: &[&str]) -> destination::EndpointSet {
        destination::EndpointSet {
            endpoints: addrs.iter().map(|a| endpoint(a)).collect(),
            ..Default::default()
        }
    }

    fn update(kind: Kind) -> Update {
        Update { kind: Some(kind) }
    }

    fn addrs(resolution: Option<Resolution>) -> Vec<String> {
        match resolution {
            Some(Resolution::Endpoints(set)) => set.iter().map(|e| e.addr.to_string()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_snapshot_replaces_everything_and_changes_follow_it() {
        let mut f = Followed::default();
        let snapshot = destination::EndpointSet {
            ports: vec![80, 70_000],
            failover: vec!["zone-b".into()],
            ..set(&["10.0.0.1:80", "10.0.0.2:80"])
        };
        let got = f.apply(update(Kind::Snapshot(snapshot))).unwrap();
        assert_eq!(addrs(got), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert_eq!(&*f.ports, &[80]);
        let got = f.apply(update(Kind::Add(set(&["10.0.0.3:80"])))).unwrap();
        assert_eq!(addrs(got), ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
        let got = f
            .apply(update(Kind::Remove(set(&["10.0.0.1:80"]))))
            .unwrap();
        assert_eq!(addrs(got), ["10.0.0.2:80", "10.0.0.3:80"]);
        // Ports and zones come only with a snapshot, and go with the next.
        let got = f
            .apply(update(Kind::Snapshot(set(&["10.0.0.9:80"]))))
            .unwrap();
        assert_eq!(addrs(got), ["10.0.0.9:80"]);
        assert!(f.ports.is_empty() && f.failover.is_empty());
        let got = f.apply(update(Kind::NoEndpoints(destination::NoEndpoints {})));
        assert!(addrs(got.unwrap()).is_empty());
    }

    #[test]
    fn an_unknown_kind_changes_nothing_and_a_bad_endpoint_fails_the_stream() {
        let mut f = Followed::default();
        assert!(f.apply(Update { kind: None }).unwrap().is_none());
        assert!(f.apply(update(Kind::Add(set(&["nowhere"])))).is_err());
        let gone = update(Kind::DoesNotExist(destination::DoesNotExist {}));
        assert_eq!(f.apply(gone).unwrap(), Some(Resolution::DoesNotExist));
    }
}
