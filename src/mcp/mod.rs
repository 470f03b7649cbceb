//! MCP over Streamable HTTP at `/mcp`: one endpoint serving the stateless revision
//! 2026-07-28 (per-request `_meta`, `server/discover`, routing headers) and the handshake
//! revisions 2025-11-25, 2025-06-18 and 2025-03-26 (`initialize`). No session state is kept,
//! so any replica answers any request.
//!
//! What a request is served from (catalog and settings) is one immutable [`Snapshot`],
//! swapped whole by a reload; a request keeps the snapshot it started with. The HTTP checks
//! (method, media types, Origin/Host, size) live in [`transport`], notification streams in
//! `stream`; each MCP method has its own file and the dispatcher below is one `match`.

mod cancel;
mod discover;
mod dynamic;
mod initialize;
mod intercept;
pub mod jsonrpc;
mod lists;
pub mod session;
mod stream;
mod tool_search;
mod tools_call;
mod tools_list;
pub mod transport;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::targets::http::HttpClient;
use crate::telemetry::SpanGuard;
use jsonrpc::{ErrorKind, RpcError};

/// The stateless revision.
pub const MODERN_VERSION: &str = "2026-07-28";
/// Handshake revisions, newest first.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// Every supported revision, newest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = [
    MODERN_VERSION,
    LEGACY_VERSIONS[0],
    LEGACY_VERSIONS[1],
    LEGACY_VERSIONS[2],
];

const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// Which protocol era a request is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: stateless, `resultType` on results, HTTP status per error kind.
    Modern,
    /// 2025-03-26 to 2025-11-25: `initialize` handshake.
    Legacy,
}

/// Settings of the endpoint, derived from `gateway.yaml` at each (re)load.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// `serverInfo.name`.
    pub server_name: String,
    /// `instructions`.
    pub instructions: Option<String>,
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// `ttlMs` on cacheable results.
    pub list_ttl_ms: u64,
    /// Largest request body.
    pub max_body: usize,
    /// Origin and Host policy.
    pub origins: transport::OriginPolicy,
    /// Inbound authentication, when `inbound:` is configured.
    pub inbound: Option<Arc<crate::auth::inbound::InboundAuth>>,
    /// Keys of signed session ids (`gateway.session`); `None`: no sessions are issued.
    pub sessions: Option<Arc<session::SessionKeys>>,
    /// `gateway.rate_limit`: a budget per caller across all tools.
    pub rate_limit: Option<Arc<crate::ratelimit::Limiter>>,
    /// `gateway.rate_limit_store: shared`: the store request rates are decided in; `None`:
    /// every budget is local (and admission never waits).
    pub rate_limit_store: Option<Arc<crate::ratelimit::SharedStore>>,
    /// `policy:`: Cedar policies, when configured.
    pub policy: Option<Arc<crate::policy::Policies>>,
    /// `interceptors:`; `None` when there is none (then no request pays for them).
    pub interceptors: Option<Arc<crate::interceptors::Interceptors>>,
    /// Per-user OAuth (`credentials.oauth2_user`): the vault, the login client, the targets.
    pub user_auth: Option<Arc<crate::auth::user_oauth::UserAuth>>,
    /// The base URL of the gateway's browser pages (`gateway.public_url`, else the
    /// listener's address), without a trailing `/`.
    pub public_base: Arc<str>,
}

/// Everything one request is served from: the catalog and the settings of one load,
/// immutable. A reload builds a new one and swaps it in; requests in flight finish on the
/// one they started with.
pub struct Snapshot {
    catalog: Arc<Catalog>,
    settings: EndpointSettings,
    /// `serverInfo` object, serialized once.
    server_info: Box<RawValue>,
}

