//! An upstream MCP server over Streamable HTTP, on the gateway's pooled hyper client. The
//! revision is negotiated once per upstream: 2026-07-28 when `server/discover` says so
//! (stateless: every request carries `_meta` and the routing headers), else the
//! `initialize` handshake (2025-11-25, 2025-06-18 or 2025-03-26) with the session id the
//! server issues. The session is the gateway's own: an expired one (404) is re-initialized
//! and the request sent again; no upstream session id ever reaches a client. Answers are
//! read as JSON or from the SSE stream up to the response, whichever the server sends.
//!
//! The server's own notifications are listened to on a stream of the gateway's session
//! (the handshake revisions' `GET` stream, 2026-07-28 `subscriptions/listen`), and in the
//! SSE answers to requests: `notifications/tools/list_changed` wakes the target's refresher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::value::RawValue;
use tokio::sync::{Notify, RwLock};

use super::Progress;
use super::wire::{self, McpError};
use crate::auth::Caller;
use crate::auth::outbound::{ApiKeyLocation, CredentialProvider};
use crate::mcp::{LEGACY_VERSIONS, MODERN_VERSION};
use crate::targets::http::HttpClient;

/// Largest answer read from an upstream MCP server.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// What was negotiated with the server.
#[derive(Debug, Clone)]
struct Session {
    /// The revision spoken.
    version: &'static str,
    /// The server's `Mcp-Session-Id` (handshake revisions, when it issues one).
    id: Option<HeaderValue>,
}

impl Session {
    fn modern(&self) -> bool {
        self.version == MODERN_VERSION
    }
}

/// A Streamable HTTP upstream.
pub(super) struct HttpUpstream {
    url: Uri,
    http: HttpClient,
    credentials: Option<CredentialProvider>,
    /// A revision fixed by the config, instead of negotiating.
    forced: Option<&'static str>,
    session: RwLock<Option<Session>>,
    next_id: AtomicU64,
    meta: String,
    target: Arc<str>,
    /// Woken by the server's `notifications/tools/list_changed`.
    list_changed: Arc<Notify>,
    /// The task listening to the current session's notification stream.
    listener: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for HttpUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.listener.lock().expect("not poisoned").take() {
            task.abort();
        }
    }
}

impl HttpUpstream {
    pub(super) fn new(
        target: Arc<str>,
        url: &str,
        http: HttpClient,
        credentials: Option<CredentialProvider>,
        forced: Option<&str>,
        list_changed: Arc<Notify>,
    ) -> Result<Self, String> {
        let url: Uri = url.parse().map_err(|e| format!("mcp.url `{url}`: {e}"))?;
        Ok(Self {
            url,
            http,
            credentials,
            forced: forced.and_then(|v| {
                crate::mcp::SUPPORTED_VERSIONS
                    .iter()
                    .copied()
                    .find(|s| *s == v)
            }),
            session: RwLock::new(None),
            next_id: AtomicU64::new(1),
            meta: wire::modern_meta(),
            target,
            list_changed,
            listener: std::sync::Mutex::new(None),
        })
    }

    /// Negotiates a session now (to tell whether the server speaks Streamable HTTP).
    pub(super) async fn probe(&self) -> Result<(), McpError> {
        self.session(None).await.map(|_| ())
    }

