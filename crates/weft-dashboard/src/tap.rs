//! Tap streams: reading a proxy's (or a dashboard's) newline-delimited tap events, merging
//! several into one, and `/api/tap`, which taps every proxy the dashboard scrapes with the
//! subscriber's rate split across them. `weft tap` and `weft top` read through here too.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};
use http::Uri;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use weft_core::tap::{EventKind, TapEvent, TapFilter, HEARTBEAT};

use crate::history::ProxyStatus;
use crate::Shared;

/// The longest line believed: an event is a few hundred bytes.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// How long a source may take to answer the subscription.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Events held for a reader that is behind; past this the sources wait (and a proxy whose
/// buffer then fills drops the subscription, saying so).
const MERGED_BUFFER: usize = 1024;

/// Taps the dashboard serves at once. Each holds a subscription on every proxy, which
/// allows 16 by default: the rest stay for operators on the nodes.
pub const MAX_TAPS: usize = 8;

/// A source's refusal or failure before its stream began.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{url}: {message}")]
pub struct Refused {
    pub url: String,
    /// The HTTP status it answered, when it answered.
    pub status: Option<u16>,
    pub message: String,
}

/// One source's stream, opened: its lines come through [`Lines::next`].
pub struct Lines {
    url: String,
    body: hyper::body::Incoming,
    buf: BytesMut,
}

/// Asks `url` for its tap stream; an answer other than 2xx is a refusal, with its message.
pub async fn open(url: &str) -> Result<Lines, Refused> {
    match tokio::time::timeout(CONNECT_TIMEOUT, open_inner(url)).await {
        Ok(r) => r,
        Err(_) => Err(refused(url, None, "no answer within 5s")),
    }
}

fn refused(url: &str, status: Option<u16>, message: impl Into<String>) -> Refused {
    Refused {
        url: url.to_string(),
        status,
        message: message.into(),
    }
}

async fn open_inner(url: &str) -> Result<Lines, Refused> {
    let uri: Uri = url.parse().map_err(|_| refused(url, None, "invalid URL"))?;
    if uri.scheme_str().is_some_and(|s| s != "http") {
        return Err(refused(url, None, "only http:// is spoken here"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| refused(url, None, "no host in URL"))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    // An IPv6 literal is written in brackets, which a socket address does not take.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| refused(url, None, e.to_string()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    request(Box::new(stream), authority.as_str(), path, url).await
}

/// A connection a tap request can go over: plain TCP, or mutual TLS to a proxy.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// How the dashboard reaches a proxy's inbound listener as its mesh identity: mutual TLS,
/// the proxy checked to be the one on `node`. Proxies let that identity tap (and do
/// nothing else); their admin listener takes taps from loopback only.
pub trait Dial: Send + Sync {
    fn dial(&self, inbound: SocketAddr, node: String) -> Dialing;
}

/// A connection on its way.
pub type Dialing = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>>;

/// A proxy's tap over the mesh: `dial` reaches its inbound listener.
pub async fn open_mesh(
    dial: &dyn Dial,
    inbound: SocketAddr,
    node: &str,
    query: &str,
) -> Result<Lines, Refused> {
    let label = format!("{node} ({inbound}, mutual TLS)");
    let connect = async {
        let io = dial
            .dial(inbound, node.to_string())
            .await
            .map_err(|e| refused(&label, None, e.to_string()))?;
        let path = format!("{}?{query}", weft_core::tap::TAP_PATH);
        request(io, &inbound.to_string(), &path, &label).await
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(r) => r,
        Err(_) => Err(refused(&label, None, "no answer within 5s")),
    }
}

/// `GET path` on `stream`; a 2xx answer's body is the stream of events.
async fn request(stream: Box<dyn Io>, host: &str, path: &str, url: &str) -> Result<Lines, Refused> {
    let io = |e: &dyn std::fmt::Display| refused(url, None, e.to_string());
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| io(&e))?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| io(&e))?;
    let rsp = tx.send_request(req).await.map_err(|e| io(&e))?;
    let status = rsp.status();
    if !status.is_success() {
        let body = Limited::new(rsp.into_body(), 4096)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&body).trim().to_string();
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        return Err(refused(url, Some(status.as_u16()), message));
    }
    Ok(Lines {
        url: url.to_string(),
        body: rsp.into_body(),
        buf: BytesMut::new(),
    })
}

