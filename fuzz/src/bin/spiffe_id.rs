//! AFL++'s entry to the `spiffe_id` harness ([`weft_fuzz::spiffe_id`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::spiffe_id(data));
}