    /// The revision negotiated so far, if any (for summaries).
    pub(super) async fn version(&self) -> Option<&'static str> {
        self.session.read().await.as_ref().map(|s| s.version)
    }

    /// Sends one request and returns its result; `name` is the `Mcp-Name` of a
    /// `tools/call`. Negotiates first when needed, and re-initializes once when the server
    /// no longer knows the session.
    pub(super) async fn request(
        &self,
        method: &str,
        params: &[u8],
        name: Option<&str>,
        caller: Option<&Caller>,
        timeout: Duration,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let work = async {
            let session = self.session(caller).await?;
            match self
                .send(&session, method, params, name, caller, progress)
                .await
            {
                Err(McpError::Status { status: 404, .. }) if session.id.is_some() => {
                    tracing::info!(target = %self.target, "upstream MCP session expired; initializing a new one");
                    self.forget(&session).await;
                    let session = self.session(caller).await?;
                    self.send(&session, method, params, name, caller, progress)
                        .await
                }
                other => other,
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(McpError::Timeout(timeout)))
    }

    /// Drops `used` if it is still the current session.
    async fn forget(&self, used: &Session) {
        let mut current = self.session.write().await;
        if current.as_ref().map(|s| &s.id) == Some(&used.id) {
            *current = None;
        }
    }

    /// The current session, negotiated on first use.
    async fn session(&self, caller: Option<&Caller>) -> Result<Session, McpError> {
        if let Some(s) = self.session.read().await.as_ref() {
            return Ok(s.clone());
        }
        let mut slot = self.session.write().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let session = self.negotiate(caller).await?;
        tracing::debug!(target = %self.target, version = session.version, "upstream MCP session");
        *slot = Some(session.clone());
        self.listen(&session);
        Ok(session)
    }

    /// Listens to the notifications of `session` (replacing the listener of the previous
    /// one). Credentials bound to a caller (token exchange, passthrough) have no token for
    /// the gateway's own stream: their targets rely on `refresh`.
    fn listen(&self, session: &Session) {
        let token = match &self.credentials {
            Some(CredentialProvider::TokenExchange(_) | CredentialProvider::Passthrough) => return,
            Some(CredentialProvider::OAuth2(source)) => Some(source.clone()),
            _ => None,
        };
        let listener = Listener {
            url: self.url.clone(),
            http: self.http.clone(),
            credentials: self.credentials.clone(),
            oauth2: token,
            session: session.clone(),
            meta: self.meta.clone(),
            target: self.target.clone(),
            list_changed: self.list_changed.clone(),
        };
        let task = tokio::spawn(listener.run());
        if let Some(old) = self
            .listener
            .lock()
            .expect("not poisoned")
            .replace(task.abort_handle())
        {
            old.abort();
        }
    }

    async fn negotiate(&self, caller: Option<&Caller>) -> Result<Session, McpError> {
        let modern = Session {
            version: MODERN_VERSION,
            id: None,
        };
        if self.forced.is_none_or(|v| v == MODERN_VERSION) {
            match self
                .send(&modern, "server/discover", b"{}", None, caller, None)
                .await
            {
                Ok(result) => {
                    let speaks = serde_json::from_str::<serde_json::Value>(result.get())
                        .ok()
                        .and_then(|r| r.get("supportedVersions").cloned())
                        .and_then(|v| v.as_array().cloned())
                        .is_some_and(|v| v.iter().any(|v| v == MODERN_VERSION));
                    if speaks || self.forced.is_some() {
                        return Ok(modern);
                    }
                }
                Err(e) if self.forced.is_some() || e.is_unreachable() => return Err(e),
                Err(_) => {}
            }
        }
        self.initialize(caller).await
    }

    /// The handshake: `initialize`, then `notifications/initialized`.
    async fn initialize(&self, caller: Option<&Caller>) -> Result<Session, McpError> {
        let asked = self.forced.unwrap_or(LEGACY_VERSIONS[0]);
        let params = format!(
            "{{\"protocolVersion\":\"{asked}\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"toolgate\",\"version\":\"{}\"}}}}",
            crate::VERSION
        );
        let handshake = Session {
            version: asked,
            id: None,
        };
        let (result, session_id) = self
            .exchange(
                &handshake,
                "initialize",
                Some(params.as_bytes()),
                None,
                caller,
                None,
            )
            .await?;
        let result =
            result.ok_or_else(|| McpError::Protocol("no answer to initialize".into()))??;
        let version = serde_json::from_str::<serde_json::Value>(result.get())
            .ok()
            .and_then(|r| r.get("protocolVersion")?.as_str().map(str::to_owned))
            .ok_or_else(|| McpError::Protocol("initialize answered no protocolVersion".into()))?;
        let Some(version) = LEGACY_VERSIONS.iter().copied().find(|v| *v == version) else {
            return Err(McpError::Protocol(format!(
                "the server speaks protocol {version}, which the gateway does not (it speaks {})",
                crate::mcp::SUPPORTED_VERSIONS.join(", ")
            )));
        };
        let session = Session {
            version,
            id: session_id,
        };
        self.notify(&session, "notifications/initialized", caller)
            .await?;
        Ok(session)
    }

    /// Sends a notification (no answer expected beyond 202).
    async fn notify(
        &self,
        session: &Session,
        method: &str,
        caller: Option<&Caller>,
    ) -> Result<(), McpError> {
        self.exchange(session, method, None, None, caller, None)
            .await
            .map(|_| ())
    }

    /// Sends request `method` in `session` and returns its result.
    async fn send(
        &self,
        session: &Session,
        method: &str,
        params: &[u8],
        name: Option<&str>,
        caller: Option<&Caller>,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let (result, _) = self
            .exchange(session, method, Some(params), name, caller, progress)
            .await?;
        result.ok_or_else(|| McpError::Protocol(format!("no answer to {method}")))?
    }

    /// One POST of a request, or of a notification (`notifications/...`). Returns the
    /// result (for a request) and the session id the server sent. The server's progress
    /// notifications for the call go to `progress`. When the caller stops waiting before
    /// the answer (it went away, or the timeout passed), a handshake-era server is sent
    /// `notifications/cancelled`; a 2026-07-28 server sees the stream close, which is
    /// that revision's cancellation.
    #[allow(clippy::type_complexity)]
    async fn exchange(
        &self,
        session: &Session,
        method: &str,
        params: Option<&[u8]>,
        name: Option<&str>,
        caller: Option<&Caller>,
        progress: Option<(u64, &Progress)>,
    ) -> Result<(Option<Result<Box<RawValue>, McpError>>, Option<HeaderValue>), McpError> {
        let is_request = !method.starts_with("notifications/");
        let id = is_request.then(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        let meta = session.modern().then_some(self.meta.as_str());
        let body = Bytes::from(wire::frame_with_progress(
            id,
            method,
            params,
            meta,
            progress.map(|(t, _)| t),
        ));
        let token = self.dynamic_token(caller).await?;
        let mut guard = CancelOnDrop {
            upstream: self,
            session,
            id: id.filter(|_| !session.modern() && method != "initialize"),
            token: token.as_ref(),
        };
        let answer = self
            .answer(
                session,
                method,
                name,
                body,
                caller,
                token.as_ref(),
                id,
                progress,
            )
            .await;
        guard.id = None;
        answer
    }

    /// Sends one framed message and reads its answer (see [`Self::exchange`]).
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    async fn answer(
        &self,
        session: &Session,
        method: &str,
        name: Option<&str>,
        body: Bytes,
        caller: Option<&Caller>,
        token: Option<&Token>,
        id: Option<u64>,
        progress: Option<(u64, &Progress)>,
    ) -> Result<(Option<Result<Box<RawValue>, McpError>>, Option<HeaderValue>), McpError> {
        let response = self
            .post(session, method, name, body.clone(), token)
            .await?;
        let response = match (response.status().as_u16(), token, &self.credentials) {
            (401, Some(used), Some(credentials)) => {
                // A token that the upstream no longer takes: once more with a fresh one.
                drop(response);
                forget_token(credentials, used, caller).await;
                let token = self.dynamic_token(caller).await?;
                self.post(session, method, name, body, token.as_ref())
                    .await?
            }
            _ => response,
        };
        let status = response.status().as_u16();
        let session_id = response.headers().get("mcp-session-id").cloned();
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        let mut body = response.into_body();
        if !(200..300).contains(&status) {
            let bytes = read_all(&mut body, crate::targets::http::ERROR_EXCERPT_BYTES * 8).await;
            if let Some(id) = id
                && let Some(Err(e)) = wire::response_to(&bytes, id)
            {
                return Err(e);
            }
            let cut = &bytes[..bytes.len().min(crate::targets::http::ERROR_EXCERPT_BYTES)];
            return Err(McpError::Status {
                status,
                excerpt: crate::targets::http::excerpt_text(cut),
            });
        }
        let Some(id) = id else {
            return Ok((None, session_id));
        };
        if !sse {
            let bytes = read_all(&mut body, MAX_ANSWER_BYTES).await;
            return match wire::response_to(&bytes, id) {
                Some(result) => Ok((Some(result), session_id)),
                None => Err(McpError::Protocol(format!(
                    "the answer to {method} is not its JSON-RPC response: {}",
                    crate::targets::http::excerpt_text(&bytes[..bytes.len().min(200)])
                ))),
            };
        }
        // An SSE stream: notifications and requests may come first; the response ends it.
        let mut buffer = Vec::new();
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buffer.extend_from_slice(&data);
                        if buffer.len() > MAX_ANSWER_BYTES {
                            return Err(McpError::Protocol(format!(
                                "the SSE answer to {method} passed {MAX_ANSWER_BYTES} bytes without its response"
                            )));
                        }
                        for event in wire::take_sse_events(&mut buffer) {
                            if let Some(result) = wire::response_to(&event, id) {
                                return Ok((Some(result), session_id));
                            }
                            if wire::is_tools_list_changed(&event) {
                                self.list_changed.notify_one();
                            }
                            if let Some((token, relay)) = progress
                                && let Ok(message) =
                                    serde_json::from_slice::<wire::Incoming>(&event)
                                && let Some(params) = message.progress_for(token)
                            {
                                relay.relay(params);
                            }
                        }
                    }
                }
                Some(Err(e)) => return Err(McpError::Transport(e.to_string())),
                None => {
                    return Err(McpError::Protocol(format!(
                        "the SSE stream answering {method} ended without its response"
                    )));
                }
            }
        }
    }

    /// Builds and sends one POST with the target's credentials.
    async fn post(
        &self,
        session: &Session,
        method: &str,
        name: Option<&str>,
        body: Bytes,
        token: Option<&Token>,
    ) -> Result<http::Response<hyper::body::Incoming>, McpError> {
        post_to(
            &self.http,
            &self.url,
            self.credentials.as_ref(),
            session,
            method,
            name,
            body,
            token,
        )
        .await
    }

    /// A token for the kinds of credentials obtained at call time.
    async fn dynamic_token(&self, caller: Option<&Caller>) -> Result<Option<Token>, McpError> {
        let timeout = Duration::from_secs(30);
        let no_token = |e: crate::auth::oauth2::TokenError| {
            McpError::Credentials(format!("no access token for target `{}`: {e}", self.target))
        };
        let caller_token = || {
            caller.map(Caller::token).ok_or_else(|| {
                McpError::Credentials(format!(
                    "target `{}` acts with the caller's token, but this request carries none",
                    self.target
                ))
            })
        };
        Ok(match &self.credentials {
            Some(CredentialProvider::OAuth2(source)) => Some(Token::OAuth2(
                source.token(&self.http, timeout).await.map_err(no_token)?,
            )),
            Some(CredentialProvider::TokenExchange(exchange)) => Some(Token::OAuth2(
                exchange
                    .token(&self.http, caller_token()?, timeout)
                    .await
                    .map_err(no_token)?,
            )),
            Some(CredentialProvider::Passthrough) => {
                let mut value = HeaderValue::try_from(format!("Bearer {}", caller_token()?))
                    .map_err(|_| {
                        McpError::Credentials("the caller's token is not a header value".into())
                    })?;
                value.set_sensitive(true);
                Some(Token::Caller(value))
            }
            _ => None,
        })
    }
}