impl Lines {
    /// The next event, `closed` ones included (a dashboard's stream carries one per proxy
    /// that left it); `Err` with the reason the stream itself ended (the connection's end,
    /// a line that is not an event).
    pub async fn next(&mut self) -> Result<TapEvent, String> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let line = &line[..i];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let event: TapEvent = serde_json::from_slice(line)
                    .map_err(|e| format!("{}: a line that is not a tap event: {e}", self.url))?;
                return Ok(event);
            }
            if self.buf.len() > MAX_LINE_BYTES {
                return Err(format!("{}: a line over {MAX_LINE_BYTES} bytes", self.url));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(format!("{}: {e}", self.url)),
                None => return Err(format!("{}: the stream ended", self.url)),
            }
        }
    }
}

/// Streams the events of every tap URL (a proxy's `http://ADDR/tap?QUERY` or a dashboard's
/// `http://ADDR/api/tap?QUERY`), merged. A source that refuses (HTTP 4xx with a message),
/// fails or ends yields one `Closed` event naming it (`proxy` = the URL, `reason`). The
/// receiver ends when every source has ended.
pub fn subscribe(urls: Vec<String>) -> mpsc::Receiver<TapEvent> {
    let (tx, rx) = mpsc::channel(MERGED_BUFFER);
    for url in urls {
        let tx = tx.clone();
        tokio::spawn(async move {
            let reason = match open(&url).await {
                Ok(lines) => pump(lines, &tx).await,
                Err(r) => r.to_string(),
            };
            if !reason.is_empty() {
                let _ = tx.send(closed(&url, reason)).await;
            }
        });
    }
    rx
}

/// Forwards `lines` until it ends, then says why, unless its last line already did (a
/// proxy's stream ends with its `closed` line) or the reader went (an empty reason).
async fn pump(mut lines: Lines, tx: &mpsc::Sender<TapEvent>) -> String {
    let mut said = false;
    loop {
        tokio::select! {
            next = lines.next() => match next {
                Ok(event) => {
                    said = event.kind == Some(EventKind::Closed);
                    if tx.send(event).await.is_err() {
                        return String::new();
                    }
                }
                Err(_) if said => return String::new(),
                Err(reason) => return reason,
            },
            () = tx.closed() => return String::new(),
        }
    }
}

fn closed(source: &str, reason: String) -> TapEvent {
    TapEvent {
        kind: Some(EventKind::Closed),
        proxy: source.to_string(),
        reason: Some(reason),
        ..TapEvent::default()
    }
}

/// Each of `proxies`' share of `rate`: at least one event per second each.
pub fn split_rate(rate: u32, proxies: usize) -> u32 {
    let n = u32::try_from(proxies.max(1)).unwrap_or(u32::MAX);
    (rate / n).max(1)
}

const LIVE_HTML: &str = include_str!("ui/live.html");
const LIVE_JS: &str = include_str!("ui/live.js");

