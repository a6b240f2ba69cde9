//! AFL++'s entry to the `trace_context` harness ([`weft_fuzz::trace_context`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::trace_context(data));
}
