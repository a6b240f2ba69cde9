//! Distributed-trace context as a proxy passes it on: what a request came with, from W3C Trace
//! Context (`traceparent`, `tracestate`) or Zipkin B3 (`b3`, or the `x-b3-*` headers), and a
//! child context written onward in the format the request came in, so that whichever of the
//! two an app's tracer speaks, it sees one trace through the mesh. Parsing and writing only:
//! new ids are the caller's (this crate has no randomness), and what is sampled or exported is
//! the proxy's.
//!
//! A malformed context is ignored, never an error: both specs ask a receiver to go on as if it
//! had not been sent, since the request itself is fine, and the proxy then starts a trace.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// W3C: `{version}-{trace id}-{parent id}-{flags}`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C: the tracing vendors' own state, passed on unchanged beside `traceparent`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// B3 in one header: `{trace id}-{span id}[-{sampling}[-{parent span id}]]`, or `{sampling}`.
pub const B3: HeaderName = HeaderName::from_static("b3");
/// B3 in several headers, the older form: the trace id, 16 or 32 hex digits.
pub const X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
/// Multi-header B3: the caller's span id.
pub const X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
/// Multi-header B3: the parent of the caller's span.
pub const X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
/// Multi-header B3: `1` sampled, `0` not; absent, the decision is deferred.
pub const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
/// Multi-header B3: `1` is debug, which is sampled whatever else says.
pub const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
/// The longest tracestate kept; a longer one is dropped (W3C allows dropping, and asks to
/// propagate at least 512 bytes).
pub const MAX_TRACESTATE_BYTES: usize = 512;

/// `00-{32 hex}-{16 hex}-{2 hex}`: all of version `00`, and what a later version starts with.
const TRACEPARENT_LEN: usize = 55;

/// A trace's id, 16 bytes; all zero means "no id" to both specs, so none of this module's
/// constructors makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A span's id, 8 bytes; all zero means "no id", as for [`TraceId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// The id of `v`'s big-endian bytes, the order both specs write them in; `None` for 0.
    pub fn from_u128(v: u128) -> Option<Self> {
        Some(Self(v.to_be_bytes())).filter(Self::is_valid)
    }

    /// Not all zero.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }

    /// The id as 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// An id as W3C writes it: exactly 32 lowercase hex digits, not all zero.
    pub fn parse_hex(s: &[u8]) -> Option<Self> {
        let mut id = Self([0; 16]);
        decode(s, &mut id.0)?;
        Some(id).filter(Self::is_valid)
    }

    /// An id as B3 writes it: 32 lowercase hex digits, or 16 for a 64-bit id (the low half,
    /// the high half left zero), with whether it was the 32.
    pub fn parse_b3(s: &[u8]) -> Option<(Self, bool)> {
        let wide = s.len() == 32;
        let mut id = Self([0; 16]);
        decode(s, &mut id.0[if wide { 0 } else { 8 }..])?;
        id.is_valid().then_some((id, wide))
    }
}

impl SpanId {
    /// The id of `v`'s big-endian bytes; `None` for 0.
    pub fn from_u64(v: u64) -> Option<Self> {
        Some(Self(v.to_be_bytes())).filter(Self::is_valid)
    }

    /// Not all zero.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }

    /// The id as 16 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// An id as both specs write it: exactly 16 lowercase hex digits, not all zero.
    pub fn parse_hex(s: &[u8]) -> Option<Self> {
        let mut id = Self([0; 8]);
        decode(s, &mut id.0)?;
        Some(id).filter(Self::is_valid)
    }
}

/// A new id as a header value: `id` in 32 hex digits, sent never-indexed as the trace
/// headers written here are (a request's `weft-request-id`).
pub fn hex_value(id: u128) -> HeaderValue {
    Value::new().hex(&id.to_be_bytes()).finish()
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(Value::new().hex(&self.0).as_str())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(Value::new().hex(&self.0).as_str())
    }
}

/// The headers a context is read from and written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context: `traceparent`, and `tracestate` beside it.
    W3c,
    /// B3 in the one `b3` header.
    B3Single,
    /// B3 in the `x-b3-*` headers.
    B3Multi,
}

