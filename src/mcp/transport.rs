//! Streamable HTTP for `/mcp`: HTTP method, Origin/Host (DNS rebinding), inbound
//! authentication, media types and body size are checked here before a message reaches the
//! dispatcher; the answer goes back as JSON, as a one-event SSE stream to a client that
//! accepts only that, or as a long-lived notification stream (handshake-era `GET`,
//! 2026-07-28 `subscriptions/listen`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use tokio::sync::mpsc;

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{self, ErrorKind, RpcError};
use super::{McpEndpoint, Reply, session};

/// The body of every response the gateway's listeners send: complete bytes, or a stream
/// of SSE chunks fed by a notification task (no boxing on the request path).
#[derive(Debug)]
pub enum ResponseBody {
    /// A complete body (taken on the first poll).
    Full(Option<Bytes>),
    /// Chunks until the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(None)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ResponseBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Which `Origin` and `Host` values are accepted.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    /// Extra accepted origins, e.g. `https://app.example.com` (exact, lower-case).
    pub allowed_origins: Vec<String>,
    /// Extra accepted hosts (host or host:port, lower-case). When the listener is on
    /// loopback, or this list is not empty, `Host` must be loopback or listed.
    pub allowed_hosts: Vec<String>,
    /// Whether the listener is bound to a loopback address.
    pub loopback_listener: bool,
}

impl OriginPolicy {
    /// The policy for a listener on `listen`.
    pub fn new(listen: SocketAddr, allowed_origins: &[String], allowed_hosts: &[String]) -> Self {
        Self {
            allowed_origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            loopback_listener: listen.ip().is_loopback(),
        }
    }

