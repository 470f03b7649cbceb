//! The `mcp:` target kind: existing MCP servers federated behind the gateway's endpoint,
//! over Streamable HTTP ([`http`]), the older HTTP+SSE transport ([`sse`]) or as supervised
//! stdio processes ([`stdio`]).
//!
//! Load lists the upstream's tools (every page) and binds each one to the target's
//! [`McpUpstream`], which is kept across reloads while the target's section is unchanged (the
//! same connection pool or process). The copy of the tools in the catalog is refreshed on
//! the upstream's `notifications/tools/list_changed` and every `mcp.refresh`: a change
//! triggers a reload of the gateway, which rebuilds only what changed. An upstream that is
//! down is reported by `/readyz` and `toolgate check`; with `failure: open` the gateway
//! serves the other targets meanwhile.

mod http;
pub mod settings;
mod sse;
mod stdio;
mod wire;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use crate::auth::outbound::CredentialProvider;
use crate::catalog::ToolAnnotations;
use crate::config::TargetConfig;
use crate::gateway::LoadError;
use crate::metrics::Outcome;
use crate::targets::{
    Answer, Binding, CallContext, CallFailure, LoadContext, TargetHealth, TargetState, TargetTools,
    ToolSpec,
};

pub use settings::{FailureMode, Listing, McpTargetConfig};
pub use wire::McpError;

/// The list hash of a catalog made while its dynamic upstream was down.
const NOTHING_LISTED: u64 = u64::MAX;

/// Most `tools/list` pages read from one upstream.
const MAX_PAGES: usize = 1000;

// One per upstream, never moved on the request path: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Transport {
    Http(http::HttpUpstream),
    Sse(sse::SseUpstream),
    Stdio(stdio::StdioUpstream),
}

/// One upstream MCP server: its transport, health and tool-list refresher.
pub struct McpUpstream {
    target: Arc<str>,
    transport: Transport,
    failure: FailureMode,
    timeout: Duration,
    health: Mutex<TargetHealth>,
    list_changed: Arc<Notify>,
    /// A hash of the tool list last seen, to tell a change.
    listed: AtomicU64,
    refresher: Mutex<Option<tokio::task::AbortHandle>>,
    listing: Listing,
    /// Asks the gateway for a reload (the reloader listens).
    changes: Arc<Notify>,
    /// When the last list forwarded for a `tools/list` ended: concurrent lists share one
    /// upstream call.
    synced: tokio::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for McpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpUpstream")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Drop for McpUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.lock().expect("not poisoned").take() {
            task.abort();
        }
    }
}

impl TargetState for McpUpstream {
    fn health(&self) -> Option<TargetHealth> {
        Some(self.health.lock().expect("not poisoned").clone())
    }

