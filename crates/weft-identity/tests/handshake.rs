//! Real TLS handshakes over loopback sockets between credentials the CA signed: who is
//! let in, who is refused and why.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use weft_identity::{
    tls, Ca, CertifyError, Credentials, Identity, Refusal, TrustBundle, TrustDomain,
};

struct Node {
    creds: Arc<Credentials>,
    bundle: Arc<TrustBundle>,
    refused: Arc<Mutex<Vec<Refusal>>>,
}

fn td() -> TrustDomain {
    TrustDomain::new("cluster.local").unwrap()
}

fn id(node: &str) -> Identity {
    Identity::node_proxy(&td(), "weft", "weft-proxy", node).unwrap()
}

/// A proxy on `node` with a leaf from `ca`, trusting `trusts`' anchors.
fn node(ca: &Ca, trusts: &Ca, node: &str) -> Node {
    let creds = Credentials::generate(id(node), &tls::provider()).unwrap();
    let leaf = ca.certify(&creds.csr().unwrap(), creds.identity()).unwrap();
    creds.install(leaf).unwrap();
    bundle_for(creds, trusts)
}

fn bundle_for(creds: Credentials, trusts: &Ca) -> Node {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&refused);
    let bundle = TrustBundle::new(
        trusts.trust_domain().clone(),
        trusts.bundle().to_vec(),
        tls::provider().signature_verification_algorithms,
    )
    .unwrap();
    bundle.on_refused(Arc::new(move |why| r.lock().unwrap().push(why)));
    Node {
        creds: Arc::new(creds),
        bundle: Arc::new(bundle),
        refused,
    }
}

fn ca() -> Ca {
    Ca::ephemeral(td(), Duration::from_secs(3600)).unwrap()
}

/// A TLS server for one connection on loopback; the task says whether its handshake passed.
async fn accept_once(config: Arc<rustls::ServerConfig>) -> (SocketAddr, JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.is_ok()
    });
    (addr, served)
}

/// A mesh proxy's server configuration for `node`.
fn server_of(node: &Node) -> Arc<rustls::ServerConfig> {
    tls::server_config(Arc::clone(&node.creds), Arc::clone(&node.bundle)).unwrap()
}

/// Dials `server` from `client` expecting `expected`; the identities each side saw, or the
/// client's error.
async fn handshake(
    client: &Node,
    server: &Node,
    node: Option<&str>,
) -> Result<(Option<Identity>, Option<Identity>), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(server_of(server));
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let seen = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| weft_identity::peer_identity(&c[0]));
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(seen)
    });
    let connector = TlsConnector::from(
        tls::client_config(
            Arc::clone(&client.creds),
            Arc::clone(&client.bundle),
            tls::ALPN_H2,
        )
        .unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    // The node dialled, as the proxy names it; or only the address.
    let name = match node {
        Some(n) => ServerName::try_from(n.to_string()).unwrap(),
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let result = async {
        let mut tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let seen = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| weft_identity::peer_identity(&c[0]));
        let mut buf = Vec::new();
        // In TLS 1.3 the server checks the client's certificate after the client thinks it
        // is done: a refused client learns it on its first read.
        tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(buf, b"ok");
        Ok::<_, String>(seen)
    }
    .await;
    let server_side = served.await.unwrap();
    let client_saw = result?;
    let server_saw = server_side?;
    Ok((client_saw, server_saw))
}

#[tokio::test]
async fn two_proxies_of_one_mesh_see_each_others_identity() {
    let ca = ca();
    let (a, b) = (node(&ca, &ca, "node-a"), node(&ca, &ca, "node-b"));
    let (client_saw, server_saw) = handshake(&a, &b, Some("node-b")).await.unwrap();
    assert_eq!(client_saw, Some(id("node-b")));
    assert_eq!(server_saw, Some(id("node-a")));
    assert!(a.refused.lock().unwrap().is_empty() && b.refused.lock().unwrap().is_empty());
}

/// A workload of the mesh's namespace with a leaf from `ca` (the ingress, say).
fn workload(ca: &Ca, sa: &str) -> Node {
    let id = Identity::workload(&td(), "weft", sa).unwrap();
    let creds = Credentials::generate(id, &tls::provider()).unwrap();
    let leaf = ca.certify(&creds.csr().unwrap(), creds.identity()).unwrap();
    creds.install(leaf).unwrap();
    bundle_for(creds, ca)
}

