//! The wire code against hand-built answers.

use super::answer::{pointer, record, response};
use super::*;

const NAME: &str = "www.example.com";

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// www → edge → cdn → 192.0.2.7, every name compressed against an earlier one.
fn cname_chain() -> Vec<u8> {
    let mut packet = response(7, FLAG_QR | FLAG_RD, 3, NAME);
    // "example.com" in the question starts after "www": offset 12 + 4.
    let edge = record(
        &mut packet,
        &pointer(12),
        TYPE_CNAME,
        300,
        b"\x04edge\xC0\x10",
    );
    let cdn = record(
        &mut packet,
        &pointer(edge),
        TYPE_CNAME,
        30,
        b"\x03cdn\xC0\x10",
    );
    record(&mut packet, &pointer(cdn), TYPE_A, 60, &[192, 0, 2, 7]);
    packet
}

fn is_malformed(result: Result<Option<Resolved>, DnsError>) -> bool {
    matches!(result, Err(DnsError::Malformed))
}

#[test]
fn encodes_a_recursive_query_for_one_a_record() {
    let mut expected: Vec<u8> = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    expected.extend_from_slice(b"\x03api\x07example\x03com\x00\x00\x01\x00\x01");
    // EDNS: OPT for the root, a 1232-byte payload.
    expected.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(encode_query(0xBEEF, "api.example.com"), expected);
}

#[test]
fn follows_a_cname_chain_through_compression_pointers() {
    let resolved = parse_response(&cname_chain(), 7, NAME).unwrap().unwrap();
    assert_eq!(resolved.addrs, vec![ip(192, 0, 2, 7)]);
    assert_eq!(resolved.ttl, Duration::from_secs(30));
}

#[test]
fn every_truncation_of_a_response_is_malformed_not_a_panic() {
    let packet = cname_chain();
    for len in 0..packet.len() {
        assert!(
            is_malformed(parse_response(&packet[..len], 7, NAME)),
            "{len}"
        );
    }
}

#[test]
fn rejects_a_pointer_loop_and_a_forward_pointer() {
    let mut looped = response(7, FLAG_QR, 1, NAME);
    let at = looped.len();
    let mut owner = vec![1, b'a'];
    owner.extend_from_slice(&pointer(at));
    record(&mut looped, &owner, TYPE_A, 60, &[192, 0, 2, 7]);
    assert!(is_malformed(parse_response(&looped, 7, NAME)));

    let mut forward = response(7, FLAG_QR, 1, NAME);
    let ahead = forward.len() + 2;
    record(&mut forward, &pointer(ahead), TYPE_A, 60, &[192, 0, 2, 7]);
    assert!(is_malformed(parse_response(&forward, 7, NAME)));
}

#[test]
fn ignores_answers_to_other_queries() {
    let packet = cname_chain();
    assert!(parse_response(&packet, 8, NAME).unwrap().is_none());
    assert!(parse_response(&packet, 7, "api.example.com")
        .unwrap()
        .is_none());
}

#[test]
fn maps_rcodes_and_truncation_to_errors() {
    let answer = |flags: u16| parse_response(&response(7, FLAG_QR | flags, 0, NAME), 7, NAME);
    assert!(matches!(answer(3), Err(DnsError::NotFound(_))));
    assert!(matches!(answer(2), Err(DnsError::Server { rcode: 2 })));
    assert!(matches!(answer(FLAG_TC), Err(DnsError::Truncated)));
    assert!(matches!(answer(0), Err(DnsError::NotFound(_))));
    // Truncated after the name's address: what arrived serves.
    let mut cut = response(7, FLAG_QR | FLAG_TC, 3, NAME);
    record(&mut cut, &pointer(12), TYPE_A, 20, &[192, 0, 2, 1]);
    cut.extend_from_slice(&[0xC0, 12, 0, 1]);
    let resolved = parse_response(&cut, 7, NAME).unwrap().unwrap();
    assert_eq!(resolved.addrs, vec![ip(192, 0, 2, 1)]);
}

#[test]
fn validates_host_names() {
    assert_eq!(normalize("API.Example.com.").unwrap(), "api.example.com");
    let longest = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61),
    ]
    .join(".");
    assert!(normalize(&longest).is_ok());
    let too_long = format!("{longest}e");
    let long_label = "a".repeat(64);
    let bad = [
        "",
        ".",
        "a..b",
        "a_b.com",
        "ex ample.com",
        "é.com",
        "a.com..",
        too_long.as_str(),
        long_label.as_str(),
    ];
    for name in bad {
        assert!(
            matches!(normalize(name), Err(DnsError::BadName(_))),
            "{name}"
        );
    }
}