    fn revision(&self) -> Option<u64> {
        Some(self.listed())
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// Where the progress of one call goes: the caller's `progressToken` and the stream that
/// carries the caller's answer. The upstream is sent a token of the gateway's own (unique
/// in the process), so that callers who share an upstream never see each other's progress.
#[derive(Clone)]
pub struct Progress {
    /// The caller's token, as JSON.
    token: Arc<str>,
    sink: tokio::sync::mpsc::Sender<bytes::Bytes>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// The next token the gateway gives an upstream for a call's progress.
fn next_progress_token() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Progress {
    /// Progress for the caller's `token` (a JSON string or integer), sent as SSE events on
    /// `sink`.
    pub fn new(token: &RawValue, sink: tokio::sync::mpsc::Sender<bytes::Bytes>) -> Self {
        Self {
            token: token.get().into(),
            sink,
        }
    }

    /// Passes an upstream's `notifications/progress` params on with the caller's token.
    /// An update that finds the caller's stream full is dropped: progress is advisory, and
    /// a slow caller must not stall a connection other callers share.
    pub(super) fn relay(&self, params: &RawValue) {
        #[derive(serde::Deserialize)]
        struct Update<'a> {
            #[serde(borrow)]
            progress: &'a RawValue,
            #[serde(default, borrow)]
            total: Option<&'a RawValue>,
            #[serde(default, borrow)]
            message: Option<&'a RawValue>,
        }
        let Ok(update) = serde_json::from_str::<Update>(params.get()) else {
            return;
        };
        const PREFIX: &[u8] = b"event: message\ndata: ";
        let mut event = Vec::with_capacity(160);
        event.extend_from_slice(PREFIX);
        event.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":");
        event.extend_from_slice(self.token.as_bytes());
        event.extend_from_slice(b",\"progress\":");
        event.extend_from_slice(update.progress.get().as_bytes());
        for (key, value) in [("total", update.total), ("message", update.message)] {
            if let Some(value) = value {
                event.extend_from_slice(format!(",\"{key}\":").as_bytes());
                event.extend_from_slice(value.get().as_bytes());
            }
        }
        event.extend_from_slice(b"}}");
        // Raw JSON may hold line breaks between tokens; an SSE data line may not.
        for b in &mut event[PREFIX.len()..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
        event.extend_from_slice(b"\n\n");
        let _ = self.sink.try_send(bytes::Bytes::from(event));
    }
}

#[derive(Serialize)]
struct CallParams<'a> {
    name: &'a str,
    arguments: &'a Map<String, Value>,
}

impl McpUpstream {
    /// Sends one request to the upstream and returns its result.
    async fn request(
        &self,
        method: &str,
        params: &[u8],
        name: Option<&str>,
        caller: Option<&crate::auth::Caller>,
    ) -> Result<Box<RawValue>, McpError> {
        self.request_with(method, params, name, caller, None).await
    }

    /// [`Self::request`], with the upstream's progress for it passed on to `progress`.
    async fn request_with(
        &self,
        method: &str,
        params: &[u8],
        name: Option<&str>,
        caller: Option<&crate::auth::Caller>,
        progress: Option<&Progress>,
    ) -> Result<Box<RawValue>, McpError> {
        let progress = progress.map(|p| (next_progress_token(), p));
        let timeout = self.timeout;
        match &self.transport {
            Transport::Http(h) => {
                h.request(method, params, name, caller, timeout, progress)
                    .await
            }
            Transport::Sse(s) => s.request(method, params, timeout, progress).await,
            Transport::Stdio(s) => s.request(method, params, timeout, progress).await,
        }
    }

    /// Every tool the upstream lists, following `nextCursor`.
    async fn list_tools(&self) -> Result<Vec<Value>, McpError> {
        self.list_all("tools/list", "tools").await
    }

    /// What the upstream offers besides tools (none of a kind it does not serve).
    async fn offered(&self) -> Offered {
        Offered {
            prompts: self
                .list_all("prompts/list", "prompts")
                .await
                .unwrap_or_default(),
            resources: self
                .list_all("resources/list", "resources")
                .await
                .unwrap_or_default(),
            templates: self
                .list_all("resources/templates/list", "resourceTemplates")
                .await
                .unwrap_or_default(),
            dynamic: None,
        }
    }

    /// Forwards `prompts/get` of the upstream's prompt `name`.
    pub async fn get_prompt(
        &self,
        name: &str,
        arguments: Option<&RawValue>,
        caller: Option<&crate::auth::Caller>,
    ) -> Result<Box<RawValue>, McpError> {
        #[derive(Serialize)]
        struct Params<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            arguments: Option<&'a RawValue>,
        }
        let params = serde_json::to_vec(&Params { name, arguments }).unwrap_or_default();
        self.request("prompts/get", &params, Some(name), caller)
            .await
    }

    /// Forwards `resources/read` of the upstream's resource `uri`.
    pub async fn read_resource(
        &self,
        uri: &str,
        caller: Option<&crate::auth::Caller>,
    ) -> Result<Box<RawValue>, McpError> {
        let params = serde_json::to_vec(&serde_json::json!({ "uri": uri })).unwrap_or_default();
        self.request("resources/read", &params, Some(uri), caller)
            .await
    }

