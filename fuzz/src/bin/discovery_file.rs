//! AFL++'s entry to the `discovery_file` harness ([`weft_fuzz::discovery_file`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::discovery_file(data));
}