/// The ingress is no node's proxy, yet dials them: it checks the node's proxy it dialled,
/// and every proxy's inbound takes it. Another workload of the mesh is no proxy's client.
#[tokio::test]
async fn the_ingress_dials_node_proxies_and_no_other_workload_may() {
    let ca = ca();
    let b = node(&ca, &ca, "node-b");
    let ingress = workload(&ca, weft_identity::INGRESS_ACCOUNT);
    let (client_saw, server_saw) = handshake(&ingress, &b, Some("node-b")).await.unwrap();
    assert_eq!(client_saw, Some(id("node-b")));
    assert_eq!(server_saw, Some(ingress.creds.identity().clone()));
    // Dialled as another node, b is refused by the ingress as by any proxy.
    assert!(handshake(&ingress, &b, Some("node-c")).await.is_err());
    let other = workload(&ca, "weft-other");
    assert!(handshake(&other, &b, Some("node-b")).await.is_err());
    assert_eq!(*b.refused.lock().unwrap(), [Refusal::WrongIdentity]);
}

#[tokio::test]
async fn a_proxy_dialled_as_one_node_must_have_that_nodes_identity() {
    let ca = ca();
    let (a, b) = (node(&ca, &ca, "node-a"), node(&ca, &ca, "node-b"));
    handshake(&a, &b, Some("node-b")).await.unwrap();
    // Discovery says node-c's proxy is at b's address: b's leaf does not name node-c.
    let err = handshake(&a, &b, Some("node-c")).await.unwrap_err();
    assert!(err.contains("NotValidForName"), "{err}");
    assert_eq!(*a.refused.lock().unwrap(), [Refusal::WrongIdentity]);
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused() {
    let (ours, theirs) = (ca(), ca());
    let a = node(&ours, &ours, "node-a");
    let intruder = node(&theirs, &ours, "node-b");
    let err = handshake(&a, &intruder, None).await.unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert_eq!(*a.refused.lock().unwrap(), [Refusal::UnknownIssuer]);
}

#[tokio::test]
async fn a_client_from_another_ca_is_refused() {
    let (ours, theirs) = (ca(), ca());
    let b = node(&ours, &ours, "node-b");
    // The intruder trusts our anchor, so only the server's check can stop it.
    let intruder = node(&theirs, &ours, "node-a");
    assert!(handshake(&intruder, &b, None).await.is_err());
    assert_eq!(*b.refused.lock().unwrap(), [Refusal::UnknownIssuer]);
}

#[tokio::test]
async fn a_self_signed_peer_is_refused_as_such() {
    let ca = ca();
    let a = node(&ca, &ca, "node-a");
    // It names a node of ours and vouches for itself.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        id("node-b").to_string().try_into().unwrap(),
    )];
    let cert = params.self_signed(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let (addr, _served) = accept_once(Arc::new(config)).await;
    let connector = TlsConnector::from(
        tls::client_config(Arc::clone(&a.creds), Arc::clone(&a.bundle), tls::ALPN_H2).unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    assert!(connector.connect(name, tcp).await.is_err());
    assert_eq!(*a.refused.lock().unwrap(), [Refusal::SelfSigned]);
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = ca();
    let b = node(&ca, &ca, "node-b");
    let bare = bundle_for(
        Credentials::generate(id("node-a"), &tls::provider()).unwrap(),
        &ca,
    );
    let err = handshake(&bare, &b, None).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn expired_and_not_yet_valid_leaves_are_refused() {
    let ca = ca();
    let a = node(&ca, &ca, "node-a");
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    for ((from, to), why) in [
        ((now - 2 * hour, now - hour), Refusal::Expired),
        ((now + hour, now + 2 * hour), Refusal::NotYetValid),
    ] {
        let creds = Credentials::generate(id("node-b"), &tls::provider()).unwrap();
        let leaf = ca
            .certify_between(&creds.csr().unwrap(), creds.identity(), from, to)
            .unwrap();
        creds.install(leaf).unwrap();
        let b = bundle_for(creds, &ca);
        assert!(handshake(&a, &b, None).await.is_err());
        assert_eq!(a.refused.lock().unwrap().pop(), Some(why));
    }
}

#[tokio::test]
async fn the_ca_never_signs_a_name_of_another_trust_domain() {
    let ca = ca();
    let other = TrustDomain::new("other.example").unwrap();
    let foreign = Identity::node_proxy(&other, "weft", "weft-proxy", "node-b").unwrap();
    let creds = Credentials::generate(foreign.clone(), &tls::provider()).unwrap();
    let err = ca.certify(&creds.csr().unwrap(), &foreign).unwrap_err();
    assert!(matches!(err, CertifyError::WrongIdentity { .. }), "{err}");
}

#[test]
fn the_ca_signs_only_what_was_proven_and_never_a_ca() {
    let ca = ca();
    let creds = Credentials::generate(id("node-a"), &tls::provider()).unwrap();
    let csr = creds.csr().unwrap();
    // Someone proving node-b asks with node-a's request.
    let err = ca.certify(&csr, &id("node-b")).unwrap_err();
    assert!(matches!(err, CertifyError::WrongIdentity { .. }), "{err}");
    // A tampered request: its signature no longer matches.
    let mut tampered = csr.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        ca.certify(&tampered, &id("node-a")).unwrap_err(),
        CertifyError::Malformed
    );
    // Oversized, and garbage.
    let big = vec![0u8; weft_identity::ca::MAX_CSR_BYTES + 1];
    assert!(matches!(
        ca.certify(&big, &id("node-a")),
        Err(CertifyError::TooLarge(_))
    ));
    assert_eq!(
        ca.certify(b"nonsense", &id("node-a")).unwrap_err(),
        CertifyError::Malformed
    );
    // A request to be a CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        id("node-a").to_string().try_into().unwrap(),
    )];
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_csr = params.serialize_request(&key).unwrap().der().to_vec();
    assert_eq!(
        ca.certify(&ca_csr, &id("node-a")).unwrap_err(),
        CertifyError::AsksForCa
    );
    // And the good one: a leaf of that identity, then the issuer.
    let leaf = ca.certify(&csr, &id("node-a")).unwrap();
    assert_eq!(leaf.chain.len(), 2);
    assert_eq!(
        weft_identity::peer_identity(&leaf.chain[0]),
        Some(id("node-a"))
    );
}