    /// Every item of a paged list method, following `nextCursor`.
    async fn list_all(&self, method: &str, key: &str) -> Result<Vec<Value>, McpError> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => {
                    serde_json::to_vec(&serde_json::json!({ "cursor": c })).unwrap_or_default()
                }
                None => b"{}".to_vec(),
            };
            let result = self.request(method, &params, None, None).await?;
            let mut page: Value = serde_json::from_str(result.get()).map_err(|e| {
                McpError::Protocol(format!("{method} answered no JSON object: {e}"))
            })?;
            match page.get_mut(key).map(Value::take) {
                Some(Value::Array(items)) => tools.extend(items),
                _ => {
                    return Err(McpError::Protocol(format!(
                        "{method} answered no `{key}` array"
                    )));
                }
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(McpError::Protocol(format!(
            "{method} has more than {MAX_PAGES} pages"
        )))
    }

    /// The revision negotiated with the upstream, once it has been.
    async fn version(&self) -> Option<&'static str> {
        match &self.transport {
            Transport::Http(h) => h.version().await,
            Transport::Sse(s) => s.version(),
            Transport::Stdio(s) => s.version().await,
        }
    }

    /// Records that the upstream answered (in `version`) or failed; whether its health
    /// flipped.
    fn mark(&self, result: Result<Option<&str>, &McpError>) -> bool {
        let mut health = self.health.lock().expect("not poisoned");
        let was = health.healthy;
        match result {
            Ok(version) => {
                health.healthy = true;
                health.detail = match version {
                    Some(v) => format!("ok, protocol {v}"),
                    None => "ok".into(),
                };
            }
            Err(e) => {
                health.healthy = false;
                health.detail = e.to_string();
            }
        }
        was != health.healthy
    }

    /// The target's name.
    pub fn target(&self) -> &Arc<str> {
        &self.target
    }

    /// For `listing: dynamic`: asks the upstream for its tools now (or takes the answer of
    /// a list that started after `since`) and tells whether they differ from `built`, the
    /// hash of the list a catalog was made from. A difference asks for a reload.
    pub async fn sync(&self, built: u64, since: std::time::Instant) -> Result<bool, McpError> {
        let mut synced = self.synced.lock().await;
        if !synced.is_some_and(|at| at >= since) {
            let result = self.refresh().await;
            *synced = Some(std::time::Instant::now());
            drop(synced);
            match result {
                Ok(_) => {
                    let version = self.version().await;
                    self.mark(Ok(version));
                }
                Err(e) => {
                    if self.mark(Err(&e)) {
                        tracing::warn!(target = %self.target, error = %e, "upstream MCP server is down");
                    }
                    return Err(e);
                }
            }
        }
        let stale = self.listed() != built;
        if stale {
            self.changes.notify_one();
        }
        Ok(stale)
    }

    /// The hash of the tool list last seen.
    pub fn listed(&self) -> u64 {
        self.listed.load(Ordering::Relaxed)
    }

    /// Lists the tools and remembers their hash; whether the list changed since last time.
    async fn refresh(&self) -> Result<(Vec<Value>, bool), McpError> {
        let tools = self.list_tools().await?;
        let mut hasher = std::hash::DefaultHasher::new();
        Value::Array(tools.clone()).to_string().hash(&mut hasher);
        let hash = hasher.finish();
        let changed = self.listed.swap(hash, Ordering::Relaxed) != hash;
        Ok((tools, changed))
    }

    /// Keeps the catalog's copy fresh: on the upstream's list-changed notifications and
    /// every `interval` (sooner while the upstream is down), lists the tools again and asks
    /// for a reload (`changes`) when they changed or the upstream came back.
    fn spawn_refresher(self: &Arc<Self>, interval: Duration) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let woken = self.list_changed.clone();
        let changes = self.changes.clone();
        let task = tokio::spawn(async move {
            let mut retry = Duration::from_secs(1);
            loop {
                let down = weak
                    .upgrade()
                    .is_some_and(|u| !u.health.lock().expect("not poisoned").healthy);
                let wait = if down { retry.min(interval) } else { interval };
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = woken.notified() => {}
                }
                let Some(upstream) = weak.upgrade() else {
                    return;
                };
                match upstream.refresh().await {
                    Ok((_, changed)) => {
                        retry = Duration::from_secs(1);
                        let version = upstream.version().await;
                        let flipped = upstream.mark(Ok(version));
                        if changed || flipped {
                            tracing::info!(target = %upstream.target, "upstream MCP tools changed; reloading");
                            changes.notify_one();
                        }
                    }
                    Err(e) => {
                        retry = (retry * 2).min(Duration::from_secs(60));
                        if upstream.mark(Err(&e)) {
                            tracing::warn!(target = %upstream.target, error = %e, "upstream MCP server is down");
                        }
                    }
                }
            }
        });
        *self.refresher.lock().expect("not poisoned") = Some(task.abort_handle());
    }
}