/// What a request came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub format: Format,
    /// The caller's trace and span; None when it sent only a sampling decision (`b3: 0`, or
    /// `x-b3-sampled` alone).
    pub parent: Option<(TraceId, SpanId)>,
    /// The caller's decision: Some(true) sampled (B3 debug `d` / `x-b3-flags: 1` count as
    /// sampled), Some(false) not, None deferred (B3 allows deferring).
    pub sampled: Option<bool>,
    /// W3C tracestate, kept verbatim to be written onward (None when absent, not W3C, invalid
    /// or longer than MAX_TRACESTATE_BYTES).
    pub tracestate: Option<HeaderValue>,
    /// B3: whether the trace id was 128-bit (written back in the same width), and true when
    /// there was no id, as a new trace's should be 128-bit. W3C: true.
    pub wide: bool,
}

/// Reads W3C first (`traceparent`), then single `b3`, then multi `x-b3-*`: the first present
/// and well formed. Anything malformed is ignored as the specs say, and the next format read
/// instead: never an error.
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    let present = present(headers);
    if present == 0 {
        return None;
    }
    let w3c = || (present & W3C_BITS != 0).then(|| w3c(headers)).flatten();
    let single = || {
        (present & B3_BIT != 0)
            .then(|| b3_single(headers))
            .flatten()
    };
    let multi = || {
        (present & !(W3C_BITS | B3_BIT) != 0)
            .then(|| b3_multi(headers))
            .flatten()
    };
    w3c().or_else(single).or_else(multi)
}

