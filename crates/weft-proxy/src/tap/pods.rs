//! The pods discovery knows, by address: a tap event names the pod its request came from.
//! Rebuilt at most every few seconds, only while something is tapped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_discovery::Discover;

/// How stale the index may be: a pod that just started shows by address for this long.
const REFRESH: Duration = Duration::from_secs(5);

/// The endpoint label discovery names a Kubernetes endpoint's pod by.
const POD_LABEL: &str = "pod";

pub(super) struct Pods {
    discovery: Arc<dyn Discover>,
    /// When it was built, and each address's pod (`None` where several share it).
    index: Mutex<Option<(Instant, ByIp)>>,
}

type ByIp = HashMap<IpAddr, Option<String>>;

impl Pods {
    pub(super) fn new(discovery: Arc<dyn Discover>) -> Self {
        Self {
            discovery,
            index: Mutex::new(None),
        }
    }

    /// The pod at `ip`, when exactly one is known there (on Kubernetes a pod's address is
    /// its own; on a demo node every instance shares one, and none is named).
    pub(super) fn at(&self, ip: IpAddr) -> Option<String> {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = index.as_ref().is_some_and(|(at, _)| at.elapsed() < REFRESH);
        if !fresh {
            *index = Some((Instant::now(), self.build()));
        }
        index.as_ref()?.1.get(&ip).cloned().flatten()
    }

    fn build(&self) -> ByIp {
        let mut by_ip = ByIp::new();
        for (_, set) in self.discovery.snapshot() {
            for ep in set.iter() {
                let pod = ep.labels.get(POD_LABEL).cloned();
                by_ip
                    .entry(ep.addr.ip())
                    .and_modify(|known| {
                        if *known != pod {
                            *known = None;
                        }
                    })
                    .or_insert(pod);
            }
        }
        by_ip
    }
}
