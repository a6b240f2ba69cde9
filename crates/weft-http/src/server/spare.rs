//! Read buffers kept for reuse on this thread. An idle connection holds no buffer, so each
//! request on a keep-alive connection would otherwise allocate one and free it again (a
//! 4 KiB block, past the allocator's per-thread cache): a connection going idle hands its
//! buffer back here, and the next one with something to read takes it.

use std::cell::RefCell;

use bytes::BytesMut;

/// Buffers kept per thread: what a burst of connections turning over needs, at most
/// `KEEP` × the buffer size (256 KiB at 4 KiB).
const KEEP: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with room for `size` bytes: a kept one, or a new one.
pub fn take(size: usize) -> BytesMut {
    let kept = SPARE.with(|s| s.borrow_mut().pop());
    match kept {
        Some(buf) if buf.capacity() >= size => buf,
        _ => BytesMut::with_capacity(size),
    }
}

/// Keeps `buf` for [`take`] when nothing else still points into it (a request's header
/// values are slices of the buffer they were read into) and it is not oversized.
pub fn give(mut buf: BytesMut, size: usize) {
    buf.clear();
    if buf.capacity() > 2 * size || !buf.try_reclaim(size) {
        return;
    }
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < KEEP {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_only_once_nothing_points_into_it() {
        let mut buf = take(4096);
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let head = buf.split_to(18).freeze();
        give(buf, 4096);
        let fresh = take(4096);
        assert!(
            !std::ptr::eq(fresh.as_ptr(), head.as_ptr()),
            "reused while shared"
        );

        let mut buf = fresh;
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let start = buf.as_ptr();
        let head = buf.split_to(18).freeze();
        drop(head);
        give(buf, 4096);
        let again = take(4096);
        assert_eq!(again.as_ptr(), start, "a free buffer should be reused");
        assert!(again.capacity() >= 4096 && again.is_empty());
    }
}