/// The target's static credentials on a request to `uri` (an API key in the query goes
/// into its URI). Fetched tokens (OAuth2, token exchange, passthrough) are added apart.
pub(super) fn with_credentials(
    mut builder: http::request::Builder,
    uri: &Uri,
    credentials: Option<&CredentialProvider>,
) -> Result<http::request::Builder, McpError> {
    match credentials {
        Some(CredentialProvider::Bearer { authorization }) => {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        Some(CredentialProvider::ApiKey {
            location,
            header_name,
            name,
            value,
            query_name,
            query_value,
        }) => match location {
            ApiKeyLocation::Header => {
                if let Some(h) = header_name {
                    builder = builder.header(h.clone(), value.clone());
                }
            }
            ApiKeyLocation::Cookie => {
                let cookie = format!("{name}={}", value.to_str().unwrap_or(""));
                let mut v = HeaderValue::try_from(cookie)
                    .map_err(|_| McpError::Credentials("API key cookie".into()))?;
                v.set_sensitive(true);
                builder = builder.header(COOKIE, v);
            }
            ApiKeyLocation::Query => {
                let pq = uri.path_and_query().map_or("/", |p| p.as_str());
                let separator = if pq.contains('?') { '&' } else { '?' };
                let with_key = format!("{pq}{separator}{query_name}={query_value}");
                let mut parts = uri.clone().into_parts();
                parts.path_and_query = with_key.parse().ok();
                let uri =
                    Uri::from_parts(parts).map_err(|e| McpError::Credentials(e.to_string()))?;
                builder = builder.uri(uri);
            }
        },
        _ => {}
    }
    Ok(builder)
}

/// What listens to one session's notification stream.
struct Listener {
    url: Uri,
    http: HttpClient,
    credentials: Option<CredentialProvider>,
    oauth2: Option<Arc<crate::auth::oauth2::ClientCredentials>>,
    session: Session,
    meta: String,
    target: Arc<str>,
    list_changed: Arc<Notify>,
}

impl Listener {
    /// Opens the stream and reads it; opens it again (with backoff) when it ends, and stops
    /// when the server does not offer one or no longer knows the session (the next session
    /// gets its own listener).
    async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let opened = Instant::now();
            match self.open().await {
                Ok(Some(body)) => self.read(body).await,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(target = %self.target, error = %e, "upstream MCP notification stream not opened");
                    return;
                }
            }
            // A stream that lived a while ended normally (a proxy's idle timeout): reopen
            // at once; one that keeps ending at once backs off.
            if opened.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_secs(1);
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }

    /// The stream's body, or `None` when the server offers no stream.
    async fn open(&self) -> Result<Option<hyper::body::Incoming>, McpError> {
        let builder = if self.session.modern() {
            Request::post(&self.url)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .header("mcp-method", "subscriptions/listen")
        } else {
            Request::get(&self.url).header(ACCEPT, "text/event-stream")
        };
        let mut builder = builder
            .header("mcp-protocol-version", self.session.version)
            .header(
                http::header::USER_AGENT,
                concat!("toolgate/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(id) = &self.session.id {
            builder = builder.header("mcp-session-id", id.clone());
        }
        builder = with_credentials(builder, &self.url, self.credentials.as_ref())?;
        if let Some(source) = &self.oauth2 {
            let token = source
                .token(&self.http, Duration::from_secs(30))
                .await
                .map_err(|e| McpError::Credentials(e.to_string()))?;
            builder = builder.header(AUTHORIZATION, token.authorization.clone());
        }
        let body = if self.session.modern() {
            wire::frame(
                Some(0),
                "subscriptions/listen",
                Some(br#"{"notifications":{"toolsListChanged":true}}"#),
                Some(&self.meta),
            )
        } else {
            Vec::new()
        };
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| McpError::Protocol(e.to_string()))?;
        let response = self
            .http
            .request_streaming(request)
            .await
            .map_err(|e| McpError::Transport(e.to_string()))?;
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        // 405 is how a server says it offers no stream; a JSON answer is a refused listen.
        if !response.status().is_success() || !sse {
            return Ok(None);
        }
        Ok(Some(response.into_body()))
    }

    /// Reads events until the stream ends.
    async fn read(&self, mut body: hyper::body::Incoming) {
        let mut buffer = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            for event in wire::take_sse_events(&mut buffer) {
                if wire::is_tools_list_changed(&event) {
                    self.list_changed.notify_one();
                }
            }
            if buffer.len() > MAX_ANSWER_BYTES {
                // An event that never ends: drop it rather than grow without bound.
                buffer.clear();
            }
        }
    }
}

