//! AFL++'s entry to the `duration` harness ([`weft_fuzz::duration`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::duration(data));
}
