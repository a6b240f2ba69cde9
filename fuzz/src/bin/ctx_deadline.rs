//! AFL++'s entry to the `ctx_deadline` harness ([`weft_fuzz::ctx_deadline`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::ctx_deadline(data));
}
