//! Egress: apps reach hosts outside the mesh through their proxy only when the config lists
//! them. Names are resolved by a real DNS server on loopback whose records the test sets,
//! the "external" servers are real processes on other loopback addresses, and the clients
//! are curl and a raw `CONNECT`.

use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_tests::backend::Backend;
use weft_tests::client::curl;
use weft_tests::discovery;
use weft_tests::dns::DnsServer;
use weft_tests::proxy::{metric, WeftProxy};
use weft_tests::site_cert;
use weft_tests::{python, TempDir};

const API_IP: &str = "127.0.0.5";
const TLS_IP: &str = "127.0.0.6";
const MOVED_IP: &str = "127.0.0.7";
const ORIGIN_IP: &str = "127.0.0.8";

/// A proxy on 127.0.0.2 reading `discovery` and the egress list in `config`.
async fn proxy(discovery: &std::path::Path, config: &std::path::Path) -> WeftProxy {
    let config = config.to_str().unwrap();
    WeftProxy::start_with("127.0.0.2", discovery, &["--config", config]).await
}

/// What a proxy answers a raw `CONNECT` to `target`: its status line.
async fn connect(proxy: std::net::SocketAddr, target: &str) -> String {
    let head = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    exchange(proxy, &head).await
}

/// What a proxy answers `head`, sent on a connection of its own: its first read.
async fn exchange(proxy: std::net::SocketAddr, head: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .map_or(0, |r| r.unwrap_or(0));
    String::from_utf8_lossy(&out[..n]).into_owned()
}

/// A listed host takes plain HTTP on its listed port, resolved through DNS (a record's TTL
/// honoured: a moved address is followed), with the mesh's metrics labelled with the name
/// from the list; a listed host's TLS goes through a `CONNECT` tunnel to a listed port, its
/// bytes counted. An unlisted host, an unlisted port and an unlisted `CONNECT` port are
/// refused with `403`, `weft-error: egress denied`, and nothing is resolved for them.
#[tokio::test]
async fn listed_hosts_are_reached_through_dns_and_everything_else_is_denied() {
    let api_ip: Ipv4Addr = API_IP.parse().unwrap();
    let tls_ip: Ipv4Addr = TLS_IP.parse().unwrap();
    let dns = DnsServer::start(&[
        ("api.example.test", api_ip, 1),
        ("tls.example.test", tls_ip, 300),
        // A listed name pointed at this machine (think 169.254.169.254).
        ("metadata.example.test", api_ip, 300),
    ])
    .await;
    let api = Backend::start(API_IP).await;
    // The host's new address answers on the same port: the listed port stays.
    let moved = tokio::net::TcpListener::bind((MOVED_IP, api.addr.port()))
        .await
        .unwrap();
    let moved = Backend::serve(moved);
    let dir = TempDir::new("egress");
    let folder = dir.path("").to_string_lossy().into_owned();
    let (_tls, tls_port) = python::serve("tunnel_peers.py", &["tls-serve", TLS_IP, &folder]).await;
    let config = dir.path("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"[egress]
dns_server = "{dns}"

# The "outside" servers are on loopback here, which a host may not resolve to otherwise.
[[egress.hosts]]
name = "api.example.test"
http_port = {api_port}
allow_internal = true

[[egress.hosts]]
name = "tls.example.test"
connect_ports = [{tls_port}]
allow_internal = true

[[egress.hosts]]
name = "metadata.example.test"
http_port = 80
"#,
            dns = dns.addr,
            api_port = api.addr.port(),
        ),
    )
    .unwrap();
    let discovery = dir.path("discovery.toml");
    let world = Backend::start("127.0.0.2").await;
    discovery::write(
        &discovery,
        &[("world", vec![discovery::Ep::direct(world.addr)])],
    );
    let proxy = proxy(&discovery, &config).await;
    let via = proxy.outbound.to_string();

    let url = format!("http://api.example.test:{}/echo", api.addr.port());
    // What leaves the mesh carries none of its context but the hop count.
    let rsp = curl(&[
        "-x",
        &via,
        "-H",
        "weft-ctx-override: hello => hello-v2",
        "-H",
        "weft-ctx-deadline: 99999999999999999",
        &url,
    ])
    .await;
    let echo: serde_json::Value = serde_json::from_slice(&rsp.body).unwrap();
    let sent: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        sent.iter()
            .all(|h| !h.starts_with("weft-") || *h == "weft-ctx-hops"),
        "{sent:?}"
    );
    // An override may send a mesh call to another mesh service only, never outside.
    let rsp = curl(&[
        "-x",
        &via,
        "-H",
        "weft-ctx-override: world => api.example.test",
        "http://world/",
    ])
    .await;
    assert_eq!(rsp.status, 400, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("bad override"));
    assert_eq!(world.count(), 0);
    // An https:// URL sent to the proxy as is would leave in the clear: refused.
    let https = format!(
        "GET https://api.example.test:{port}/ HTTP/1.1\r\nHost: api.example.test:{port}\r\n\r\n",
        port = api.addr.port()
    );
    let refused = exchange(proxy.outbound, &https).await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    for _ in 0..2 {
        let rsp = curl(&["-x", &via, &url]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        assert_eq!(rsp.header("x-backend"), Some(api.addr.to_string().as_str()));
    }
    let m = proxy.metrics().await;
    let requests = format!(
        "weft_requests_total{{direction=\"outbound\",service=\"api.example.test\",endpoint=\"{}\"}}",
        api.addr
    );
    assert_eq!(metric(&m, &requests), Some(3.0), "{m}");

    // Denied: a host not listed, a port not listed, a CONNECT port not listed — none
    // resolved.
    let asked = dns.queries();
    let denied: [(&str, String); 3] = [
        ("unlisted host", "http://elsewhere.example.test/".into()),
        ("unlisted port", "http://api.example.test:1/".into()),
        ("no plain HTTP listed", "http://tls.example.test/".into()),
    ];
    for (what, url) in denied {
        let rsp = curl(&["-x", &via, &url]).await;
        assert_eq!(rsp.status, 403, "{what}: {}", rsp.text());
        assert_eq!(rsp.header("weft-error"), Some("egress denied"), "{what}");
    }
    let refused = connect(proxy.outbound, "tls.example.test:444").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("weft-error: egress denied"),
        "{refused}"
    );
    let refused = connect(proxy.outbound, "elsewhere.example.test:443").await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert_eq!(dns.queries(), asked, "nothing resolved for what is denied");

    // A listed host whose DNS points inside the node has no usable address.
    let served = api.count();
    let rsp = curl(&["-x", &via, "http://metadata.example.test/"]).await;
    assert_eq!(rsp.status, 503, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("no endpoints"));
    weft_tests::eventually(
        "the internal answer logged",
        Duration::from_secs(5),
        || async {
            proxy
                .log()
                .contains("resolved to internal addresses")
                .then_some(())
        },
    )
    .await;
    assert_eq!(api.count(), served);

    // The app's own TLS, tunnelled to the listed port and relayed whole.
    let tls_url = format!("https://tls.example.test:{tls_port}/");
    let rsp = curl(&["-k", "-x", &via, &tls_url]).await;
    assert_eq!(rsp.status, 200, "{}", rsp.raw_head);
    assert_eq!(rsp.text(), format!("tls hello from {tls_port}\n"));
    let service = format!("tls.example.test:{tls_port}");
    let read =
        format!("weft_tunnel_read_bytes_total{{direction=\"outbound\",service=\"{service}\"}}");
    weft_tests::eventually(
        "the relay's bytes counted",
        Duration::from_secs(10),
        || async {
            let m = proxy.metrics().await;
            (metric(&m, &read)? > 100.0).then_some(())
        },
    )
    .await;

    // The record moves (TTL 1 s): requests follow it once the answer has expired.
    dns.set("api.example.test", MOVED_IP.parse().unwrap(), 1);
    weft_tests::eventually(
        "the moved address followed",
        Duration::from_secs(10),
        || async {
            let rsp = curl(&["-x", &via, &url]).await;
            (rsp.header("x-backend") == Some(moved.addr.to_string().as_str())).then_some(())
        },
    )
    .await;
}