impl Snapshot {
    /// A snapshot of `catalog` with `settings`.
    pub fn new(catalog: Arc<Catalog>, settings: EndpointSettings) -> Self {
        let server_info = serde_json::value::to_raw_value(&serde_json::json!({
            "name": settings.server_name,
            "title": settings.server_name,
            "version": crate::VERSION,
        }))
        .expect("server info serializes");
        Self {
            catalog,
            settings,
            server_info,
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The settings.
    pub fn settings(&self) -> &EndpointSettings {
        &self.settings
    }

    fn server_info(&self) -> &RawValue {
        &self.server_info
    }
}

/// The `/mcp` endpoint: the live snapshot, the upstream client, the metrics and the
/// notification streams.
pub struct McpEndpoint {
    live: ArcSwap<Snapshot>,
    http: HttpClient,
    metrics: Arc<Metrics>,
    streams: stream::Streams,
    /// Counts finished reload attempts (for requests that wait for one).
    reloads: tokio::sync::watch::Sender<u64>,
    /// Handshake-era calls of authenticated callers, for `notifications/cancelled`.
    cancels: cancel::Cancels,
}

/// What the endpoint answers to one POST.
pub enum Reply {
    /// A JSON-RPC result (HTTP 200).
    Json(Vec<u8>),
    /// The result of `initialize`, which negotiated this revision (a session may begin).
    Initialized(Vec<u8>, &'static str),
    /// A JSON-RPC error response, sent with its kind's status and headers.
    Error(Vec<u8>, RpcError),
    /// 202 Accepted with no body (notifications and client responses).
    Accepted,
    /// A notification stream (`subscriptions/listen`), as SSE chunks.
    Stream(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

/// What every request carries in `params._meta` (2026-07-28).
#[derive(Deserialize, Default)]
struct MetaEnvelope<'a> {
    #[serde(rename = "_meta", default, borrow)]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize, Default)]
struct Meta<'a> {
    #[serde(rename = "io.modelcontextprotocol/protocolVersion", default, borrow)]
    protocol_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities", default, borrow)]
    client_capabilities: Option<&'a RawValue>,
    #[serde(default, borrow)]
    traceparent: Option<std::borrow::Cow<'a, str>>,
}

/// A request being served: its id, era and headers, and the snapshot it is served from.
pub struct Call<'a> {
    /// The catalog and settings of this request.
    pub snap: &'a Snapshot,
    /// The request id, echoed in the response.
    pub id: &'a RawValue,
    /// The era it is served in.
    pub era: Era,
    /// The HTTP headers (for `Mcp-Name`).
    pub headers: &'a HeaderMap,
    /// The request's trace span (a no-op when tracing is off).
    pub span: &'a SpanGuard,
    /// The verified caller, when inbound authentication is on.
    pub caller: Option<&'a crate::auth::Caller>,
    /// Where a `tools/call`'s progress goes, when the caller asked for it and its answer
    /// is a stream.
    pub progress: Option<&'a crate::targets::mcp::Progress>,
}

impl McpEndpoint {
    /// Builds the endpoint, serving `snapshot` until the first [`McpEndpoint::swap`].
    pub fn new(snapshot: Snapshot, http: HttpClient, metrics: Arc<Metrics>) -> Self {
        metrics.catalog_tools.set(snapshot.catalog.len() as i64);
        let streams = stream::Streams::new(snapshot.catalog.generation(), metrics.clone());
        Self {
            live: ArcSwap::from_pointee(snapshot),
            metrics,
            http,
            streams,
            reloads: tokio::sync::watch::Sender::new(0),
            cancels: cancel::Cancels::default(),
        }
    }

    /// The pooled HTTP client (for the gateway's own requests).
    pub fn http_client(&self) -> &HttpClient {
        &self.http
    }

    /// Tells requests waiting for a reload that one finished (whether or not it loaded).
    pub fn reloaded(&self) {
        self.reloads.send_modify(|n| *n += 1);
    }

    /// The snapshot current now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// Serves `next` from now on (requests in flight keep theirs) and tells the open
    /// notification streams when the tool list changed. Returns the previous snapshot.
    pub fn swap(&self, next: Snapshot) -> Arc<Snapshot> {
        let generation = next.catalog.generation();
        self.metrics.catalog_tools.set(next.catalog.len() as i64);
        let previous = self.live.swap(Arc::new(next));
        if previous.catalog.generation() != generation {
            self.streams.tools_changed(generation);
        }
        previous
    }

    /// Ends every notification stream (at shutdown), so that connections can drain.
    pub fn close_streams(&self) {
        self.streams.close();
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Handles one JSON-RPC message (the body of a POST) from an anonymous caller, on the
    /// current snapshot.
    pub async fn handle_message(&self, body: &[u8], headers: &HeaderMap) -> Reply {
        self.handle(&self.snapshot(), body, headers, None).await
    }

    /// Handles one JSON-RPC message on behalf of `caller` (verified by inbound auth), on
    /// `snap`.
    pub async fn handle(
        &self,
        snap: &Snapshot,
        body: &[u8],
        headers: &HeaderMap,
        caller: Option<&crate::auth::Caller>,
    ) -> Reply {
        self.handle_with(snap, body, headers, caller, None).await
    }

    /// [`Self::handle`], with a `tools/call`'s progress passed on to `progress`.
    pub async fn handle_with(
        &self,
        snap: &Snapshot,
        body: &[u8],
        headers: &HeaderMap,
        caller: Option<&crate::auth::Caller>,
        progress: Option<&crate::targets::mcp::Progress>,
    ) -> Reply {
        match &snap.settings.interceptors {
            None => self.dispatch(snap, body, headers, caller, progress).await,
            Some(hooks) => {
                intercept::around(self, hooks, snap, body, headers, caller, progress).await
            }
        }
    }

    /// Parses one JSON-RPC message and serves it (after any request interceptor).
    async fn dispatch(
        &self,
        snap: &Snapshot,
        body: &[u8],
        headers: &HeaderMap,
        caller: Option<&crate::auth::Caller>,
        progress: Option<&crate::targets::mcp::Progress>,
    ) -> Reply {
        let message: jsonrpc::Message = match serde_json::from_slice(body) {
            Ok(m) => m,
            Err(e) => {
                let trimmed = body.iter().find(|b| !b.is_ascii_whitespace());
                let error = if trimmed == Some(&b'[') {
                    RpcError::new(
                        ErrorKind::InvalidRequest,
                        "batch requests are not supported: send one JSON-RPC message per POST",
                    )
                } else if e.is_data() {
                    RpcError::new(
                        ErrorKind::InvalidRequest,
                        format!("not a JSON-RPC message: {e}"),
                    )
                } else {
                    RpcError::new(ErrorKind::Parse, format!("parse error: {e}"))
                };
                return error_reply(None, error);
            }
        };
        if message.jsonrpc.as_deref() != Some("2.0") {
            let error = RpcError::new(
                ErrorKind::InvalidRequest,
                "invalid request: `jsonrpc` must be \"2.0\"",
            );
            return error_reply(message.id, error);
        }
        let Some(method) = message.method.as_deref() else {
            if message.id.is_some() && (message.result.is_some() || message.error.is_some()) {
                // A response to a server request; this server sends none, so nothing to match.
                return Reply::Accepted;
            }
            let error = RpcError::new(
                ErrorKind::InvalidRequest,
                "invalid request: `method` is missing",
            );
            return error_reply(message.id, error);
        };
        let Some(id) = message.id else {
            // Notifications need no state here, but for a handshake-era client's
            // cancellation of a call of its own.
            if method == "notifications/cancelled"
                && let Some(caller) = caller
                && self.cancels.cancel(&caller.cache_key, message.params)
            {
                tracing::debug!("a call was cancelled by its client");
            }
            return Reply::Accepted;
        };
        if !jsonrpc::valid_id(id) {
            let error = RpcError::new(
                ErrorKind::InvalidRequest,
                "invalid request: `id` must be a string or an integer",
            );
            return error_reply(None, error);
        }
        if message.params.is_some_and(|p| !p.get().starts_with('{')) {
            let error = RpcError::new(ErrorKind::MalformedParams, "`params` must be an object");
            return error_reply(Some(id), error);
        }
        let era = match self.era_of(method, message.params, headers) {
            Ok(era) => era,
            Err(error) => return error_reply(Some(id), error),
        };
        self.metrics
            .mcp_request(method, revision_label(era, headers));
        let span = if crate::telemetry::enabled() {
            request_span(method, message.params, headers, era, id)
        } else {
            SpanGuard::none()
        };
        let call = Call {
            snap,
            id,
            era,
            headers,
            span: &span,
            caller,
            progress,
        };
        let mut out = Vec::with_capacity(256);
        let result = match method {
            "tools/call" => {
                let fresh = if snap.catalog().dynamic().is_empty()
                    || !dynamic::unknown_tool(snap, message.params)
                {
                    None
                } else {
                    dynamic::synced(self, snap).await
                };
                let call = match &fresh {
                    Some(snap) => Call { snap, ..call },
                    None => call,
                };
                match (era, caller) {
                    (Era::Legacy, Some(caller)) => {
                        let mut entry = self.cancels.enter(&caller.cache_key, id);
                        let finished = tokio::select! {
                            result = tools_call::handle(self, &call, message.params, &mut out) => Some(result),
                            () = entry.cancelled() => None,
                        };
                        finished.unwrap_or_else(|| {
                            out.clear();
                            tools_call::write_cancelled(&mut out, id, era);
                            Ok(())
                        })
                    }
                    _ => tools_call::handle(self, &call, message.params, &mut out).await,
                }
            }
            "tools/list" => {
                let fresh = dynamic::synced(self, snap).await;
                let call = match &fresh {
                    Some(snap) => Call { snap, ..call },
                    None => call,
                };
                tools_list::handle(&call, message.params, &mut out)
            }
            "server/discover" => discover::handle(&call, &mut out),
            "initialize" if era == Era::Legacy => {
                return match initialize::handle(&call, message.params, &mut out) {
                    Ok(version) => Reply::Initialized(out, version),
                    Err(error) => error_reply(Some(id), error),
                };
            }
            "ping" if era == Era::Legacy => {
                jsonrpc::begin_result(&mut out, id);
                out.extend_from_slice(b"{}");
                jsonrpc::end_result(&mut out);
                Ok(())
            }
            "subscriptions/listen" if era == Era::Modern => {
                return match stream::listen(self, &call, message.params) {
                    Ok(chunks) => Reply::Stream(chunks),
                    Err(error) => error_reply(Some(id), error),
                };
            }
            "prompts/list" | "resources/list" | "resources/templates/list" => {
                lists::list(&call, method, message.params, &mut out)
            }
            "prompts/get" => lists::get_prompt(&call, message.params, &mut out).await,
            "resources/read" => lists::read(&call, message.params, &mut out).await,
            _ => Err(RpcError::new(
                ErrorKind::MethodNotFound(era),
                format!("method not found: {method}"),
            )),
        };
        match result {
            Ok(()) => Reply::Json(out),
            Err(error) => error_reply(Some(id), error),
        }
    }

    /// Decides the era of a request and, for 2026-07-28, checks `_meta` and the routing
    /// headers against the body, in the order the specification gives.
    fn era_of(
        &self,
        method: &str,
        params: Option<&RawValue>,
        headers: &HeaderMap,
    ) -> Result<Era, RpcError> {
        let header_version = header_str(headers, "mcp-protocol-version");
        let envelope: MetaEnvelope = match params {
            Some(p) => serde_json::from_str(p.get()).map_err(|e| {
                RpcError::new(ErrorKind::MalformedParams, format!("invalid `_meta`: {e}"))
            })?,
            None => MetaEnvelope::default(),
        };
        let meta_version = envelope
            .meta
            .as_ref()
            .and_then(|m| m.protocol_version.as_deref());
        // A handshake revision in `_meta` (dual-era clients probing with `server/discover`)
        // is served in the legacy era: the request describes itself, so no session is needed.
        let legacy_meta = meta_version.is_some_and(|v| LEGACY_VERSIONS.contains(&v));
        let modern =
            header_version == Some(MODERN_VERSION) || (meta_version.is_some() && !legacy_meta);
        if !modern {
            if method == "initialize" {
                return Ok(Era::Legacy);
            }
            return match header_version {
                None => Ok(Era::Legacy),
                Some(v) if LEGACY_VERSIONS.contains(&v) => Ok(Era::Legacy),
                Some(v) => Err(unsupported_version(v)),
            };
        }
        let bad_request = |m: String| RpcError::new(ErrorKind::MalformedParams, m);
        let Some(meta) = envelope.meta else {
            return Err(bad_request(format!(
                "params._meta is required in protocol {MODERN_VERSION}: it carries \"{META_PROTOCOL_VERSION}\" and \"io.modelcontextprotocol/clientCapabilities\""
            )));
        };
        let Some(version) = meta.protocol_version.as_deref() else {
            return Err(bad_request(format!(
                "params._meta[\"{META_PROTOCOL_VERSION}\"] is required"
            )));
        };
        if !meta
            .client_capabilities
            .is_some_and(|c| c.get().starts_with('{'))
        {
            return Err(bad_request(
                "params._meta[\"io.modelcontextprotocol/clientCapabilities\"] is required and must be an object".into(),
            ));
        }
        match header_version {
            None => {
                return Err(RpcError::header_mismatch(
                    "the MCP-Protocol-Version header is required",
                ));
            }
            Some(h) if h != version => {
                return Err(RpcError::header_mismatch(format!(
                    "Header mismatch: MCP-Protocol-Version header value '{h}' does not match body value '{version}'"
                )));
            }
            Some(_) => {}
        }
        match header_str(headers, "mcp-method") {
            None => {
                return Err(RpcError::header_mismatch(
                    "the Mcp-Method header is required",
                ));
            }
            Some(h) if h != method => {
                return Err(RpcError::header_mismatch(format!(
                    "Header mismatch: Mcp-Method header value '{h}' does not match body value '{method}'"
                )));
            }
            Some(_) => {}
        }
        if version != MODERN_VERSION {
            return Err(unsupported_version(version));
        }
        Ok(Era::Modern)
    }
}

/// The reply carrying `error` for the request `id`.
fn error_reply(id: Option<&RawValue>, error: RpcError) -> Reply {
    Reply::Error(jsonrpc::error_response(id, &error), error)
}

/// The server span of one request, child of the caller's trace context: the
/// `traceparent` HTTP header, else `params._meta.traceparent`.
fn request_span(
    method: &str,
    params: Option<&RawValue>,
    headers: &HeaderMap,
    era: Era,
    id: &RawValue,
) -> SpanGuard {
    let from_meta = params
        .and_then(|p| serde_json::from_str::<MetaEnvelope>(p.get()).ok())
        .and_then(|e| e.meta)
        .and_then(|m| m.traceparent.map(|t| t.into_owned()));
    let parent = header_str(headers, "traceparent")
        .map(str::to_owned)
        .or(from_meta);
    let name = match method {
        "tools/call" => "tools/call",
        "tools/list" => "tools/list",
        "server/discover" => "server/discover",
        "initialize" => "initialize",
        _ => "mcp",
    };
    let span = crate::telemetry::server_span(name, parent.as_deref());
    span.set("mcp.method.name", method.to_string());
    span.set("mcp.protocol.version", revision_label(era, headers));
    span.set("jsonrpc.request.id", id.get().trim_matches('"').to_string());
    span
}

/// The revision label of a request for metrics: one of the supported revisions, or
/// `legacy` when a handshake-era request does not say which.
fn revision_label(era: Era, headers: &HeaderMap) -> &'static str {
    match era {
        Era::Modern => MODERN_VERSION,
        Era::Legacy => header_str(headers, "mcp-protocol-version")
            .and_then(|v| LEGACY_VERSIONS.iter().copied().find(|l| *l == v))
            .unwrap_or("legacy"),
    }
}

/// `UnsupportedProtocolVersion` (HTTP 400) listing what is supported.
pub(crate) fn unsupported_version(requested: &str) -> RpcError {
    RpcError::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "Unsupported protocol version '{requested}': this server supports {}",
            SUPPORTED_VERSIONS.join(", ")
        ),
    )
    .with_data(serde_json::json!({ "supported": SUPPORTED_VERSIONS, "requested": requested }))
}

/// Writes the complete JSON-RPC response of a `tools/call` whose upstream answered `answer`
/// (JSON gives `structuredContent` plus a text block). The request path's answer mapping,
/// public for the benches.
pub fn write_tool_answer(
    out: &mut Vec<u8>,
    id: &RawValue,
    era: Era,
    tool: &crate::catalog::Tool,
    answer: &crate::targets::UpstreamAnswer,
) {
    tools_call::write_answer(out, id, era, tool, answer);
}

/// A header's value with optional whitespace trimmed, if present and visible ASCII.
fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches([' ', '\t']))
}

/// Writes the fields every complete result carries in the modern era (`resultType`),
/// followed by a comma when more fields follow.
fn write_result_type(out: &mut Vec<u8>, era: Era) {
    if era == Era::Modern {
        out.extend_from_slice(b"\"resultType\":\"complete\",");
    }
}
