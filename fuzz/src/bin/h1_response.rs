//! AFL++'s entry to the `h1_response` harness ([`weft_fuzz::h1_response`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::h1_response(data));
}