    /// Whether a request with these headers may proceed.
    pub fn allows(
        &self,
        headers: &HeaderMap,
        uri_authority: Option<&str>,
    ) -> Result<(), &'static str> {
        if let Some(origin) = headers.get(ORIGIN) {
            let origin = origin
                .to_str()
                .map_err(|_| "the Origin header is not valid")?
                .trim();
            let host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
            if !(is_loopback_authority(host)
                || self
                    .allowed_origins
                    .iter()
                    .any(|o| o.eq_ignore_ascii_case(origin)))
            {
                return Err("this Origin is not allowed: add it to gateway.allowed_origins");
            }
        }
        if self.loopback_listener || !self.allowed_hosts.is_empty() {
            // HTTP/2 carries the host in the `:authority` pseudo-header (the URI), not `Host`.
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .or(uri_authority)
                .unwrap_or("")
                .trim();
            if !(is_loopback_authority(host)
                || self
                    .allowed_hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(host)))
            {
                return Err("this Host is not allowed: add it to gateway.allowed_hosts");
            }
        }
        Ok(())
    }
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let lower_suffix = host
        .len()
        .checked_sub(10)
        .and_then(|start| host.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"));
    host.eq_ignore_ascii_case("localhost")
        || lower_suffix
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Longest time a request body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The response type of the gateway's HTTP services.
pub type HttpResponse = Response<ResponseBody>;

/// The response of a refusal made before a message id is known.
fn plain_error(error: &RpcError) -> HttpResponse {
    error_response(jsonrpc::error_response(None, error), error)
}

/// The response carrying the error body `body` of `error`: status and headers from its
/// kind ([`RpcError::status`], [`RpcError::headers`]).
pub fn error_response(body: Vec<u8>, error: &RpcError) -> HttpResponse {
    let mut response = json_response(error.status(), body);
    if let Some((name, value)) = error.headers() {
        response.headers_mut().insert(name, value);
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What the client accepts for the answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Accepts {
    Json,
    SseOnly,
    Neither,
}

/// Whether `Accept` lists `text/event-stream` (or accepts anything).
pub(super) fn accepts_sse(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|value| {
        value.to_str().unwrap_or("").split(',').any(|item| {
            let media = item.split(';').next().unwrap_or("").trim();
            media.eq_ignore_ascii_case("text/event-stream") || media == "*/*"
        })
    })
}

fn accepts(headers: &HeaderMap) -> Accepts {
    let mut json = false;
    let mut sse = false;
    let mut any = headers.get_all(ACCEPT).iter().next().is_none();
    for value in headers.get_all(ACCEPT) {
        for item in value.to_str().unwrap_or("").split(',') {
            let media = item.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("application/json") {
                json = true;
            } else if media.eq_ignore_ascii_case("text/event-stream") {
                sse = true;
            } else if media == "*/*" || media.eq_ignore_ascii_case("application/*") {
                any = true;
            }
        }
    }
    match (json || any, sse) {
        (true, _) => Accepts::Json,
        (false, true) => Accepts::SseOnly,
        (false, false) => Accepts::Neither,
    }
}

/// Serves one HTTP request to the MCP endpoint, on the catalog snapshot current when it
/// arrives (a reload meanwhile does not change what this request sees).
pub async fn serve<B>(endpoint: &Arc<McpEndpoint>, request: Request<B>) -> HttpResponse
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let snapshot = endpoint.snapshot();
    let settings = snapshot.settings();
    if let Err(reason) = settings.origins.allows(
        request.headers(),
        request.uri().authority().map(|a| a.as_str()),
    ) {
        return plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::FORBIDDEN),
            reason,
        ));
    }
    // Inbound authentication comes before anything else is looked at (MCP authorization:
    // every request carries the token).
    let caller = match &settings.inbound {
        None => None,
        Some(auth) => match auth.authenticate(request.headers()).await {
            Ok(caller) => Some(caller),
            Err(error) => return plain_error(&auth.refusal(&error)),
        },
    };
    let mut request = request;
    if let Some(keys) = &settings.sessions
        && let Some(refused) = check_session(endpoint, keys, request.headers_mut(), caller.as_ref())
    {
        return refused;
    }
    if request.method() == Method::GET {
        return get_stream(endpoint, request.headers());
    }
    if request.method() != Method::POST {
        return plain_error(&RpcError::new(
            ErrorKind::MethodNotAllowed("GET, POST"),
            "method not allowed: this endpoint takes POST (and GET for the handshake revisions' notification stream); sessions are self-contained and end when they expire, so there is none to DELETE",
        ));
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "Content-Type must be application/json",
        ));
    }
    let accept = accepts(request.headers());
    if accept == Accepts::Neither {
        return plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::NOT_ACCEPTABLE),
            "the Accept header must list application/json and text/event-stream",
        ));
    }
    let max = settings.max_body;
    let too_large = || {
        plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::PAYLOAD_TOO_LARGE),
            format!("request body exceeds the limit of {max} bytes (gateway.max_body)"),
        ))
    };
    if request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max)
    {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    // A client that announces a body and then trickles it must not hold a connection and
    // a buffer forever.
    let collected =
        tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, max).collect()).await;
    let Ok(collected) = collected else {
        return plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::REQUEST_TIMEOUT),
            format!(
                "the request body did not arrive within {}s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        ));
    };
    let body = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Err(e) => {
            return plain_error(&RpcError::new(
                ErrorKind::Refused(StatusCode::BAD_REQUEST),
                format!("could not read the request body: {e}"),
            ));
        }
    };
    if let Some(token) = progress_token(&body)
        && accepts_sse(&parts.headers)
    {
        return with_progress(
            endpoint,
            snapshot,
            body,
            parts.headers,
            caller,
            token,
            accept,
        )
        .await;
    }
    let reply = endpoint
        .handle(&snapshot, &body, &parts.headers, caller.as_ref())
        .await;
    let session = match (&reply, &settings.sessions) {
        (Reply::Initialized(_, version), Some(keys)) => {
            let id = keys.issue(
                version,
                caller.as_ref().map(|c| &*c.cache_key),
                std::time::SystemTime::now(),
            );
            endpoint
                .metrics()
                .sessions
                .with_label_values(&["issued"])
                .inc();
            HeaderValue::try_from(id).ok()
        }
        _ => None,
    };
    let mut response = respond(reply, accept);
    if let Some(id) = session {
        response.headers_mut().insert(session::HEADER, id);
    }
    response
}

/// Checks the `Mcp-Session-Id` a handshake-era request presents (2026-07-28 has no
/// sessions; a request without one is served statelessly). A refused id gets 404, which
/// tells the client to initialize again. A valid session supplies the negotiated revision
/// to a client that does not repeat it in `MCP-Protocol-Version` (2025-03-26), and must
/// agree with one that does. Returns the refusal, if any.
fn check_session(
    endpoint: &McpEndpoint,
    keys: &session::SessionKeys,
    headers: &mut HeaderMap,
    caller: Option<&crate::auth::Caller>,
) -> Option<HttpResponse> {
    let id = headers.get(session::HEADER)?;
    let header_version = super::header_str(headers, "mcp-protocol-version");
    if header_version == Some(super::MODERN_VERSION) {
        return None;
    }
    let verified = id
        .to_str()
        .map_err(|_| session::Refusal::Unknown)
        .and_then(|id| {
            keys.verify(
                id,
                caller.map(|c| &*c.cache_key),
                std::time::SystemTime::now(),
            )
        });
    let session = match verified {
        Ok(session) => session,
        Err(refusal) => {
            endpoint
                .metrics()
                .sessions
                .with_label_values(&[refusal.label()])
                .inc();
            tracing::info!(reason = refusal.label(), "session id refused");
            return Some(plain_error(&RpcError::new(
                ErrorKind::Refused(StatusCode::NOT_FOUND),
                refusal.message(),
            )));
        }
    };
    match header_version {
        None => {
            headers.insert(
                "mcp-protocol-version",
                HeaderValue::from_static(session.version),
            );
        }
        Some(v) if v != session.version => {
            return Some(plain_error(&RpcError::new(
                ErrorKind::Refused(StatusCode::BAD_REQUEST),
                format!(
                    "MCP-Protocol-Version '{v}' does not match the revision this session negotiated ('{}')",
                    session.version
                ),
            )));
        }
        Some(_) => {}
    }
    None
}