/// `/api/tap`, and the live calls page that reads it.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/tap", get(tap))
        .route(
            "/live",
            get(|| async { crate::api::asset("text/html; charset=utf-8", LIVE_HTML) }),
        )
        .route(
            "/live.js",
            get(|| async { crate::api::asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
        .with_state(shared)
}

/// Taps every proxy that answered the last scrape, each for its share of the rate. The
/// filter is checked here first; when every proxy refuses it (a service none knows), the
/// first refusal is the answer.
async fn tap(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut filter = match TapFilter::parse(&query) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let Ok(slot) = Arc::clone(&shared.taps).try_acquire_owned() else {
        let why = format!("the dashboard serves {MAX_TAPS} taps at once, its most\n");
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    };
    let proxies: Vec<ProxyStatus> = {
        let h = shared.history.read().unwrap_or_else(|e| e.into_inner());
        h.proxies().iter().filter(|p| p.up).cloned().collect()
    };
    if proxies.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no proxy has answered the dashboard yet\n",
        )
            .into_response();
    }
    filter.rate = split_rate(filter.rate, proxies.len());
    let q = filter.to_query();
    let dial = shared.identity.as_ref().and_then(|i| i.dial.clone());
    let opened = futures_util::future::join_all(
        proxies.into_iter().map(|p| open_proxy(p, &q, dial.clone())),
    )
    .await;
    let mut streams = Vec::new();
    let mut refusals = Vec::new();
    for o in opened {
        match o {
            Ok(l) => streams.push(l),
            Err(r) => refusals.push(r),
        }
    }
    if streams.is_empty() {
        let first = &refusals[0];
        let status = first
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        return (status, format!("{}\n", first.message)).into_response();
    }
    let (tx, rx) = mpsc::channel::<Bytes>(MERGED_BUFFER);
    for r in refusals {
        let _ = tx.try_send(line(&closed(&r.url, r.message)));
    }
    for lines in streams {
        tokio::spawn(relay(lines, tx.clone()));
    }
    drop(tx);
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::new(ChannelBody {
            lines: rx,
            _slot: slot,
            heartbeat: heartbeat(),
        }),
    )
        .into_response()
}

/// A proxy's tap: over mutual TLS to its inbound listener when the dashboard and the
/// proxy both have mesh identities, otherwise on its admin listener (which serves taps
/// to loopback only: a dashboard on the same machine, as in the demo).
async fn open_proxy(
    proxy: ProxyStatus,
    query: &str,
    dial: Option<Arc<dyn Dial>>,
) -> Result<Lines, Refused> {
    let node = proxy
        .identity
        .as_deref()
        .and_then(|id| id.rsplit_once("/node/"))
        .map(|(_, node)| node);
    match (dial, proxy.inbound, node) {
        (Some(dial), Some(inbound), Some(node)) => open_mesh(&*dial, inbound, node, query).await,
        _ => {
            let url = format!(
                "http://{}{}?{query}",
                proxy.target,
                weft_core::tap::TAP_PATH
            );
            open(&url).await
        }
    }
}

/// One proxy's stream into the merged response, until either ends: a subscriber that
/// leaves a quiet filter lets go of every proxy's subscription at once, not at their next
/// event.
async fn relay(mut lines: Lines, tx: mpsc::Sender<Bytes>) {
    let mut said = false;
    let reason = loop {
        tokio::select! {
            next = lines.next() => match next {
                Ok(event) => {
                    said = event.kind == Some(EventKind::Closed);
                    if tx.send(line(&event)).await.is_err() {
                        return;
                    }
                }
                Err(reason) => break reason,
            },
            () = tx.closed() => return,
        }
    };
    if !said {
        let _ = tx.send(line(&closed(&lines.url, reason))).await;
    }
}

/// Ticks every [`HEARTBEAT`], the first a whole period from now.
fn heartbeat() -> tokio::time::Interval {
    let start = tokio::time::Instant::now() + HEARTBEAT;
    let mut i = tokio::time::interval_at(start, HEARTBEAT);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}

fn line(e: &TapEvent) -> Bytes {
    let mut v = serde_json::to_vec(e).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// A response body fed line by line from a channel; it ends when every sender has. It
/// holds the tap's slot until then.
struct ChannelBody {
    lines: mpsc::Receiver<Bytes>,
    _slot: tokio::sync::OwnedSemaphorePermit,
    /// An empty line when the stream has been quiet: writing is how the server finds out
    /// the subscriber has gone (and lets go of the proxies).
    heartbeat: tokio::time::Interval,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.lines.poll_recv(cx) {
            Poll::Ready(Some(line)) => {
                self.heartbeat.reset();
                Poll::Ready(Some(Ok(Frame::data(line))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.heartbeat.poll_tick(cx) {
                Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"\n"))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_split_but_never_to_nothing() {
        assert_eq!(split_rate(100, 3), 33);
        assert_eq!(split_rate(100, 0), 100);
        assert_eq!(split_rate(2, 5), 1);
    }
}
