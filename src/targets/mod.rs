//! Targets: the systems behind the tools. Each kind is one module (`http` for OpenAPI
//! operations, `lambda` for Lambda functions) with the same two steps: [`load`] turns its
//! config into [`ToolSpec`]s bound to the target, and [`Binding::execute`] makes one call,
//! owning its spans and the mapping of its failures. Everything common to all kinds
//! (naming, policy, cache, metrics, validation, answer mapping) is applied once, by the
//! catalog and `tools/call`. Adding a kind means one module and one variant of
//! [`TargetKind`] and [`Binding`].

pub mod http;
pub mod lambda;
pub mod mcp;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::catalog::ToolAnnotations;
use crate::config::{Config, TargetConfig};
use crate::metrics::{Metrics, Outcome};
use crate::openapi::Skipped;

/// A tool as its target kind describes it, before the catalog names and compiles it.
/// `B` is what a call needs: the kind's per-tool data while converting (an
/// [`http::HttpOperation`]), then a [`Binding`] once the target's shared settings are
/// attached.
#[derive(Debug, Clone)]
pub struct ToolSpec<B = http::HttpOperation> {
    /// Local name (e.g. the sanitized operationId); the catalog adds the target prefix.
    pub name: String,
    /// What the tool is called in its source, for messages (`GET /pets (listPets)`).
    pub source: String,
    /// Short human-readable title.
    pub title: Option<String>,
    /// Description for the model.
    pub description: String,
    /// JSON Schema (2020-12) of the arguments object.
    pub input_schema: Value,
    /// JSON Schema (2020-12) of `structuredContent`, always of type object.
    pub output_schema: Option<Value>,
    /// When set, a JSON answer is wrapped as `{"<key>": answer}` in `structuredContent`
    /// (the answer is not an object, e.g. an array).
    pub output_wrap: Option<Box<str>>,
    /// Behaviour hints.
    pub annotations: ToolAnnotations,
    /// The HTTP method, for the cache's default (GET and HEAD only); `None` for kinds
    /// without one, whose answers are cached whenever the config says so.
    pub method: Option<::http::Method>,
    /// How a call reaches the upstream.
    pub operation: B,
    /// A local name set in the config (`operations.<id>.rename`), used instead of `name`.
    pub rename: Option<String>,
    /// Members of the MCP `Tool` object kept as the source gives them (an upstream MCP
    /// server's `annotations`, `icons`, `_meta`...); empty for the other kinds.
    pub extra: Map<String, Value>,
}

impl<B> ToolSpec<B> {
    /// The same tool with its call data replaced by `f(call data)`.
    pub fn map<C>(self, f: impl FnOnce(B) -> C) -> ToolSpec<C> {
        ToolSpec {
            name: self.name,
            source: self.source,
            title: self.title,
            description: self.description,
            input_schema: self.input_schema,
            output_schema: self.output_schema,
            output_wrap: self.output_wrap,
            annotations: self.annotations,
            method: self.method,
            operation: f(self.operation),
            rename: self.rename,
            extra: self.extra,
        }
    }
}

/// The kind of a target, from its config section (exactly one, checked by the config).
#[derive(Debug, Clone, Copy)]
pub enum TargetKind<'a> {
    /// `openapi:`: a REST API described by an OpenAPI document.
    OpenApi(&'a crate::config::OpenApiTargetConfig),
    /// `lambda:`: a Lambda function with AgentCore tool definitions.
    Lambda(&'a lambda::LambdaTargetConfig),
    /// `mcp:`: an existing MCP server (Streamable HTTP or stdio).
    Mcp(&'a mcp::McpTargetConfig),
}

/// Where a tool's calls go: one variant per target kind.
#[derive(Debug)]
pub enum Binding {
    /// An operation of an OpenAPI target.
    Http(http::HttpBinding),
    /// A tool of a Lambda target.
    Lambda(lambda::LambdaBinding),
    /// A tool of an upstream MCP server.
    Mcp(mcp::McpBinding),
}

/// What a call produced.
#[derive(Debug)]
pub enum Answer {
    /// An HTTP-shaped answer (REST upstreams, Lambda payloads), mapped to MCP content.
    Http(UpstreamAnswer),
    /// An MCP `CallToolResult` from an upstream MCP server, passed on as it is.
    Mcp(Box<RawValue>),
}

/// How a target's upstream is doing, for `/readyz` and `toolgate check`.
#[derive(Debug, Clone)]
pub struct TargetHealth {
    /// Whether it answered the last time it was asked.
    pub healthy: bool,
    /// `ok`, or what went wrong.
    pub detail: String,
    /// Whether the gateway is unready while it is down (`failure: closed`).
    pub required: bool,
}

/// What a target kind keeps alive across reloads (a connection, a process) while the
/// target's section is unchanged.
pub trait TargetState: Send + Sync + 'static {
    /// How the upstream is doing, when the kind tracks it.
    fn health(&self) -> Option<TargetHealth>;
    /// What the upstream serves now, as a number that changes when its tools do (an MCP
    /// server's tool list): a build made from another one is rebuilt by the next load.
    fn revision(&self) -> Option<u64> {
        None
    }
    /// The state as `Any`, for the kind to take its own type back.
    fn into_any(self: std::sync::Arc<Self>) -> std::sync::Arc<dyn std::any::Any + Send + Sync>;
}

/// What every kind may use while loading one target.
pub struct LoadContext<'a> {
    /// The configuration file (relative paths resolve from it).
    pub config_file: &'a Path,
    /// The whole configuration.
    pub config: &'a Config,
    /// The process's metrics registry.
    pub metrics: &'a Arc<Metrics>,
    /// Invoke API clients for the Lambda targets.
    pub lambda_clients: &'a lambda::Clients,
    /// Notified when an upstream's tools changed: the gateway then reloads.
    pub changes: &'a std::sync::Arc<tokio::sync::Notify>,
    /// The response cache's shared tier (`cache.shared`), behind every target's cache.
    pub shared_cache: Option<&'a Arc<crate::cache::shared::SharedTier>>,
}

