//! Identity material from the network: the certificate a peer presents (the identity read
//! from its one URI SAN), SPIFFE IDs as those carry them, and the signing requests the
//! control plane's CA reads from proxies.

use std::sync::OnceLock;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use weft_identity::{peer_identity, Ca, CertifyError, Identity, TrustDomain};

/// The identity every `csr` input is taken to have proven (its token named it).
pub const PROVEN: &str = "spiffe://cluster.local/ns/weft/sa/weft-proxy/node/node-1";

/// A SPIFFE ID as a peer's certificate carries it: what parses is exactly the input, and
/// what weft derives from it (trust domain, node, the same proxy on another node) stays a
/// weft ID that says the same.
pub fn spiffe_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = Identity::parse(text) else {
        return;
    };
    assert_eq!(id.as_str(), text);
    assert!(text.starts_with(&format!("spiffe://{}/", id.trust_domain())));
    assert!(TrustDomain::new(id.trust_domain()).is_ok());
    match id.node() {
        Some(node) => {
            assert!(text.ends_with(&format!("/node/{node}")));
            assert_eq!(id.on_node(node).expect("its own node"), id);
            assert!(id.is_peer(&id));
        }
        None => assert!(!id.is_peer(&id)),
    }
    let proxies = id.proxies();
    assert_eq!(proxies.trust_domain(), id.trust_domain());
}

/// A certificate as a peer presents it: the identity read from it, if any, is a weft ID
/// that parses to itself.
pub fn peer_cert(data: &[u8]) {
    if let Some(id) = peer_identity(&CertificateDer::from(data)) {
        assert_eq!(Identity::parse(id.as_str()).ok(), Some(id));
    }
}

fn ca() -> &'static Ca {
    static CA: OnceLock<Ca> = OnceLock::new();
    CA.get_or_init(|| {
        let td = TrustDomain::new("cluster.local").expect("a trust domain");
        Ca::ephemeral(td, Duration::from_secs(3600)).expect("a CA")
    })
}

/// A signing request as a proxy sends it: whatever it asks, a leaf the CA signs names the
/// proven identity and nothing else, chains to the issuer, and nothing over the size limit
/// is read.
pub fn csr(data: &[u8]) {
    let proven = Identity::parse(PROVEN).expect("a weft ID");
    match ca().certify(data, &proven) {
        Ok(leaf) => {
            assert_eq!(leaf.chain.len(), 2);
            assert_eq!(&leaf.chain[1], ca().issuer());
            assert_eq!(peer_identity(&leaf.chain[0]), Some(proven));
        }
        Err(CertifyError::TooLarge(n)) => assert!(n > weft_identity::ca::MAX_CSR_BYTES),
        Err(_) => {}
    }
}
