//! AFL++'s entry to the `csr` harness ([`weft_fuzz::csr`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::csr(data));
}