/// What loading one target produced.
pub struct TargetTools {
    /// The tools, bound to the target, in source order.
    pub specs: Vec<ToolSpec<Binding>>,
    /// The document or file the tools were defined in (for summaries).
    pub document: PathBuf,
    /// Local files whose content the tools depend on (documents, referenced files, tool
    /// definitions, secret files): a reload rebuilds the target when one changes.
    pub inputs: Vec<PathBuf>,
    /// Whether the tools also depend on something that cannot be fingerprinted (remote
    /// `$ref`s): then a reload always rebuilds the target.
    pub volatile: bool,
    /// The [`TargetState::revision`] the tools were made from (MCP targets).
    pub revision: Option<u64>,
    /// Parts of the source left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// Non-fatal findings, prefixed with the target.
    pub warnings: Vec<String>,
    /// What the kind keeps for the next load of the same target.
    pub state: Option<std::sync::Arc<dyn TargetState>>,
    /// Prompts and resources an upstream MCP server offers, with the server.
    pub offered: Option<(mcp::Offered, std::sync::Arc<mcp::McpUpstream>)>,
}

/// Why a target cannot be loaded.
pub type LoadError = crate::gateway::LoadError;

/// Loads one target of the configuration: its kind's config becomes bound tool specs.
/// `previous` is what the last load of the same, unchanged target kept.
pub fn load(
    ctx: &LoadContext<'_>,
    target: &TargetConfig,
    previous: Option<&std::sync::Arc<dyn TargetState>>,
) -> Result<TargetTools, LoadError> {
    match target.kind() {
        TargetKind::OpenApi(openapi) => http::load(ctx, target, openapi),
        TargetKind::Lambda(lambda) => lambda::load(ctx, target, lambda),
        TargetKind::Mcp(mcp) => mcp::load(ctx, target, mcp, previous),
    }
}

/// What a call knows besides its arguments.
pub struct CallContext<'a> {
    /// The JSON-RPC request id, as written.
    pub request_id: &'a RawValue,
    /// The MCP tool name.
    pub tool: &'a str,
    /// The client's `Mcp-Session-Id`, when it sent one.
    pub session_id: Option<&'a str>,
    /// The verified caller, when inbound authentication is on.
    pub caller: Option<&'a crate::auth::Caller>,
    /// The request's span (a no-op when tracing is off); targets add client spans.
    pub span: &'a crate::telemetry::SpanGuard,
    /// The pooled HTTP client.
    pub http: &'a http::HttpClient,
    /// Whether the tool wraps non-object answers (`structuredContent.result`).
    pub wraps: bool,
    /// Where the upstream's progress for this call goes, when the caller asked for it (MCP
    /// targets relay it).
    pub progress: Option<&'a mcp::Progress>,
    /// The signed-in user's token, for per-user OAuth targets.
    pub user: Option<&'a crate::auth::user_oauth::UserCall<'a>>,
}

/// Why a call produced no usable answer, as every kind reports it: an `isError` result.
#[derive(Debug)]
pub struct CallFailure {
    /// What the caller reads (no secret, no caller data).
    pub message: String,
    /// How it counts in metrics and logs.
    pub outcome: Outcome,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
}