/// A listed host marked `tls` is reached in TLS though its callers speak plain HTTP: the
/// proxy sends the host's name, checks its certificate against the listed roots, and keeps
/// the connection for the next request. A host whose certificate does not check is never
/// sent the request.
#[tokio::test]
async fn plain_http_to_a_tls_host_goes_out_in_tls_checked_against_its_roots() {
    let dir = TempDir::new("egress-tls");
    let site = site_cert::issue(dir.0.as_path(), "site", "secure.example.test");
    let ip: Ipv4Addr = ORIGIN_IP.parse().unwrap();
    let dns = DnsServer::start(&[
        ("secure.example.test", ip, 300),
        ("impostor.example.test", ip, 300),
    ])
    .await;
    let (cert, key) = (site.cert.to_str().unwrap(), site.key.to_str().unwrap());
    let (_server, port) =
        python::serve("tunnel_peers.py", &["tls-serve-with", ORIGIN_IP, cert, key]).await;
    let config = dir.path("proxy.toml");
    let host = |name: &str| {
        format!(
            "[[egress.hosts]]\nname = \"{name}\"\ntls = true\nhttp_port = {port}\ntls_ca = \"{}\"\nallow_internal = true\n",
            site.ca.display()
        )
    };
    std::fs::write(
        &config,
        format!(
            "[egress]\ndns_server = \"{}\"\n\n{}\n{}",
            dns.addr,
            host("secure.example.test"),
            host("impostor.example.test")
        ),
    )
    .unwrap();
    let discovery = dir.path("discovery.toml");
    discovery::write_raw(&discovery, "");
    let proxy = proxy(&discovery, &config).await;
    let via = proxy.outbound.to_string();
    for _ in 0..3 {
        let rsp = curl(&["-x", &via, "http://secure.example.test/"]).await;
        assert_eq!(rsp.status, 200, "{}", rsp.text());
        assert_eq!(rsp.text(), format!("tls hello from {port}\n"));
    }
    let m = proxy.metrics().await;
    let requests = format!(
        "weft_requests_total{{direction=\"outbound\",service=\"secure.example.test\",endpoint=\"{ORIGIN_IP}:{port}\"}}"
    );
    assert_eq!(metric(&m, &requests), Some(3.0), "{m}");
    // The certificate names secure.example.test, not impostor.example.test: refused.
    let rsp = curl(&["-x", &via, "http://impostor.example.test/"]).await;
    assert_eq!(rsp.status, 502, "{}", rsp.text());
    assert_eq!(rsp.header("weft-error"), Some("connect failed"));
    assert!(rsp.text().contains("TLS handshake"), "{}", rsp.text());
}