/// The leaf `server` presents to `client` (who checks it against its bundle).
async fn served_leaf(client: &Node, server: &Node) -> Vec<u8> {
    let (addr, _served) = accept_once(server_of(server)).await;
    let connector = TlsConnector::from(
        tls::client_config(
            Arc::clone(&client.creds),
            Arc::clone(&client.bundle),
            tls::ALPN_H2,
        )
        .unwrap(),
    );
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_renewed_leaf_is_served_from_the_next_handshake_on() {
    let ca = ca();
    let a = node(&ca, &ca, "node-a");
    let b = node(&ca, &ca, "node-b");
    let before = served_leaf(&a, &b).await;
    let leaf = ca
        .certify(&b.creds.csr().unwrap(), b.creds.identity())
        .unwrap();
    let renewed = leaf.chain[0].to_vec();
    assert_ne!(renewed, before);
    b.creds.install(leaf).unwrap();
    assert_eq!(served_leaf(&a, &b).await, renewed);
    // A leaf for another key is not installed.
    let other = Credentials::generate(id("node-b"), &tls::provider()).unwrap();
    let wrong = ca.certify(&other.csr().unwrap(), other.identity()).unwrap();
    assert!(b.creds.install(wrong).is_err());
    assert_eq!(served_leaf(&a, &b).await, renewed);
}

#[tokio::test]
async fn a_mesh_leaf_that_is_not_one_of_its_proxies_is_refused_on_both_sides() {
    let ca = ca();
    let a = node(&ca, &ca, "node-a");
    // The control plane's identity, and a proxy identity of another namespace: both signed
    // by our CA, neither a node proxy of ours.
    for other in [
        Identity::workload(&td(), "weft", "weft-control").unwrap(),
        Identity::node_proxy(&td(), "tenant", "weft-proxy", "node-b").unwrap(),
    ] {
        let creds = Credentials::generate(other.clone(), &tls::provider()).unwrap();
        let leaf = ca.certify(&creds.csr().unwrap(), &other).unwrap();
        creds.install(leaf).unwrap();
        let creds = Arc::new(creds);
        // As a server: whoever dials it refuses it.
        // Its own bundle: a refusal it made would not count as `a`'s.
        let stranger = Node {
            creds: Arc::clone(&creds),
            bundle: Arc::new(
                TrustBundle::new(
                    td(),
                    ca.bundle().to_vec(),
                    tls::provider().signature_verification_algorithms,
                )
                .unwrap(),
            ),
            refused: Arc::default(),
        };
        assert!(handshake(&a, &stranger, None).await.is_err(), "{other}");
        assert_eq!(
            a.refused.lock().unwrap().pop(),
            Some(Refusal::WrongIdentity)
        );
        // As a client that would accept any server: the server refuses it.
        let (addr, served) = accept_once(server_of(&a)).await;
        let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_client_cert_resolver(creds);
        config.alpn_protocols = vec![tls::ALPN_H2.to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        let _ = TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await;
        assert!(!served.await.unwrap(), "{other} was let in");
        assert_eq!(
            a.refused.lock().unwrap().pop(),
            Some(Refusal::WrongIdentity)
        );
    }
}

/// A client that trusts any server: only the server's check stands.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
