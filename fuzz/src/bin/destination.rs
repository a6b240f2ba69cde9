//! AFL++'s entry to the `destination` harness ([`weft_fuzz::destination`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::destination(data));
}