impl Binding {
    /// The per-user OAuth settings of the tool's target, when it acts for the user.
    #[inline]
    pub fn user_oauth(&self) -> Option<&std::sync::Arc<crate::auth::user_oauth::UserOAuth>> {
        match self {
            Binding::Http(b) => match &b.target.credentials {
                Some(crate::auth::outbound::CredentialProvider::OAuth2User(u)) => Some(u),
                _ => None,
            },
            _ => None,
        }
    }

    /// Makes one call with validated `arguments`.
    pub async fn execute(
        &self,
        ctx: &CallContext<'_>,
        arguments: &Map<String, Value>,
    ) -> Result<Answer, CallFailure> {
        match self {
            Binding::Http(binding) => binding.execute(ctx, arguments).await.map(Answer::Http),
            Binding::Lambda(binding) => binding.execute(ctx, arguments).await.map(Answer::Http),
            Binding::Mcp(binding) => binding.execute(ctx, arguments).await,
        }
    }
}

/// What an upstream answered to one successful call, before mapping to MCP content.
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// HTTP status (2xx) of the answer.
    pub status: u16,
    /// The answer's media type without parameters, lower-cased (`application/json`).
    pub media_type: Box<str>,
    /// The answer body, complete (bounded by the target's size cap).
    pub body: Bytes,
    /// True when `media_type` is JSON (`application/json` or `+json`) and the body is
    /// complete; whether it parses is checked when the answer is mapped ([`valid_json`]).
    pub is_json: bool,
    /// True when the body was cut at the size cap (then `is_json` is false).
    pub truncated: bool,
    /// What the upstream's `Cache-Control` allows.
    pub cache: CacheDirectives,
}

/// Whether `body` is one well-formed JSON value (parsed without building it).
pub fn valid_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// The parts of an answer's `Cache-Control` that the response cache obeys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheDirectives {
    /// `no-store` (or `no-cache`: it may not be served without revalidation).
    pub no_store: bool,
    /// `private`: only for the caller it was made for.
    pub private: bool,
    /// `max-age` (or `s-maxage`, which wins for a shared cache).
    pub max_age: Option<std::time::Duration>,
}

impl CacheDirectives {
    /// Parses `Cache-Control` header values.
    pub fn parse<'a>(values: impl Iterator<Item = &'a ::http::HeaderValue>) -> Self {
        let mut d = Self::default();
        let mut s_maxage = None;
        for value in values {
            for directive in value.to_str().unwrap_or("").split(',') {
                let directive = directive.trim();
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = || {
                    arg.and_then(|a| a.parse::<u64>().ok())
                        .map(std::time::Duration::from_secs)
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" | "no-cache" => d.no_store = true,
                    "private" => d.private = true,
                    "max-age" => d.max_age = seconds().or(d.max_age),
                    "s-maxage" => s_maxage = seconds(),
                    _ => {}
                }
            }
        }
        if s_maxage.is_some() {
            d.max_age = s_maxage;
        }
        d
    }
}

/// Why a call produced no usable answer. Every variant becomes an `isError` tool result.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with a non-2xx status.
    #[error("upstream answered HTTP {status}{}", excerpt_suffix(.body_excerpt))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// A bounded excerpt of the answer's body (UTF-8, lossy).
        body_excerpt: String,
    },
    /// No answer within the target's timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Connecting or talking to the upstream failed.
    #[error("could not reach the upstream: {0}")]
    Transport(String),
    /// The target's credentials could not be obtained (OAuth2 token endpoint down or
    /// refusing, no caller token to forward).
    #[error("cannot authenticate to the upstream: {0}")]
    Credentials(String),
    /// The arguments could not be turned into a request (e.g. a value of the wrong shape
    /// for its serialization style). Validation normally catches these first.
    #[error("cannot build the upstream request: {0}")]
    Request(String),
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}

#[cfg(test)]
mod tests {
    use super::CacheDirectives;
    use http::HeaderValue;
    use std::time::Duration;

    fn parse(values: &[&'static str]) -> CacheDirectives {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        CacheDirectives::parse(values.iter())
    }

    #[test]
    fn cache_control_directives() {
        assert_eq!(parse(&[]), CacheDirectives::default());
        assert!(parse(&["no-store"]).no_store);
        assert!(parse(&["No-Cache"]).no_store);
        assert!(parse(&["public, max-age=30", "private"]).private);
        assert_eq!(
            parse(&["max-age=30"]).max_age,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&["max-age=30, s-maxage=5"]).max_age,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse(&["max-age=\"7\""]).max_age,
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse(&["max-age=soon"]).max_age, None);
    }
}
