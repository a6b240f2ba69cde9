//! world's instances, which the autoscaler grows and shrinks while traffic flows, without
//! a failed request:
//! - an instance joins listening, listed first by its own node's proxy only (whose inbound
//!   then takes what peers send it), then by every proxy;
//! - an instance leaves the other way: every other proxy stops sending to it, then, a
//!   moment later, its own node's proxy; then it answers what it holds and stops.
//!
//! Each proxy reads its own discovery file for that ([`Files::PerNode`]): with one file for
//! all, a peer could pick a new instance before its node's inbound knows it (and be told
//! `not local`), or after that inbound forgot an old one.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use crate::app::{self, AppConfig};
use crate::demo::DemoError;
use crate::discovery::{self, Files, Listed, Shape};

/// How long a proxy is given to read a changed file: it reads within 50 ms of the event,
/// or at its 2 s poll if the event was lost.
const LOAD_WAIT: Duration = Duration::from_secs(5);
/// How long an instance that every peer has stopped choosing is still listed by its own
/// node's inbound: long enough for requests those peers chose just before to arrive there.
/// They are already on the peers' open HTTP/2 hop on loopback, a few milliseconds away; a
/// second is a wide margin even on a loaded machine, and the only cost is that second.
const IN_TRANSIT: Duration = Duration::from_secs(1);

/// A node, as the fleet needs it: where to bind, which proxy to ask, what else it runs.
pub(crate) struct FleetNode {
    pub name: String,
    pub ip: IpAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    pub hello: Vec<SocketAddr>,
    pub world_v2: Vec<SocketAddr>,
    /// What a world instance on this node is started with.
    pub app: AppConfig,
}

/// Who lists an instance.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Listing {
    /// Only its own node's proxy: joining, or leaving.
    Home,
    Everywhere,
}

struct Instance {
    node: usize,
    /// Its place among its node's instances: its port is the base port plus this.
    slot: usize,
    addr: SocketAddr,
    listing: Listing,
    /// Dropped or set: it takes no new connection and answers what it holds.
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub(crate) struct Fleet {
    nodes: Vec<FleetNode>,
    files: Files,
    shape: Shape,
    instances: Vec<Instance>,
    /// What each file holds, so an unchanged one is not written again.
    written: Vec<String>,
}

impl Fleet {
    pub fn new(nodes: Vec<FleetNode>, files: Files, shape: Shape) -> Self {
        Self {
            nodes,
            files,
            shape,
            instances: Vec::new(),
            written: Vec::new(),
        }
    }

    /// World's instances listed everywhere.
    pub fn count(&self) -> usize {
        self.instances
            .iter()
            .filter(|i| i.listing == Listing::Everywhere)
            .count()
    }

    /// The addresses of node `i`'s instances.
    pub fn on_node(&self, i: usize) -> Vec<SocketAddr> {
        let mut on: Vec<_> = self.instances.iter().filter(|x| x.node == i).collect();
        on.sort_by_key(|x| x.slot);
        on.iter().map(|x| x.addr).collect()
    }

    /// Starts `n` instances before the proxies read any file: listed everywhere at once.
    pub async fn start(&mut self, n: usize) -> Result<(), DemoError> {
        for _ in 0..n {
            self.launch(Listing::Everywhere).await?;
        }
        self.write()?;
        Ok(())
    }

    /// Starts `n` more instances, each on the node with the fewest, and lists them: by
    /// their own node's proxy, then by every proxy. Returns how many it started.
    pub async fn grow(&mut self, n: usize) -> usize {
        let mut joined = Vec::new();
        for _ in 0..n {
            match self.launch(Listing::Home).await {
                Ok(addr) => joined.push(addr),
                Err(e) => {
                    tracing::warn!(error = %e, "world: no more instances this time");
                    break;
                }
            }
        }
        if joined.is_empty() {
            return 0;
        }
        self.write_or_warn();
        for x in self.instances.iter().filter(|x| joined.contains(&x.addr)) {
            listed_by(self.nodes[x.node].admin, x.addr, true).await;
        }
        for x in self
            .instances
            .iter_mut()
            .filter(|x| joined.contains(&x.addr))
        {
            x.listing = Listing::Everywhere;
        }
        self.write_or_warn();
        joined.len()
    }

