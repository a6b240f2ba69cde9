//! AFL++'s entry to the `h1_chunked` harness ([`weft_fuzz::h1_chunked`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::h1_chunked(data));
}
