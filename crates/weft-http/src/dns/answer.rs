//! Answers built as a server writes them, for the wire code's tests and the fuzz seeds: a
//! response header with the question echoed, records appended one by one, and compression
//! pointers to names already written.

use super::{encode_query, CLASS_IN, OPT_LEN};

/// A response header and the question for `name`, as a server echoes them.
pub fn response(id: u16, flags: u16, answers: u16, name: &str) -> Vec<u8> {
    let mut packet = encode_query(id, name);
    // The question only: a server answers with its own OPT, after the answers.
    packet.truncate(packet.len() - OPT_LEN);
    packet[2..4].copy_from_slice(&flags.to_be_bytes());
    packet[6..8].copy_from_slice(&answers.to_be_bytes());
    packet[10..12].copy_from_slice(&0u16.to_be_bytes());
    packet
}

/// Appends a record and returns where its data starts, for pointers to it.
pub fn record(packet: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> usize {
    packet.extend_from_slice(owner);
    packet.extend_from_slice(&rtype.to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    packet.extend_from_slice(&ttl.to_be_bytes());
    packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    let at = packet.len();
    packet.extend_from_slice(rdata);
    at
}

/// A compression pointer to the name at `offset`.
pub fn pointer(offset: usize) -> [u8; 2] {
    (0xC000 | offset as u16).to_be_bytes()
}