/// The prompts, resources and resource templates an upstream lists, as it lists them.
#[derive(Debug, Default)]
pub struct Offered {
    /// `prompts/list` entries.
    pub prompts: Vec<Value>,
    /// `resources/list` entries.
    pub resources: Vec<Value>,
    /// `resources/templates/list` entries.
    pub templates: Vec<Value>,
    /// With `listing: dynamic`, the hash of the tool list the catalog is made from.
    pub dynamic: Option<u64>,
}

/// One tool of an MCP target: the upstream and the tool's name there.
#[derive(Debug)]
pub struct McpBinding {
    /// The upstream server.
    pub upstream: Arc<McpUpstream>,
    /// The tool's name on the upstream.
    pub tool: Box<str>,
}

impl McpBinding {
    /// Forwards the call as `tools/call` and returns the upstream's result as is.
    pub async fn execute(
        &self,
        ctx: &CallContext<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<Answer, CallFailure> {
        let span = ctx.span.client("mcp tools/call");
        if crate::telemetry::enabled() {
            span.set("tool.name", ctx.tool.to_string());
            span.set("mcp.method.name", "tools/call");
            span.set("server.target", self.upstream.target.to_string());
        }
        let params = serde_json::to_vec(&CallParams {
            name: &self.tool,
            arguments,
        })
        .map_err(|e| CallFailure {
            message: e.to_string(),
            outcome: Outcome::InvalidArguments,
            status: None,
        })?;
        match self
            .upstream
            .request_with(
                "tools/call",
                &params,
                Some(&self.tool),
                ctx.caller,
                ctx.progress,
            )
            .await
        {
            Ok(result) => Ok(Answer::Mcp(result)),
            Err(error) => {
                span.error(error.to_string());
                if error.is_unreachable() && self.upstream.mark(Err(&error)) {
                    tracing::warn!(target = %self.upstream.target, %error, "upstream MCP server is down");
                }
                let (outcome, status) = match &error {
                    McpError::Timeout(_) => (Outcome::Timeout, None),
                    McpError::Rpc(_) => (Outcome::ToolError, None),
                    McpError::Status { status, .. } if (400..500).contains(status) => {
                        (Outcome::ToolError, Some(*status))
                    }
                    McpError::Status { status, .. } => (Outcome::UpstreamError, Some(*status)),
                    _ => (Outcome::UpstreamError, None),
                };
                Err(CallFailure {
                    message: error.to_string(),
                    outcome,
                    status,
                })
            }
        }
    }
}

/// Runs `future` to completion from load time (a blocking thread of the gateway's
/// runtime).
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let handle = tokio::runtime::Handle::try_current().map_err(|_| {
        "MCP targets are loaded inside the gateway's runtime (internal: no runtime)".to_string()
    })?;
    Ok(match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => handle.block_on(future),
        _ => tokio::task::block_in_place(|| handle.block_on(future)),
    })
}

