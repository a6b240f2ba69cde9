//! AFL++'s entry to the `ctx_override` harness ([`weft_fuzz::ctx_override`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::ctx_override(data));
}