/// Builds and sends one POST to `uri` with the target's credentials.
#[allow(clippy::too_many_arguments)]
async fn post_to(
    http: &HttpClient,
    uri: &Uri,
    credentials: Option<&CredentialProvider>,
    session: &Session,
    method: &str,
    name: Option<&str>,
    body: Bytes,
    token: Option<&Token>,
) -> Result<http::Response<hyper::body::Incoming>, McpError> {
    let mut builder = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", session.version)
        .header(
            http::header::USER_AGENT,
            concat!("toolgate/", env!("CARGO_PKG_VERSION")),
        );
    if session.modern() {
        builder = builder.header("mcp-method", method);
        if let Some(name) = name {
            builder = builder.header("mcp-name", mcp_name(name));
        }
    }
    if let Some(id) = &session.id {
        builder = builder.header("mcp-session-id", id.clone());
    }
    builder = with_credentials(builder, uri, credentials)?;
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, token.authorization());
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|e| McpError::Protocol(format!("cannot build the request: {e}")))?;
    http.request_streaming(request).await.map_err(|e| match e {
        crate::targets::UpstreamError::Transport(m) => McpError::Transport(m),
        other => McpError::Transport(other.to_string()),
    })
}

/// Tells a handshake-era server that the gateway stopped waiting for request `id`, when
/// dropped before the answer came (`id` is cleared once it has).
struct CancelOnDrop<'a> {
    upstream: &'a HttpUpstream,
    session: &'a Session,
    id: Option<u64>,
    token: Option<&'a Token>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let u = self.upstream;
        let (http, url, credentials) = (u.http.clone(), u.url.clone(), u.credentials.clone());
        let (session, token, target) =
            (self.session.clone(), self.token.cloned(), u.target.clone());
        runtime.spawn(async move {
            let body = Bytes::from(wire::cancelled(id));
            let sent = post_to(
                &http,
                &url,
                credentials.as_ref(),
                &session,
                "notifications/cancelled",
                None,
                body,
                token.as_ref(),
            )
            .await;
            tracing::debug!(%target, id, ok = sent.is_ok(), "told the upstream MCP server the call was cancelled");
        });
    }
}