/// Removes every trace header of every format (so a proxy can write its own).
pub fn remove(headers: &mut HeaderMap) {
    let present = present(headers);
    for (i, name) in NAMES.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Every trace header name, in the order of [`present`]'s bits.
static NAMES: [HeaderName; 8] = [
    TRACEPARENT,
    TRACESTATE,
    B3,
    X_B3_TRACEID,
    X_B3_SPANID,
    X_B3_PARENTSPANID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];
const W3C_BITS: u8 = 0b11;
const B3_BIT: u8 = 0b100;

/// Which trace headers `headers` has, from one pass over its names: most requests have
/// none, and a lookup or a removal by name costs a hash each.
fn present(headers: &HeaderMap) -> u8 {
    let mut bits = 0u8;
    for name in headers.keys() {
        let name = name.as_str();
        // Compared as strings, after the first byte: a length differs before any memcmp.
        if matches!(name.as_bytes().first(), Some(b't' | b'b' | b'x')) {
            if let Some(i) = NAMES.iter().position(|n| n.as_str() == name) {
                bits |= 1 << i;
            }
        }
    }
    bits
}

/// Writes a child context: `span` is the new span the next hop sees as its parent; `parent`
/// is that span's own parent (written as `x-b3-parentspanid` / in single `b3`'s 4th field
/// when Some; W3C has no place for it), `sampled` the decision. Removes any existing trace
/// headers first, of every format, then writes in `format`: W3C writes `traceparent` version
/// `00` and the tracestate if given. `wide` is the B3 trace id's width, 32 hex digits or 16;
/// an id that does not fit in 16 is written in 32 whatever `wide` says, rather than cut.
// One argument per part of the context: a struct of them would be built at every call only to
// be taken apart here.
#[allow(clippy::too_many_arguments)]
pub fn inject(
    headers: &mut HeaderMap,
    format: Format,
    trace: TraceId,
    span: SpanId,
    parent: Option<SpanId>,
    sampled: bool,
    tracestate: Option<&HeaderValue>,
    wide: bool,
) {
    debug_assert!(
        trace.is_valid() && span.is_valid(),
        "an all-zero id is no id"
    );
    remove(headers);
    let flag = if sampled { "1" } else { "0" };
    let b3_trace = if wide || trace.0[..8] != [0; 8] {
        &trace.0[..]
    } else {
        &trace.0[8..]
    };
    match format {
        Format::W3c => {
            let value = Value::new()
                .push(b"00-")
                .hex(&trace.0)
                .push(b"-")
                .hex(&span.0)
                .push(b"-0")
                .push(flag.as_bytes())
                .finish();
            headers.insert(TRACEPARENT, value);
            if let Some(state) = tracestate {
                headers.insert(TRACESTATE, state.clone());
            }
        }
        Format::B3Single => {
            let mut value = Value::new();
            value
                .hex(b3_trace)
                .push(b"-")
                .hex(&span.0)
                .push(b"-")
                .push(flag.as_bytes());
            if let Some(parent) = parent {
                value.push(b"-").hex(&parent.0);
            }
            headers.insert(B3, value.finish());
        }
        Format::B3Multi => {
            headers.insert(X_B3_TRACEID, Value::new().hex(b3_trace).finish());
            headers.insert(X_B3_SPANID, Value::new().hex(&span.0).finish());
            if let Some(parent) = parent {
                headers.insert(X_B3_PARENTSPANID, Value::new().hex(&parent.0).finish());
            }
            headers.insert(X_B3_SAMPLED, HeaderValue::from_static(flag));
        }
    }
}

fn w3c(headers: &HeaderMap) -> Option<Incoming> {
    let value = only(headers, TRACEPARENT)?;
    let (trace, span, flags) = parse_traceparent(value.as_bytes())?;
    Some(Incoming {
        format: Format::W3c,
        parent: Some((trace, span)),
        sampled: Some(flags & 1 == 1),
        tracestate: tracestate(headers),
        wide: true,
    })
}

/// A traceparent's trace id, parent id and flags. A version after `00` is read as `00` (as
/// W3C asks, so a newer caller is still joined), skipping the fields it adds after byte 55.
fn parse_traceparent(v: &[u8]) -> Option<(TraceId, SpanId, u8)> {
    if v.len() < TRACEPARENT_LEN {
        return None;
    }
    let fits = match byte(&v[..2])? {
        0xff => false,
        0 => v.len() == TRACEPARENT_LEN,
        _ => v.len() == TRACEPARENT_LEN || v[TRACEPARENT_LEN] == b'-',
    };
    if !fits || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace = TraceId::parse_hex(&v[3..35])?;
    let span = SpanId::parse_hex(&v[36..52])?;
    Some((trace, span, byte(&v[53..55])?))
}

/// The tracestate to pass on: one line verbatim, or several joined into one list, as W3C
/// asks. A value that is empty, longer than [`MAX_TRACESTATE_BYTES`], or holds bytes no list
/// member may (control or non-ASCII) is dropped, which W3C allows a proxy.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut lines = headers.get_all(TRACESTATE).iter();
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return checked_state(first.as_bytes()).then(|| first.clone());
    };
    // Several lines are one list (RFC 9110's field combination), joined with commas.
    let mut joined = Vec::with_capacity(MAX_TRACESTATE_BYTES);
    for line in [first, second].into_iter().chain(lines) {
        if !joined.is_empty() {
            joined.push(b',');
        }
        joined.extend_from_slice(line.as_bytes());
        if joined.len() > MAX_TRACESTATE_BYTES {
            return None;
        }
    }
    checked_state(&joined)
        .then(|| HeaderValue::from_bytes(&joined).ok())
        .flatten()
}

/// A tracestate passed on whole: not empty, within the bound, and visible ASCII (spaces
/// and tabs are the optional whitespace around the list's commas).
fn checked_state(bytes: &[u8]) -> bool {
    let fits = !bytes.is_empty() && bytes.len() <= MAX_TRACESTATE_BYTES;
    fits && bytes
        .iter()
        .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
}

