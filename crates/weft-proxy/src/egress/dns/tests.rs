//! The resolver's cache, and the resolver against a UDP server on loopback (the messages'
//! own tests are weft-http's).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use weft_http::dns::{CLASS_IN, FLAG_QR, FLAG_RD, OPT_LEN, TYPE_A};

use super::*;

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn reads_the_first_nameserver() {
    let conf = "# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
    assert_eq!(nameserver(conf), Some(ip(10, 0, 0, 2)));
    assert_eq!(nameserver("search example.com\n"), None);
}

#[test]
fn cache_serves_until_the_ttl_passes_and_stays_bounded() {
    let resolver = Resolver::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
    let now = Instant::now();
    let answer = Resolved {
        addrs: vec![ip(192, 0, 2, 1)],
        ttl: Duration::from_secs(10),
    };
    resolver.store("a.example".to_string(), &answer, now);
    let hit = resolver
        .cached("a.example", now + Duration::from_secs(4))
        .unwrap();
    assert_eq!(hit.ttl, Duration::from_secs(6));
    assert!(resolver
        .cached("a.example", now + Duration::from_secs(10))
        .is_none());

    let uncacheable = Resolved {
        ttl: Duration::ZERO,
        ..answer.clone()
    };
    resolver.store("zero.example".to_string(), &uncacheable, now);
    assert!(resolver.cached("zero.example", now).is_none());

    for i in 0..=MAX_CACHED_NAMES {
        resolver.store(format!("n{i}.example"), &answer, now);
    }
    assert!(resolver.cache.lock().unwrap().len() <= MAX_CACHED_NAMES);
}

#[tokio::test]
async fn resolve_caches_for_the_ttl_then_asks_again() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let resolver = Resolver::new(server.local_addr().unwrap());
    let queries = Arc::new(AtomicUsize::new(0));
    let counted = queries.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = server.recv_from(&mut buf).await {
            counted.fetch_add(1, Ordering::SeqCst);
            // The question back, without the query's OPT (this server knows no EDNS).
            let mut reply = buf[..len - OPT_LEN].to_vec();
            reply[2..4].copy_from_slice(&(FLAG_QR | FLAG_RD).to_be_bytes());
            reply[6..8].copy_from_slice(&1u16.to_be_bytes());
            reply[10..12].copy_from_slice(&0u16.to_be_bytes());
            // One A record for the question's name (a pointer to offset 12), TTL 1 s.
            reply.extend_from_slice(&[0xC0, 12]);
            for field in [TYPE_A, CLASS_IN, 0, 1, 4] {
                reply.extend_from_slice(&field.to_be_bytes());
            }
            reply.extend_from_slice(&[10, 1, 2, 3]);
            let _ = server.send_to(&reply, from).await;
        }
    });

    let first = resolver.resolve("svc.example.com").await.unwrap();
    assert_eq!(first.addrs, vec![ip(10, 1, 2, 3)]);
    resolver.resolve("SVC.example.com.").await.unwrap();
    assert_eq!(queries.load(Ordering::SeqCst), 1);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    resolver.resolve("svc.example.com").await.unwrap();
    assert_eq!(queries.load(Ordering::SeqCst), 2);
    task.abort();
}
