//! Writes the binary seeds of the fuzz corpus, which are built rather than typed:
//! Destination API update streams and routes, DNS answers, certificates and signing
//! requests.
//! `cargo run -p weft-fuzz --example seeds`, then commit what changed in `fuzz/corpus/`.

use std::path::Path;

use prost::Message;
use weft_api::destination::{self, route_match::Path as WirePath, update::Kind, Update};
use weft_api::routes::routes_to_wire;
use weft_core::ServiceName;
use weft_discovery::Table;
use weft_http::dns::answer::{pointer, record, response};
use weft_http::dns::{FLAG_QR, FLAG_RD, FLAG_TC};
use weft_http::dns::{TYPE_A, TYPE_CNAME};
use weft_identity::{Ca, Credentials, Identity, TrustDomain};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, bytes) in destination() {
        write(&corpus.join("destination"), name, &bytes)?;
    }
    for (name, bytes) in routes() {
        write(&corpus.join("destination_routes"), name, &bytes)?;
    }
    for (name, bytes) in dns() {
        write(&corpus.join("dns_response"), name, &bytes)?;
    }
    let (certs, csrs) = identity();
    for (name, bytes) in certs {
        write(&corpus.join("peer_cert"), name, &bytes)?;
    }
    for (name, bytes) in csrs {
        write(&corpus.join("csr"), name, &bytes)?;
    }
    Ok(())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn endpoint(addr: &str) -> destination::Endpoint {
    destination::Endpoint {
        addr: addr.into(),
        ..Default::default()
    }
}

fn set(endpoints: Vec<destination::Endpoint>) -> destination::EndpointSet {
    destination::EndpointSet {
        endpoints,
        ..Default::default()
    }
}

/// Updates as they follow each other on a stream, each length-delimited.
fn stream(kinds: Vec<Kind>) -> Vec<u8> {
    let mut out = Vec::new();
    for kind in kinds {
        let update = Update { kind: Some(kind) };
        update
            .encode_length_delimited(&mut out)
            .expect("a Vec grows");
    }
    out
}

fn destination() -> Vec<(&'static str, Vec<u8>)> {
    let full = destination::Endpoint {
        addr: "10.0.0.7:7778".into(),
        node_proxy: "10.0.1.2:4141".into(),
        protocol: destination::Protocol::Http2 as i32,
        weight: 3,
        labels: [("zone".to_string(), "zone-a".to_string())].into(),
    };
    let snapshot = destination::EndpointSet {
        endpoints: vec![full, endpoint("10.0.0.8:7778")],
        ports: vec![80, 7778],
        failover: vec!["zone-a".into(), "zone-b".into()],
    };
    vec![
        (
            "snapshot-add-remove",
            stream(vec![
                Kind::Snapshot(snapshot),
                Kind::Add(set(vec![endpoint("[::1]:7778")])),
                Kind::Remove(set(vec![endpoint("10.0.0.8:7778")])),
            ]),
        ),
        (
            "no-endpoints",
            stream(vec![Kind::NoEndpoints(destination::NoEndpoints {})]),
        ),
        (
            "does-not-exist",
            stream(vec![Kind::DoesNotExist(destination::DoesNotExist {})]),
        ),
        (
            "unreadable-address",
            stream(vec![Kind::Snapshot(set(vec![endpoint("nowhere")]))]),
        ),
    ]
}

/// docs/routing.md's example: a 90/10 split, and a rule with a match, a timeout and retries.
const ROUTING_DOC: &str = r#"
[services.world]
[[services.world.routes]]
name = "split"
backends = [{ service = "world-v1", weight = 90 }, { service = "world-v2", weight = 10 }]

[[services.world.routes]]
name = "beta"
matches = [{ path = { prefix = "/api" }, headers = [{ name = "x-beta", value = "1" }] }]
backends = [{ service = "world-v2" }]
timeout = { total = "2s", per_attempt = "500ms" }
retry = { max_retries = 1, statuses = ["503"], backoff = "25ms" }

[[services.world-v1.endpoints]]
addr = "10.0.0.7:7778"
[[services.world-v2.endpoints]]
addr = "10.0.0.8:7778"
"#;

