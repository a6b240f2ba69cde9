//! AFL++'s entry to the `tap_filter` harness ([`weft_fuzz::tap_filter`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::tap_filter(data));
}