/// The HTTP response for `reply`.
fn respond(reply: Reply, accept: Accepts) -> HttpResponse {
    match reply {
        Reply::Accepted => {
            let mut response = Response::new(ResponseBody::empty());
            *response.status_mut() = StatusCode::ACCEPTED;
            response
        }
        Reply::Json(body) | Reply::Initialized(body, _) if accept == Accepts::SseOnly => {
            sse_response(StatusCode::OK, &body)
        }
        Reply::Json(body) | Reply::Initialized(body, _) => json_response(StatusCode::OK, body),
        Reply::Error(body, error) if accept == Accepts::SseOnly && error.headers().is_none() => {
            sse_response(error.status(), &body)
        }
        Reply::Error(body, error) => error_response(body, &error),
        Reply::Stream(chunks) => stream_response(chunks),
    }
}

/// The `progressToken` of a `tools/call` that asks for progress (a quick scan first: most
/// requests have none).
fn progress_token(body: &[u8]) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(rename = "_meta", borrow)]
        meta: Option<Meta<'a>>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(rename = "progressToken", borrow)]
        token: Option<&'a RawValue>,
    }
    memchr::memmem::find(body, b"progressToken")?;
    let request: Request = serde_json::from_slice(body).ok()?;
    if request.method.as_deref() != Some("tools/call") {
        return None;
    }
    let token = request.params?.meta?.token?;
    // The specification's tokens are strings or integers.
    matches!(
        token.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9')
    )
    .then(|| token.to_owned())
}

/// Serves a `tools/call` that asks for progress. The call runs in its own task. When it
/// ends before any progress comes, the answer is sent as usual; once the upstream reports
/// progress, the answer becomes an SSE stream: the progress notifications (with the
/// caller's token), then the response. A client that closes the stream (2026-07-28's
/// cancellation) or goes away ends the call, which tells the upstream.
async fn with_progress(
    endpoint: &Arc<McpEndpoint>,
    snapshot: Arc<super::Snapshot>,
    body: Bytes,
    headers: HeaderMap,
    caller: Option<crate::auth::Caller>,
    token: Box<RawValue>,
    accept: Accepts,
) -> HttpResponse {
    let (progress_tx, mut progress_rx) = mpsc::channel::<Bytes>(PROGRESS_BUFFER);
    let (reply_tx, mut reply_rx) = tokio::sync::oneshot::channel::<Reply>();
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let progress = crate::targets::mcp::Progress::new(&token, progress_tx.clone());
        let work =
            endpoint.handle_with(&snapshot, &body, &headers, caller.as_ref(), Some(&progress));
        tokio::select! {
            reply = work => { let _ = reply_tx.send(reply); }
            () = progress_tx.closed() => {}
        }
    });
    // Progress is queued before the reply is sent: checked first, it is never lost to a
    // reply that is ready at the same poll.
    let first = tokio::select! {
        biased;
        first = progress_rx.recv() => first,
        reply = &mut reply_rx => match reply {
            Ok(reply) => return respond(reply, accept),
            Err(_) => return plain_error(&RpcError::new(ErrorKind::Internal, "the call ended without an answer")),
        },
    };
    let (tx, rx) = mpsc::channel::<Bytes>(PROGRESS_BUFFER);
    if let Some(first) = first {
        let _ = tx.try_send(first);
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                chunk = progress_rx.recv() => match chunk {
                    Some(chunk) => if tx.send(chunk).await.is_err() { return },
                    None => break,
                },
                reply = &mut reply_rx => {
                    // Progress sent before the answer is already in the channel.
                    while let Ok(chunk) = progress_rx.try_recv() {
                        let _ = tx.send(chunk).await;
                    }
                    if let Ok(Reply::Json(json) | Reply::Error(json, _)) = reply {
                        let _ = tx.send(sse_event(&json)).await;
                    }
                    return;
                }
                () = tx.closed() => return,
            }
        }
        if let Ok(Reply::Json(json) | Reply::Error(json, _)) = reply_rx.await {
            let _ = tx.send(sse_event(&json)).await;
        }
    });
    stream_response(rx)
}