/// Loads an MCP target: connects (or keeps the connection of the previous load), lists the
/// tools, and binds each one to the upstream.
pub fn load(
    ctx: &LoadContext<'_>,
    target: &TargetConfig,
    mcp: &McpTargetConfig,
    previous: Option<&Arc<dyn TargetState>>,
) -> Result<TargetTools, LoadError> {
    let name = &target.name.value;
    let target_error = |message: String| LoadError::Target {
        target: name.clone(),
        message,
    };
    let kept = previous.and_then(|p| p.clone().into_any().downcast::<McpUpstream>().ok());
    let upstream = match kept {
        Some(u) => u,
        None => {
            let target_name: Arc<str> = name.as_str().into();
            let list_changed = Arc::new(Notify::new());
            let forced = mcp.protocol_version.as_ref().map(|v| v.value.as_str());
            let transport = match (&mcp.url, &mcp.command) {
                (Some(url), _) => {
                    let credentials = match &target.credentials {
                        None => None,
                        Some(c) => Some(
                            CredentialProvider::from_config(
                                &c.value,
                                name,
                                ctx.config_file,
                                ctx.metrics,
                            )
                            .map_err(target_error)?,
                        ),
                    };
                    let client = crate::targets::http::HttpClient::new()
                        .map_err(|e| target_error(format!("cannot build the HTTP client: {e}")))?;
                    let sse = || -> Result<sse::SseUpstream, LoadError> {
                        let uri = url
                            .value
                            .parse()
                            .map_err(|e| target_error(format!("mcp.url: {e}")))?;
                        Ok(sse::SseUpstream::new(
                            uri,
                            client.clone(),
                            credentials.clone(),
                            list_changed.clone(),
                        ))
                    };
                    match mcp.transport {
                        settings::HttpTransport::Sse => Transport::Sse(sse()?),
                        mode => {
                            let streamable = http::HttpUpstream::new(
                                target_name.clone(),
                                &url.value,
                                client.clone(),
                                credentials.clone(),
                                forced,
                                list_changed.clone(),
                            )
                            .map_err(target_error)?;
                            // A server that refuses Streamable HTTP may speak the older
                            // HTTP+SSE transport at the same URL.
                            let refused = mode == settings::HttpTransport::Auto
                                && block_on(streamable.probe())
                                    .map_err(target_error)?
                                    .is_err_and(|e| {
                                        matches!(
                                            e,
                                            McpError::Status {
                                                status: 400 | 404 | 405 | 406 | 415,
                                                ..
                                            } | McpError::Protocol(_)
                                        )
                                    });
                            let old = if refused { Some(sse()?) } else { None };
                            match old {
                                Some(old)
                                    if block_on(old.probe(Duration::from_secs(10)))
                                        .map_err(target_error)? =>
                                {
                                    tracing::info!(target = %target_name, "upstream MCP server speaks the HTTP+SSE transport (2024-11-05)");
                                    Transport::Sse(old)
                                }
                                _ => Transport::Http(streamable),
                            }
                        }
                    }
                }
                (None, Some(command)) => Transport::Stdio(stdio::StdioUpstream::new(
                    target_name.clone(),
                    stdio::Launch {
                        command: command.value.clone(),
                        args: mcp.args.clone(),
                        env: mcp
                            .env
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        cwd: mcp.working_dir(ctx.config_file),
                    },
                    forced,
                    list_changed.clone(),
                )),
                (None, None) => unreachable!("validated: url or command"),
            };
            let upstream = Arc::new(McpUpstream {
                target: target_name,
                transport,
                failure: mcp.failure,
                timeout: target.timeout,
                health: Mutex::new(TargetHealth {
                    healthy: false,
                    detail: "not contacted yet".into(),
                    required: mcp.failure == FailureMode::Closed,
                }),
                list_changed,
                listed: AtomicU64::new(0),
                refresher: Mutex::new(None),
                listing: mcp.listing,
                changes: ctx.changes.clone(),
                synced: tokio::sync::Mutex::new(None),
            });
            block_on(async {
                upstream.spawn_refresher(mcp.refresh.unwrap_or(settings::DEFAULT_REFRESH))
            })
            .map_err(target_error)?;
            upstream
        }
    };
    let (listed, mut offered) = block_on(async {
        let listed = upstream.refresh().await;
        let version = upstream.version().await;
        let offered = match &listed {
            Ok(_) => upstream.offered().await,
            Err(_) => Offered::default(),
        };
        ((listed, version), offered)
    })
    .map_err(target_error)?;
    // Made from no list at all (the upstream is down): stale to any list it answers.
    let revision = if listed.0.is_ok() {
        upstream.listed()
    } else {
        NOTHING_LISTED
    };
    if upstream.listing == Listing::Dynamic {
        offered.dynamic = Some(revision);
    }
    let mut warnings = Vec::new();
    let tools = match listed {
        (Ok((tools, _)), version) => {
            upstream.mark(Ok(version));
            tools
        }
        (Err(e), _) => {
            upstream.mark(Err(&e));
            if upstream.failure == FailureMode::Closed {
                return Err(target_error(format!(
                    "{e} ({}; failure: closed)",
                    mcp.describe()
                )));
            }
            warnings.push(format!(
                "target `{name}`: {e} ({}): no tools until it answers (failure: open; retried in the background)",
                mcp.describe()
            ));
            Vec::new()
        }
    };
    let mut specs = Vec::with_capacity(tools.len());
    let mut skipped = Vec::new();
    for tool in tools {
        match tool_spec(tool, &upstream) {
            Ok(spec) => specs.push(spec),
            Err((tool, reason)) => skipped.push(crate::openapi::Skipped {
                operation: format!("tool {tool}"),
                reason,
            }),
        }
    }
    Ok(TargetTools {
        specs,
        document: std::path::PathBuf::from(mcp.describe()),
        inputs: Vec::new(),
        // Kept by the next load while the tool list is the one it was made from.
        volatile: false,
        revision: Some(revision),
        skipped,
        warnings,
        offered: Some((offered, upstream.clone())),
        state: Some(upstream),
    })
}

