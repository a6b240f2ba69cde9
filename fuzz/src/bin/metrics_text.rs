//! AFL++'s entry to the `metrics_text` harness ([`weft_fuzz::metrics_text`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::metrics_text(data));
}
