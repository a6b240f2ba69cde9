//! AFL++'s entry to the `ctx_hops` harness ([`weft_fuzz::ctx_hops`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::ctx_hops(data));
}