/// The members of an upstream `Tool` object the catalog sets itself.
const OWN_MEMBERS: [&str; 5] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
];

/// One upstream `Tool` object as a spec: schemas, title and description taken as they are;
/// every other member (annotations, icons, `_meta`, execution...) kept verbatim.
fn tool_spec(
    tool: Value,
    upstream: &Arc<McpUpstream>,
) -> Result<ToolSpec<Binding>, (String, String)> {
    let Value::Object(mut object) = tool else {
        return Err(("?".into(), "not a Tool object".into()));
    };
    let Some(Value::String(name)) = object.remove("name") else {
        return Err(("?".into(), "a tool without a name".into()));
    };
    let input_schema = match object.remove("inputSchema") {
        Some(schema @ Value::Object(_)) => schema,
        _ => return Err((name, "no inputSchema object".into())),
    };
    let output_schema = object.remove("outputSchema").filter(Value::is_object);
    let title = object
        .remove("title")
        .and_then(|t| t.as_str().map(str::to_owned));
    let description = object
        .remove("description")
        .and_then(|d| d.as_str().map(str::to_owned))
        .unwrap_or_default();
    object.retain(|k, _| !OWN_MEMBERS.contains(&k.as_str()));
    Ok(ToolSpec {
        source: format!("tool {name}"),
        title,
        description,
        input_schema,
        output_schema,
        output_wrap: None,
        annotations: ToolAnnotations::default(),
        method: None,
        operation: Binding::Mcp(McpBinding {
            upstream: upstream.clone(),
            tool: name.as_str().into(),
        }),
        extra: object,
        name,
        rename: None,
    })
}
