//! Mutual TLS handshakes per second between two proxies' configurations (TLS 1.3 on ring,
//! P-256 leaves from the mesh's CA, both sides verifying the other's identity), over
//! loopback TCP, client and server on one thread: the CPU a new peer connection costs both
//! proxies together. `cargo bench -p weft-identity --bench handshakes` prints the figure;
//! `bench/run` adds it to bench/RESULTS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_identity::{tls, Ca, Credentials, Identity, TrustBundle, TrustDomain};

const SECONDS: u64 = 3;

fn proxy(ca: &Ca, node: &str) -> (Arc<Credentials>, Arc<TrustBundle>) {
    let td = ca.trust_domain();
    let id = Identity::node_proxy(td, "weft", "weft-proxy", node).unwrap();
    let creds = Credentials::generate(id, &tls::provider()).unwrap();
    let leaf = ca.certify(&creds.csr().unwrap(), creds.identity()).unwrap();
    creds.install(leaf).unwrap();
    let bundle = TrustBundle::new(
        td.clone(),
        ca.bundle().to_vec(),
        tls::provider().signature_verification_algorithms,
    )
    .unwrap();
    (Arc::new(creds), Arc::new(bundle))
}

fn main() {
    let ca = Ca::ephemeral(
        TrustDomain::new("cluster.local").unwrap(),
        Duration::from_secs(3600),
    )
    .unwrap();
    let (a_creds, a_bundle) = proxy(&ca, "node-a");
    let (b_creds, b_bundle) = proxy(&ca, "node-b");
    let mut client = (*tls::client_config(a_creds, a_bundle, tls::ALPN_H2).unwrap()).clone();
    // Every connection a full handshake, as the first to a peer is.
    client.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(b_creds, b_bundle).unwrap());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.write_all(b"x").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let name = ServerName::try_from("node-b").unwrap();
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < Duration::from_secs(SECONDS) {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
            // A byte from the server: its side of the handshake is done too.
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.unwrap();
            done += 1;
        }
        done as f64 / start.elapsed().as_secs_f64()
    });
    println!("mutual TLS handshakes between two proxies: {done:.0}/s (both sides on one core)");
}
