//! AFL++'s entry to the `dst_service` harness ([`weft_fuzz::dst_service`]).
#![forbid(unsafe_code)]

fn main() {
    afl::fuzz!(|data: &[u8]| weft_fuzz::dst_service(data));
}