fn routes() -> Vec<(&'static str, Vec<u8>)> {
    let table = Table::parse(Path::new("routing.md"), ROUTING_DOC).expect("the doc's example");
    let world = &table.routes[&ServiceName::new("world")];
    let rule = |name: &str, backend: &str| destination::RouteRule {
        name: name.into(),
        backends: vec![destination::Backend {
            service: backend.into(),
            weight: 1,
        }],
        ..Default::default()
    };
    let exact = destination::RouteRule {
        matches: vec![destination::RouteMatch {
            path: Some(WirePath::Exact("/healthz".into())),
            method: "GET".into(),
            headers: vec![],
            query: vec![destination::Condition {
                name: "v".into(),
                value: "2".into(),
            }],
        }],
        timeout_ms: Some(250),
        max_retries: Some(2),
        retry_grpc_codes: Some(destination::RetryCodes { codes: vec![14] }),
        ..rule("exact", "world-v2")
    };
    let wire = |rules| destination::Routes { rules }.encode_to_vec();
    vec![
        ("routing-doc", routes_to_wire(Some(world)).encode_to_vec()),
        ("exact-query-grpc-retry", wire(vec![exact])),
        ("nameless-backend", wire(vec![rule("bad", "")])),
    ]
}

const NAME: &str = "www.example.com";

fn dns() -> Vec<(&'static str, Vec<u8>)> {
    let mut single = response(7, FLAG_QR | FLAG_RD, 1, NAME);
    record(&mut single, &pointer(12), TYPE_A, 60, &[192, 0, 2, 1]);
    // www → edge → cdn → 192.0.2.7, every name compressed against an earlier one.
    let mut chain = response(7, FLAG_QR | FLAG_RD, 3, NAME);
    let edge = record(
        &mut chain,
        &pointer(12),
        TYPE_CNAME,
        300,
        b"\x04edge\xC0\x10",
    );
    let cdn = record(
        &mut chain,
        &pointer(edge),
        TYPE_CNAME,
        30,
        b"\x03cdn\xC0\x10",
    );
    record(&mut chain, &pointer(cdn), TYPE_A, 60, &[192, 0, 2, 7]);
    let nxdomain = response(7, FLAG_QR | FLAG_RD | 3, 0, NAME);
    let mut cut = response(7, FLAG_QR | FLAG_TC, 3, NAME);
    record(&mut cut, &pointer(12), TYPE_A, 20, &[192, 0, 2, 1]);
    cut.extend_from_slice(&[0xC0, 12, 0, 1]);
    let mut looped = response(7, FLAG_QR, 1, NAME);
    let at = looped.len();
    let mut owner = vec![1, b'a'];
    owner.extend_from_slice(&pointer(at));
    record(&mut looped, &owner, TYPE_A, 60, &[192, 0, 2, 7]);
    vec![
        ("single-a", single),
        ("cname-chain", chain),
        ("nxdomain", nxdomain),
        ("truncated", cut),
        ("pointer-loop", looped),
    ]
}

type Seeds = Vec<(&'static str, Vec<u8>)>;

/// Certificates as peers present them (a proxy's leaf, the issuer, the anchor) and signing
/// requests: a proxy's own for the proven identity and for another, and ones a proxy would
/// not send (asking to be a CA; two names).
fn identity() -> (Seeds, Seeds) {
    let td = TrustDomain::new("cluster.local").expect("a trust domain");
    let ca = Ca::ephemeral(td, std::time::Duration::from_secs(3600)).expect("a CA");
    let provider = rustls::crypto::ring::default_provider();
    let csr_of = |id: &str| {
        let id = Identity::parse(id).expect("a weft ID");
        Credentials::generate(id, &provider)
            .and_then(|c| c.csr())
            .expect("a signing request")
    };
    let proven = weft_fuzz::identity::PROVEN;
    let own = csr_of(proven);
    let proven_id = Identity::parse(proven).expect("a weft ID");
    let leaf = ca.certify(&own, &proven_id).expect("a leaf");
    let certs = vec![
        ("proxy-leaf.der", leaf.chain[0].to_vec()),
        ("issuer.der", leaf.chain[1].to_vec()),
        ("anchor.der", ca.bundle()[0].to_vec()),
    ];
    let other = csr_of("spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-2");
    let unusual = |ca_asked: bool, names: Vec<rcgen::SanType>| {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = names;
        if ca_asked {
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params
            .serialize_request(&key)
            .expect("a request")
            .der()
            .to_vec()
    };
    let uri = |s: &str| rcgen::SanType::URI(s.try_into().expect("an IA5 string"));
    let csrs = vec![
        ("proven.der", own),
        ("other-node.der", other),
        ("asks-for-ca.der", unusual(true, vec![uri(proven)])),
        (
            "two-names.der",
            unusual(
                false,
                vec![
                    uri(proven),
                    rcgen::SanType::DnsName("a.example".try_into().expect("a name")),
                ],
            ),
        ),
    ];
    (certs, csrs)
}
