//! AFL++'s entry to the `config` harness ([`weft_fuzz::config`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::config(data));
}