/// Progress events held for a slow client before more are dropped.
const PROGRESS_BUFFER: usize = 64;

/// One SSE `message` event carrying `json`.
fn sse_event(json: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(json.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(json);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// `GET /mcp`: the handshake revisions' stream of server notifications (here,
/// `notifications/tools/list_changed` after a reload). 2026-07-28 replaced it with
/// `subscriptions/listen`, so a GET in that revision gets 405.
fn get_stream(endpoint: &McpEndpoint, headers: &HeaderMap) -> HttpResponse {
    let version = super::header_str(headers, "mcp-protocol-version");
    if version == Some(super::MODERN_VERSION) {
        return plain_error(&RpcError::new(
            ErrorKind::MethodNotAllowed("POST"),
            "method not allowed: in protocol 2026-07-28 notifications come on a subscriptions/listen stream (POST)",
        ));
    }
    if let Some(v) = version
        && !super::LEGACY_VERSIONS.contains(&v)
    {
        return plain_error(&super::unsupported_version(v));
    }
    if !accepts_sse(headers) {
        return plain_error(&RpcError::new(
            ErrorKind::Refused(StatusCode::NOT_ACCEPTABLE),
            "GET /mcp opens a notification stream: the Accept header must list text/event-stream",
        ));
    }
    match super::stream::open(endpoint, super::stream::Listen::legacy()) {
        Ok(chunks) => stream_response(chunks),
        Err(error) => plain_error(&error),
    }
}

/// A long-lived SSE response fed by a notification task.
fn stream_response(chunks: mpsc::Receiver<Bytes>) -> HttpResponse {
    let mut response = Response::new(ResponseBody::Stream(chunks));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One SSE `message` event carrying the response, then the end of the stream.
fn sse_response(status: StatusCode, json: &[u8]) -> HttpResponse {
    let mut body = Vec::with_capacity(json.len() + 24);
    body.extend_from_slice(b"event: message\ndata: ");
    body.extend_from_slice(json);
    body.extend_from_slice(b"\n\n");
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_and_host_policy() {
        let local = OriginPolicy::new(
            "127.0.0.1:8000".parse().unwrap(),
            &["https://app.example.com".into()],
            &[],
        );
        let ok = |p: &OriginPolicy, h: &[(&'static str, &str)], authority: Option<&str>| {
            p.allows(&headers(h), authority).is_ok()
        };
        assert!(ok(&local, &[("host", "127.0.0.1:8000")], None));
        assert!(ok(
            &local,
            &[
                ("host", "localhost:8000"),
                ("origin", "http://localhost:6274")
            ],
            None
        ));
        assert!(ok(&local, &[("host", "[::1]:8000")], None));
        assert!(ok(
            &local,
            &[
                ("host", "LocalHost:8000"),
                ("origin", "HTTP://LOCALHOST:6274")
            ],
            None
        ));
        assert!(!ok(&local, &[("host", "evil.example.com")], None));
        assert!(!ok(
            &local,
            &[
                ("host", "127.0.0.1:8000"),
                ("origin", "http://evil.example.com")
            ],
            None
        ));
        assert!(ok(
            &local,
            &[("host", "localhost"), ("origin", "https://app.example.com")],
            None
        ));
        assert!(!ok(&local, &[("host", "localhost.evil.com")], None));
        assert!(ok(&local, &[], Some("127.0.0.1:8000")), "HTTP/2 authority");
        assert!(!ok(&local, &[], Some("evil.example.com")));
        assert!(
            !ok(&local, &[], None),
            "no host at all on a loopback listener"
        );
        let public = OriginPolicy::new("0.0.0.0:8000".parse().unwrap(), &[], &[]);
        assert!(ok(&public, &[("host", "gateway.example.com")], None));
        assert!(!ok(
            &public,
            &[
                ("host", "gateway.example.com"),
                ("origin", "https://evil.com")
            ],
            None
        ));
    }

    #[test]
    fn accept_negotiation() {
        assert!(
            accepts(&headers(&[(
                "accept",
                "application/json, text/event-stream"
            )])) == Accepts::Json
        );
        assert!(accepts(&headers(&[("accept", "text/event-stream")])) == Accepts::SseOnly);
        assert!(accepts(&headers(&[])) == Accepts::Json);
        assert!(accepts(&headers(&[("accept", "text/html")])) == Accepts::Neither);
    }
}