    /// Takes `n` instances away, from the nodes with the most: every other proxy drops
    /// them, then their own node's; then each answers what it holds and stops.
    pub async fn shrink(&mut self, n: usize) -> usize {
        let mut leaving = Vec::new();
        for _ in 0..n.min(self.count()) {
            let Some(x) = self.next_to_leave() else { break };
            self.instances[x].listing = Listing::Home;
            leaving.push(self.instances[x].addr);
        }
        self.write_or_warn();
        for x in self.instances.iter().filter(|x| leaving.contains(&x.addr)) {
            for (i, node) in self.nodes.iter().enumerate() {
                if i != x.node {
                    listed_by(node.admin, x.addr, false).await;
                }
            }
        }
        tokio::time::sleep(IN_TRANSIT).await;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.instances)
            .into_iter()
            .partition(|x| leaving.contains(&x.addr));
        self.instances = kept;
        self.write_or_warn();
        for x in &gone {
            listed_by(self.nodes[x.node].admin, x.addr, false).await;
        }
        for x in gone {
            x.stop.send_replace(true);
            let _ = x.task.await;
        }
        leaving.len()
    }

    /// The newest instance of the node with the most (the last such node on a tie).
    fn next_to_leave(&self) -> Option<usize> {
        let per_node = self.per_node(Listing::Everywhere);
        let most = (0..self.nodes.len()).max_by_key(|&i| (per_node[i], i))?;
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, x)| x.node == most && x.listing == Listing::Everywhere)
            .max_by_key(|(_, x)| x.slot)
            .map(|(i, _)| i)
    }

    fn per_node(&self, listing: Listing) -> Vec<usize> {
        let mut n = vec![0; self.nodes.len()];
        for x in self.instances.iter().filter(|x| x.listing == listing) {
            n[x.node] += 1;
        }
        n
    }

    /// Binds and starts one instance on the node with the fewest (the first on a tie).
    async fn launch(&mut self, listing: Listing) -> Result<SocketAddr, DemoError> {
        let mut per_node = vec![0; self.nodes.len()];
        for x in &self.instances {
            per_node[x.node] += 1;
        }
        let node = (0..self.nodes.len())
            .min_by_key(|&i| (per_node[i], i))
            .ok_or_else(|| DemoError::Proxy("no nodes to run world on".into()))?;
        let slot = (0..)
            .find(|s| {
                !self
                    .instances
                    .iter()
                    .any(|x| x.node == node && x.slot == *s)
            })
            .unwrap_or(0);
        let n = &self.nodes[node];
        let addr = SocketAddr::new(n.ip, crate::demo::port_plus(self.shape.world_port, slot));
        let listener = crate::demo::bind(format!("{} world", n.name), addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(app::serve(listener, n.app.clone(), stopped));
        self.instances.push(Instance {
            node,
            slot,
            addr,
            listing,
            stop,
            task,
        });
        Ok(addr)
    }

    fn write_or_warn(&mut self) {
        if let Err(e) = self.write() {
            tracing::warn!(error = %e, "cannot write the discovery files");
        }
    }

    /// Writes every file whose document changed.
    fn write(&mut self) -> std::io::Result<()> {
        let paths: Vec<_> = match &self.files {
            Files::Shared(p) => vec![(None, p.clone())],
            Files::PerNode(ps) => ps
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, p)| (Some(i), p))
                .collect(),
        };
        self.written.resize(paths.len(), String::new());
        for (k, (reader, path)) in paths.into_iter().enumerate() {
            let text = self.document(reader);
            if self.written[k] != text {
                discovery::write(&path, &text)?;
                self.written[k] = text;
            }
        }
        Ok(())
    }

    /// The document node `reader`'s proxy reads (`None`: every proxy's).
    fn document(&self, reader: Option<usize>) -> String {
        let listed: Vec<Listed<'_>> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut on: Vec<&Instance> = self
                    .instances
                    .iter()
                    .filter(|x| x.node == i)
                    .filter(|x| {
                        x.listing == Listing::Everywhere || reader.is_none_or(|r| r == x.node)
                    })
                    .collect();
                on.sort_by_key(|x| x.slot);
                Listed {
                    name: &n.name,
                    inbound: n.inbound,
                    hello: &n.hello,
                    world: on.iter().map(|x| x.addr).collect(),
                    world_v2: &n.world_v2,
                }
            })
            .collect();
        discovery::render(&self.shape, &listed)
    }
}