/// An `Authorization` value obtained for one request.
#[derive(Clone)]
enum Token {
    OAuth2(std::sync::Arc<crate::auth::oauth2::AccessToken>),
    Caller(HeaderValue),
}

impl Token {
    fn authorization(&self) -> HeaderValue {
        match self {
            Token::OAuth2(t) => t.authorization.clone(),
            Token::Caller(v) => v.clone(),
        }
    }
}

/// Drops a token the upstream refused, so that the next one is fresh.
async fn forget_token(credentials: &CredentialProvider, used: &Token, caller: Option<&Caller>) {
    match (credentials, used) {
        (CredentialProvider::OAuth2(source), Token::OAuth2(token)) => source.invalidate(token),
        (CredentialProvider::TokenExchange(exchange), Token::OAuth2(_)) => {
            if let Some(c) = caller {
                exchange.invalidate(c.token()).await;
            }
        }
        _ => {}
    }
}

/// `Mcp-Name` for `name`: as is when it is visible ASCII, else the base64 sentinel form.
fn mcp_name(name: &str) -> HeaderValue {
    if name.bytes().all(|b| (0x21..0x7f).contains(&b))
        && let Ok(v) = HeaderValue::try_from(name)
    {
        return v;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(name.as_bytes());
    HeaderValue::try_from(format!("=?base64?{encoded}?=")).unwrap_or(HeaderValue::from_static(""))
}

/// Reads a body up to `cap` bytes.
async fn read_all(body: &mut hyper::body::Incoming, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            let room = cap.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
            if out.len() >= cap {
                break;
            }
        }
    }
    out
}
