//! AFL++'s entry to the `h1_request` harness ([`weft_fuzz::h1_request`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::h1_request(data));
}
