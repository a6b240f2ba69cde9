//! AFL++'s entry to the `label_selector` harness ([`weft_fuzz::label_selector`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::label_selector(data));
}
