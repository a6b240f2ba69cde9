//! AFL++'s entry to the `destination_routes` harness ([`weft_fuzz::destination_routes`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::destination_routes(data));
}