fn b3_single(headers: &HeaderMap) -> Option<Incoming> {
    let mut fields = only(headers, B3)?.as_bytes().split(|&b| b == b'-');
    let first = fields.next()?;
    let Some(span) = fields.next() else {
        return Some(b3(Format::B3Single, None, Some(b3_sampling(first)?), true));
    };
    let (trace, wide) = TraceId::parse_b3(first)?;
    let span = SpanId::parse_hex(span)?;
    let sampled = match fields.next() {
        Some(field) => Some(b3_sampling(field)?),
        None => None,
    };
    // The caller's parent is not kept, as the proxy writes its own, but a malformed one makes
    // the value malformed.
    if let Some(field) = fields.next() {
        SpanId::parse_hex(field)?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(b3(Format::B3Single, Some((trace, span)), sampled, wide))
}

/// Single B3's sampling field; `d` is debug, which is sampled.
fn b3_sampling(field: &[u8]) -> Option<bool> {
    match field {
        b"1" | b"d" => Some(true),
        b"0" => Some(false),
        _ => None,
    }
}

/// Multi-header B3: both ids or neither (a sampling decision alone). An id or sampling
/// decision that is malformed or repeated makes the whole context ignored; `x-b3-flags` other
/// than `1` is ignored alone, as the spec says; `x-b3-parentspanid` is not read, as the proxy
/// writes its own.
fn b3_multi(headers: &HeaderMap) -> Option<Incoming> {
    let trace = at_most_one(headers, X_B3_TRACEID)?;
    let span = at_most_one(headers, X_B3_SPANID)?;
    let (parent, wide) = match (trace, span) {
        (Some(trace), Some(span)) => {
            let (trace, wide) = TraceId::parse_b3(trace.as_bytes())?;
            (Some((trace, SpanId::parse_hex(span.as_bytes())?)), wide)
        }
        (None, None) => (None, true),
        // One id without the other.
        _ => return None,
    };
    // `true` and `false` are what some tracers sent before the spec, which asks to accept them.
    let sampled = match at_most_one(headers, X_B3_SAMPLED)?.map(HeaderValue::as_bytes) {
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return None,
        None => None,
    };
    let debug = only(headers, X_B3_FLAGS).is_some_and(|v| v.as_bytes() == b"1");
    let sampled = if debug { Some(true) } else { sampled };
    if parent.is_none() && sampled.is_none() {
        return None;
    }
    Some(b3(Format::B3Multi, parent, sampled, wide))
}

fn b3(
    format: Format,
    parent: Option<(TraceId, SpanId)>,
    sampled: Option<bool>,
    wide: bool,
) -> Incoming {
    Incoming {
        format,
        parent,
        sampled,
        tracestate: None,
        wide,
    }
}

/// `name`'s value when the request has one line of it, `Some(None)` when none; `None` when it
/// has several, as which one the caller meant would be a guess.
fn at_most_one(headers: &HeaderMap, name: HeaderName) -> Option<Option<&HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    values.next().is_none().then_some(first)
}

/// `name`'s value when the request has exactly one line of it.
fn only(headers: &HeaderMap, name: HeaderName) -> Option<&HeaderValue> {
    at_most_one(headers, name).flatten()
}

/// Both specs write ids and flags in lowercase hex only.
const HEX: &[u8; 16] = b"0123456789abcdef";

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// `hex`, exactly twice as long as `out`, decoded into `out`.
fn decode(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != 2 * out.len() {
        return None;
    }
    for (b, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *b = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

/// One byte from two hex digits.
fn byte(hex: &[u8]) -> Option<u8> {
    let mut b = [0];
    decode(hex, &mut b)?;
    Some(b[0])
}

/// The longest value written: single `b3` with a 128-bit trace id and a parent span id.
const LONGEST_VALUE: usize = 32 + 1 + 16 + 2 + 1 + 16;

/// A header value built on the stack, as trace headers are written on every request.
struct Value {
    bytes: [u8; LONGEST_VALUE],
    len: usize,
}

impl Value {
    fn new() -> Self {
        Self {
            bytes: [0; LONGEST_VALUE],
            len: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes[self.len..][..bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self
    }

    fn hex(&mut self, bytes: &[u8]) -> &mut Self {
        let out = &mut self.bytes[self.len..][..2 * bytes.len()];
        for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0x0f)];
        }
        self.len += 2 * bytes.len();
        self
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("hex digits and dashes are ASCII")
    }

    /// The value, marked sensitive: it is new with every request, and HPACK then sends
    /// it never-indexed instead of adding it to the hop's table, where it would push out
    /// the headers every request repeats (and cost both ends their re-encoding).
    fn finish(&self) -> HeaderValue {
        let mut value = HeaderValue::from_bytes(&self.bytes[..self.len])
            .expect("hex digits and dashes are valid");
        value.set_sensitive(true);
        value
    }
}

#[cfg(test)]
mod tests;