/// Waits (up to [`LOAD_WAIT`]) until the proxy at `admin` lists `addr` as world's, or no
/// longer does; says whether it came to pass.
async fn listed_by(admin: SocketAddr, addr: SocketAddr, listed: bool) -> bool {
    let url = format!("http://{admin}/endpoints");
    let deadline = tokio::time::Instant::now() + LOAD_WAIT;
    loop {
        if let Ok(body) = weft_dashboard::fetch::get(&url, Duration::from_secs(1)).await {
            if lists(&body, addr) == Some(listed) {
                return true;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(%admin, %addr, listed, "the proxy did not take the change in time");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a proxy's `/endpoints` lists `addr` among world's; `None` if unreadable.
fn lists(body: &[u8], addr: SocketAddr) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let addr = addr.to_string();
    let eps = v["services"]["world"]["endpoints"].as_array();
    Some(eps.is_some_and(|eps| eps.iter().any(|e| e["addr"] == addr.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u8) -> FleetNode {
        FleetNode {
            name: format!("node-{i}"),
            ip: IpAddr::from([127, 0, 0, 1]),
            inbound: SocketAddr::from(([127, 0, 0, i], 4141)),
            admin: SocketAddr::from(([127, 0, 0, i], 9990)),
            hello: Vec::new(),
            world_v2: Vec::new(),
            app: AppConfig {
                text: "world".into(),
                target: None,
                proxy: None,
                latency: Duration::ZERO,
                failure_rate: 0.0,
            },
        }
    }

    #[tokio::test]
    async fn instances_spread_over_the_nodes_and_a_moving_one_is_listed_at_home_only() {
        let dir = std::env::temp_dir().join(format!("weft-fleet-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shape = Shape {
            hello_port: 0,
            world_port: 0,
            split: false,
        };
        let mut fleet = Fleet::new(vec![node(2), node(3)], Files::per_node(&dir, 2), shape);
        fleet.start(3).await.unwrap();
        assert_eq!(fleet.count(), 3);
        assert_eq!((fleet.on_node(0).len(), fleet.on_node(1).len()), (2, 1));
        // The first node has the most: its newest leaves first.
        let leaving = fleet.next_to_leave().unwrap();
        assert_eq!(fleet.instances[leaving].addr, fleet.on_node(0)[1]);
        // Leaving (or joining), an instance is in its own node's document only.
        fleet.instances[leaving].listing = Listing::Home;
        let addr = format!("addr = \"{}\"", fleet.instances[leaving].addr);
        assert!(fleet.document(Some(0)).contains(&addr));
        assert!(!fleet.document(Some(1)).contains(&addr));
        assert_eq!(fleet.count(), 2);
        // The files on disk hold what each node's proxy is to read.
        fleet.write().unwrap();
        let read = |i: usize| {
            std::fs::read_to_string(dir.join(format!("discovery-node-{i}.toml"))).unwrap()
        };
        assert!(read(1).contains(&addr) && !read(2).contains(&addr));
        assert!(read(2).contains("node = \"127.0.0.2:4141\""), "{}", read(2));
        drop(fleet);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_proxy_lists_an_endpoint_by_its_address() {
        let body = br#"{"services":{"world":{"endpoints":[{"addr":"127.0.0.2:7778"}]},
                        "hello":{"endpoints":[{"addr":"127.0.0.3:7778"}]}}}"#;
        let at = |a: &str| a.parse().unwrap();
        assert_eq!(lists(body, at("127.0.0.2:7778")), Some(true));
        assert_eq!(lists(body, at("127.0.0.3:7778")), Some(false));
        assert_eq!(
            lists(br#"{"services":{}}"#, at("127.0.0.2:7778")),
            Some(false)
        );
        assert_eq!(lists(b"not json", at("127.0.0.2:7778")), None);
    }
}
