//! AFL++'s entry to the `dns_response` harness ([`weft_fuzz::dns_response`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::dns_response(data));
}
