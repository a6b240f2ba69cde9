//! AFL++'s entry to the `peer_cert` harness ([`weft_fuzz::peer_cert`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::peer_cert(data));
}
