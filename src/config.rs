//! `gateway.yaml`: the configuration types, `${VAR}` / `${VAR:-default}` interpolation and
//! validation. Every error names the file, the line and column, and what to do.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::auth::outbound::ApiKeyLocation;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the MCP listener (`/mcp`, `/ping`, `/healthz`, `/readyz`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener (`/metrics`), if any.
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// Gateway-wide settings.
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// Inbound authentication of MCP callers (JWT bearer tokens).
    #[serde(default)]
    pub inbound: Option<crate::auth::inbound::InboundConfig>,
    /// Settings of the response cache across targets (its shared Redis tier).
    #[serde(default)]
    pub cache: CacheSettings,
    /// The systems behind the gateway.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Request and response hooks (AgentCore Gateway's interceptor contract), in order.
    #[serde(default)]
    pub interceptors: Vec<Spanned<crate::interceptors::InterceptorConfig>>,
    /// Serve the built-in sample restaurant API (for the first-run demo).
    #[serde(default)]
    pub demo: Option<DemoConfig>,
    /// Cedar authorization policies (src/policy.rs, docs/policies.md).
    #[serde(default)]
    pub policy: Option<Spanned<crate::policy::PolicyConfig>>,
    /// The token vault of per-user OAuth (`credentials.oauth2_user`).
    #[serde(default)]
    pub vault: Option<Spanned<crate::auth::vault::VaultConfig>>,
    /// Hashes of its parts, for a reload to tell what changed (not a config key).
    #[serde(skip)]
    pub fingerprints: Fingerprints,
}

/// Hashes of the parts of a configuration that a reload compares, over the text after
/// `${VAR}` substitution (so a changed variable counts as a change; no value is kept).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fingerprints {
    /// Per target, in order: its whole section.
    pub targets: Vec<u64>,
    /// What every target's tools depend on: `gateway.naming`, `description_budget`,
    /// `max_response`, `name`, and whether inbound authentication is on.
    pub tools: u64,
    /// The `inbound:` section.
    pub inbound: u64,
}

impl Fingerprints {
    fn of(raw: &serde_json::Value) -> Self {
        let hash = |v: Option<&serde_json::Value>| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            v.map(|v| v.to_string()).hash(&mut h);
            h.finish()
        };
        let gateway = raw.get("gateway");
        let tools_part = serde_json::json!([
            gateway.and_then(|g| g.get("naming")),
            gateway.and_then(|g| g.get("description_budget")),
            gateway.and_then(|g| g.get("max_response")),
            gateway.and_then(|g| g.get("name")),
            raw.get("inbound").is_some_and(|i| !i.is_null()),
        ]);
        Self {
            targets: raw
                .get("targets")
                .and_then(|t| t.as_array())
                .map(|t| t.iter().map(|t| hash(Some(t))).collect())
                .unwrap_or_default(),
            tools: hash(Some(&tools_part)),
            inbound: hash(raw.get("inbound")),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000))
}

/// `gateway:` settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// `serverInfo.name`.
    pub name: String,
    /// `instructions` sent to clients.
    pub instructions: Option<String>,
    /// How tool names are formed.
    pub naming: NamingConfig,
    /// Tools per `tools/list` page.
    pub page_size: usize,
    /// Largest accepted request body on `/mcp` (e.g. `4MiB`).
    pub max_body: ByteSize,
    /// Largest upstream answer read; larger answers are cut and marked truncated.
    pub max_response: ByteSize,
    /// `Origin` values accepted besides the loopback ones (e.g. `https://app.example.com`).
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides the loopback ones when listening on loopback.
    pub allowed_hosts: Vec<String>,
    /// `ttlMs` advertised on `tools/list` and `server/discover` (2026-07-28).
    #[serde(deserialize_with = "de_duration")]
    pub list_ttl: Duration,
    /// How long shutdown waits for in-flight calls.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_grace: Duration,
    /// How long shutdown keeps serving with `/readyz` failing before it stops accepting,
    /// so a load balancer takes the replica out first (default `0s`).
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_delay: Duration,
    /// Signed session ids for the handshake revisions (`gateway.session`).
    pub session: SessionConfig,
    /// Most characters of descriptions per OpenAPI tool: its description and every
    /// description in its input and output schemas (see [`crate::openapi::DescriptionBudget`]).
    pub description_budget: usize,
    /// Most `/mcp` requests in flight at once; more are refused at once with 503 and
    /// `Retry-After` (load shedding), counted in `toolgate_requests_shed_total`.
    pub max_concurrent_requests: usize,
    /// The search tool (`gateway.search`): off unless enabled.
    pub search: SearchConfig,
    /// A budget per caller across all tools (`gateway.rate_limit`; always per caller).
    pub rate_limit: Option<Spanned<RateLimitConfig>>,
    /// Where the `requests_per_second` budgets are decided: `local` (default, per replica)
    /// or `shared` (in the Redis of `cache.shared`, across replicas).
    pub rate_limit_store: RateLimitStore,
    /// The public base URL of this gateway (e.g. `https://gateway.example.com`): the
    /// browser pages of per-user OAuth (`/oauth/connect`, `/oauth/callback`) are sent to
    /// users under it. Default: the listener's own address.
    pub public_url: Option<Spanned<String>>,
}

/// `gateway.rate_limit_store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitStore {
    /// Each replica keeps its own budgets.
    #[default]
    Local,
    /// Request rates are decided in the Redis of `cache.shared`, shared by every replica.
    Shared,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            name: "toolgate".into(),
            instructions: None,
            naming: NamingConfig::default(),
            page_size: 1000,
            max_body: ByteSize(4 << 20),
            max_response: ByteSize(10 << 20),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            list_ttl: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            shutdown_delay: Duration::ZERO,
            session: SessionConfig::default(),
            description_budget: crate::openapi::DescriptionBudget::DEFAULT,
            max_concurrent_requests: 1024,
            search: SearchConfig::default(),
            rate_limit: None,
            rate_limit_store: RateLimitStore::Local,
            public_url: None,
        }
    }
}

/// `gateway.search`: a tool that finds tools by what they do, for catalogs too large to
/// list to a model.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Whether the search tool is served.
    pub enabled: bool,
    /// Its name (AgentCore Gateway's by default, so agents written for it work unchanged).
    pub tool_name: String,
    /// Tools returned when the call gives no `limit`.
    pub limit: usize,
    /// The most tools one call may ask for.
    pub max_limit: usize,
    /// What `tools/list` shows: `all` (the search tool, then every tool) or `search_only`
    /// (the search tool and the `pinned` tools; every tool stays callable by name).
    pub list: SearchListing,
    /// Tool names (globs: `*` within a name) listed beside the search tool with
    /// `list: search_only`.
    pub pinned: Vec<String>,
    /// A static embedding model directory (model2vec format, e.g. made by
    /// `toolgate search distill`); relative to this file. Without one, search is lexical.
    pub model: Option<PathBuf>,
    /// Which rankings answer: `hybrid` (default), `lexical` or `dense`.
    pub mode: SearchMode,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            tool_name: "x_amz_bedrock_agentcore_search".into(),
            limit: 10,
            max_limit: 50,
            list: SearchListing::All,
            pinned: Vec::new(),
            model: None,
            mode: SearchMode::Hybrid,
        }
    }
}

impl SearchConfig {
    fn validate(&self, path: &Path, charset: NameCharset) -> Result<(), ConfigError> {
        let dot_ok = charset == NameCharset::Mcp;
        let name = &self.tool_name;
        if name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| crate::catalog::is_name_char(c) && (dot_ok || c != '.'))
        {
            return Err(ConfigError::file(
                path,
                format!(
                    "gateway.search.tool_name `{name}` must be 1 to 128 characters of A-Z a-z 0-9 _ -{}",
                    if dot_ok { " ." } else { "" }
                ),
            ));
        }
        if !(1..=1000).contains(&self.max_limit) || !(1..=self.max_limit).contains(&self.limit) {
            return Err(ConfigError::file(
                path,
                format!(
                    "gateway.search.limit ({}) must be between 1 and max_limit ({}), and max_limit at most 1000",
                    self.limit, self.max_limit
                ),
            ));
        }
        if self.mode == SearchMode::Dense && self.model.is_none() {
            return Err(ConfigError::file(
                path,
                "gateway.search.mode: dense needs gateway.search.model (a static embedding model directory, made by `toolgate search distill`)",
            ));
        }
        for pattern in &self.pinned {
            if let Err(e) = globset::Glob::new(pattern) {
                return Err(ConfigError::file(
                    path,
                    format!("gateway.search.pinned: `{pattern}` is not a valid glob: {e}"),
                ));
            }
        }
        Ok(())
    }
}

/// `gateway.session`: handshake-era session ids signed with a key every replica shares, so
/// any replica accepts a session another one opened. Off (no `Mcp-Session-Id` is issued)
/// unless a key is configured.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// The signing key (at least 32 bytes; e.g. `${TOOLGATE_SESSION_KEY}`).
    pub key: Option<Secret>,
    /// A file holding the key instead (relative to this file; a trailing newline is
    /// ignored).
    pub key_file: Option<PathBuf>,
    /// Keys still accepted but no longer used to sign (for a rotation without cutting
    /// sessions off).
    pub previous_keys: Vec<Secret>,
    /// How long a session id is accepted after `initialize` (default `24h`).
    #[serde(deserialize_with = "de_duration")]
    pub ttl: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            key: None,
            key_file: None,
            previous_keys: Vec::new(),
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl SessionConfig {
    /// The keys, read from `key_file` when so configured; `None` when sessions are off.
    pub fn keys(
        &self,
        config_file: &Path,
    ) -> Result<Option<crate::mcp::session::SessionKeys>, ConfigError> {
        use crate::mcp::session::{MIN_KEY_BYTES, SessionKeys};
        let from_file;
        let key: &[u8] = match (&self.key, &self.key_file) {
            (None, None) => {
                if !self.previous_keys.is_empty() {
                    return Err(ConfigError::file(
                        config_file,
                        "gateway.session.previous_keys needs gateway.session.key or key_file (the key that signs new sessions)",
                    ));
                }
                return Ok(None);
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::file(
                    config_file,
                    "gateway.session takes key or key_file, not both",
                ));
            }
            (Some(key), None) => key.expose().as_bytes(),
            (None, Some(file)) => {
                let path = Config::resolve(config_file, file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::file(
                        config_file,
                        format!(
                            "gateway.session.key_file: cannot read {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                from_file = text.trim_end_matches(['\r', '\n']).to_string();
                from_file.as_bytes()
            }
        };
        let short = |what: &str, len: usize| {
            ConfigError::file(
                config_file,
                format!(
                    "gateway.session.{what} is {len} bytes; it must be at least {MIN_KEY_BYTES} (e.g. the output of `openssl rand -base64 32`)"
                ),
            )
        };
        if key.len() < MIN_KEY_BYTES {
            return Err(short("key", key.len()));
        }
        let mut previous = Vec::with_capacity(self.previous_keys.len());
        for (i, p) in self.previous_keys.iter().enumerate() {
            let p = p.expose().as_bytes();
            if p.len() < MIN_KEY_BYTES {
                return Err(short(&format!("previous_keys[{i}]"), p.len()));
            }
            previous.push(p);
        }
        if self.ttl.is_zero() {
            return Err(ConfigError::file(
                config_file,
                "gateway.session.ttl must be above zero",
            ));
        }
        Ok(Some(SessionKeys::new(key, &previous, self.ttl)))
    }
}

/// `gateway.search.list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchListing {
    /// The search tool, then every tool.
    All,
    /// The search tool and the pinned tools only.
    SearchOnly,
}

/// `gateway.search.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Lexical and dense rankings fused (lexical alone without a model).
    Hybrid,
    /// BM25F over words.
    Lexical,
    /// Embedding similarity (needs `model`).
    Dense,
}

/// Smallest `description_budget` accepted (characters).
const MIN_DESCRIPTION_BUDGET: usize = 100;

/// `gateway.naming`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamingConfig {
    /// Between target and operation name.
    pub separator: String,
    /// `always` (default) or `never`.
    pub prefix: PrefixMode,
    /// Longest tool name (1 to 128; default 64, which every major LLM API accepts).
    pub max_length: usize,
    /// Characters tool names may use: `strict` (default) `[A-Za-z0-9_-]`, what Bedrock,
    /// OpenAI and the agent frameworks accept; `mcp` also `.` (the MCP rule).
    pub charset: NameCharset,
}

impl Default for NamingConfig {
    fn default() -> Self {
        Self {
            separator: "___".into(),
            prefix: PrefixMode::Always,
            max_length: 64,
            charset: NameCharset::Strict,
        }
    }
}

/// `gateway.naming.charset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameCharset {
    /// `[A-Za-z0-9_-]`: accepted by every model API's function names.
    Strict,
    /// `[A-Za-z0-9_.-]`: the MCP tool-name alphabet.
    Mcp,
}

/// Whether tool names carry the target name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixMode {
    /// `target___operation`.
    Always,
    /// `operation` (names must then be unique across targets; duplicates get `_2`...).
    Never,
}

/// One entry of `targets:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name, used as the tool name prefix.
    pub name: Spanned<String>,
    /// An OpenAPI-described REST API.
    #[serde(default)]
    pub openapi: Option<OpenApiTargetConfig>,
    /// An AWS Lambda function with AgentCore tool definitions.
    #[serde(default)]
    pub lambda: Option<Spanned<crate::targets::lambda::LambdaTargetConfig>>,
    /// An existing MCP server (Streamable HTTP `url`, or a stdio `command`).
    #[serde(default)]
    pub mcp: Option<Spanned<crate::targets::mcp::McpTargetConfig>>,
    /// Outbound credentials.
    #[serde(default)]
    pub credentials: Option<Spanned<CredentialsConfig>>,
    /// Timeout of one call (default `30s`).
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Response cache for the target's tools.
    #[serde(default)]
    pub cache: Option<Spanned<CacheConfig>>,
    /// Per-operation settings, by operationId (or `<method>_<path>` without one).
    #[serde(default)]
    pub operations: indexmap::IndexMap<String, OperationConfig>,
    /// Scopes a caller's token needs to see and call this target's tools (inbound auth).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the target's tools declare the `outputSchema` their source gives (default
    /// true). A declared schema is enforced on every answer (conforming `structuredContent`
    /// or `isError`); `false` is for upstreams whose answers stray from their documents.
    #[serde(default = "yes")]
    pub output_schemas: bool,
    /// A budget for the target's tools together: one for everyone (`per: target`, the
    /// default) or one per caller (`per: caller`).
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitConfig>>,
}

fn yes() -> bool {
    true
}

impl TargetConfig {
    /// The target's kind: its one `openapi:` or `lambda:` section (validated at parse).
    pub fn kind(&self) -> crate::targets::TargetKind<'_> {
        match (&self.openapi, &self.lambda, &self.mcp) {
            (Some(openapi), _, _) => crate::targets::TargetKind::OpenApi(openapi),
            (None, Some(lambda), _) => crate::targets::TargetKind::Lambda(&lambda.value),
            (None, None, Some(mcp)) => crate::targets::TargetKind::Mcp(&mcp.value),
            (None, None, None) => unreachable!("validated: a target has exactly one kind"),
        }
    }
}

/// `targets[].cache`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an answer stays fresh (an upstream `max-age` below it wins).
    #[serde(deserialize_with = "de_duration")]
    pub ttl: Duration,
    /// At most this many entries (default: bounded by `max_bytes`).
    #[serde(default)]
    pub max_entries: Option<u64>,
    /// At most this many bytes of answers (default `64MiB`).
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// Methods whose answers are cached (default `[GET, HEAD]`).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// `caller` (default with inbound auth) or `shared` (default without).
    #[serde(default)]
    pub scope: Option<crate::cache::CacheScope>,
}

/// `targets[].operations.<operationId>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    /// `false` turns the target's cache off for this tool; an object overrides `ttl`,
    /// `methods` or `scope` (and enables caching when the target has none).
    #[serde(default)]
    pub cache: Option<CacheOverride>,
    /// Scopes needed for this tool (replace the target's `scopes`; inbound auth).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The tool's local name instead of the operationId (the target prefix still applies).
    #[serde(default)]
    pub rename: Option<String>,
    /// The tool's description instead of the document's summary and description.
    #[serde(default)]
    pub description: Option<String>,
    /// The request body media type to send, among those the operation offers, instead of
    /// the automatic choice (e.g. `multipart/form-data` over `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Whether this tool declares its `outputSchema` (overrides the target's
    /// `output_schemas`).
    #[serde(default)]
    pub output_schema: Option<bool>,
    /// A budget for this tool, in addition to the target's.
    #[serde(default)]
    pub rate_limit: Option<Spanned<RateLimitConfig>>,
}

/// `rate_limit`: a budget of requests per second (with a burst) and/or of calls in progress.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second (> 0; fractions allowed, e.g. `0.5`).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Requests allowed at once from a full budget (default: one second's worth, at least 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Calls in progress at once.
    #[serde(default)]
    pub concurrent: Option<u32>,
    /// `target` (default): one budget for everyone; `caller`: one per inbound identity.
    #[serde(default)]
    pub per: Option<RateLimitPer>,
}

/// `rate_limit.per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitPer {
    /// One budget per caller (anonymous callers share one).
    Caller,
    /// One budget for every caller.
    Target,
}

impl RateLimitConfig {
    /// Checks the numbers; `what` names the section in messages.
    fn check(&self, what: &str) -> Result<(), String> {
        if self.burst.is_some() && self.requests_per_second.is_none() {
            return Err(format!(
                "{what}.burst needs requests_per_second (the rate the burst refills at)"
            ));
        }
        if self.requests_per_second.is_none() && self.concurrent.is_none() {
            return Err(format!(
                "{what} needs requests_per_second, concurrent or both (e.g. {{requests_per_second: 10, burst: 20, concurrent: 5}})"
            ));
        }
        if let Some(rps) = self.requests_per_second
            && !(rps.is_finite() && rps > 0.0)
        {
            return Err(format!(
                "{what}.requests_per_second must be a number above 0 (found {rps}); fractions are allowed, e.g. 0.5"
            ));
        }
        if self.burst == Some(0) {
            return Err(format!("{what}.burst must be at least 1"));
        }
        if self.concurrent == Some(0) {
            return Err(format!(
                "{what}.concurrent must be at least 1 (leave it out for no concurrency limit)"
            ));
        }
        Ok(())
    }
}

/// A per-operation cache setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CacheOverride {
    /// `true`: as the target says; `false`: never cache this tool.
    Enabled(bool),
    /// Overrides.
    Settings(CacheOverrideSettings),
}

/// Overridable cache settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOverrideSettings {
    /// Freshness for this tool.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub ttl: Option<Duration>,
    /// Methods cached for this tool (e.g. `[POST]` for a read-only search by POST).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
    /// Scope for this tool.
    #[serde(default)]
    pub scope: Option<crate::cache::CacheScope>,
}

/// `cache:` (top level): what every target's response cache shares.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// A Redis server as a second tier behind each target's in-process cache, shared by
    /// every replica: a URL, or `{url, timeout, max_value_bytes, key_prefix}`.
    #[serde(default)]
    pub shared: Option<Spanned<SharedCacheConfig>>,
}

/// `cache.shared`: where the shared tier is and how it is used.
#[derive(Debug, Clone)]
pub struct SharedCacheConfig {
    /// `redis://[user:password@]host[:port][/db]`, `redis+unix:///path` or `unix:///path`.
    pub url: RedisUrl,
    /// Where the URL is written, when it is written as `url:` (for errors).
    pub url_at: Option<serde_saphyr::Location>,
    /// Longest wait for one Redis operation (default `50ms`); past it, the call goes on
    /// as a miss.
    pub timeout: Duration,
    /// Largest answer stored in Redis (default `1MiB`); larger ones stay in-process only.
    pub max_value_bytes: ByteSize,
    /// Prefix of every key toolgate writes (default `toolgate:`).
    pub key_prefix: String,
}

/// Settings compare by value, not by where they are written (for a reload).
impl PartialEq for SharedCacheConfig {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.timeout == other.timeout
            && self.max_value_bytes == other.max_value_bytes
            && self.key_prefix == other.key_prefix
    }
}

impl SharedCacheConfig {
    fn of_url(url: String, url_at: Option<serde_saphyr::Location>) -> Self {
        Self {
            url: RedisUrl(url),
            url_at,
            timeout: Duration::from_millis(50),
            max_value_bytes: ByteSize(1 << 20),
            key_prefix: "toolgate:".into(),
        }
    }
}

impl<'de> Deserialize<'de> for SharedCacheConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Settings {
            url: Spanned<String>,
            #[serde(default, deserialize_with = "de_opt_duration")]
            timeout: Option<Duration>,
            #[serde(default)]
            max_value_bytes: Option<ByteSize>,
            #[serde(default)]
            key_prefix: Option<String>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SharedCacheConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Redis URL (e.g. redis://127.0.0.1:6379) or {url, timeout, max_value_bytes, key_prefix}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SharedCacheConfig::of_url(v.to_string(), None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let s = Settings::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let mut config = SharedCacheConfig::of_url(s.url.value, Some(s.url.referenced));
                config.timeout = s.timeout.unwrap_or(config.timeout);
                config.max_value_bytes = s.max_value_bytes.unwrap_or(config.max_value_bytes);
                config.key_prefix = s.key_prefix.unwrap_or(config.key_prefix);
                Ok(config)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A Redis URL: printed (`Debug`, logs, errors) with its password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::cache::shared::redact_url(&self.0))
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::cache::shared::redact_url(&self.0))
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `targets[].openapi`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiTargetConfig {
    /// The document, relative to the config file.
    pub spec: Spanned<PathBuf>,
    /// Overrides the document's `servers`.
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    /// Keep only matching operations.
    #[serde(default)]
    pub include: Option<OperationFilter>,
    /// Drop matching operations.
    #[serde(default)]
    pub exclude: Option<OperationFilter>,
    /// Also make tools of operations marked `deprecated: true` (skipped by default).
    #[serde(default)]
    pub include_deprecated: bool,
    /// Overrides `gateway.description_budget` for this target.
    #[serde(default)]
    pub description_budget: Option<usize>,
    /// Which http(s) documents the document's `$ref`s may name (default: none).
    #[serde(default)]
    pub allow_remote_refs: Option<Spanned<AllowRemoteRefs>>,
}

impl OpenApiTargetConfig {
    /// The remote `$ref` policy these settings give (prefixes were checked by validation).
    pub fn remote_refs(&self) -> crate::openapi::RemoteRefs {
        use crate::openapi::RemoteRefs;
        match self.allow_remote_refs.as_ref().map(|a| &a.value) {
            None | Some(AllowRemoteRefs::All(false)) => RemoteRefs::Refused,
            Some(AllowRemoteRefs::All(true)) => RemoteRefs::Any,
            Some(AllowRemoteRefs::Prefixes(list)) => RemoteRefs::Prefixes(
                list.iter()
                    .filter_map(|p| RemoteRefs::parse_prefix(p).ok())
                    .collect(),
            ),
        }
    }
}

/// `openapi.allow_remote_refs`: `true` (any http/https URL), `false`, or a list of URL
/// prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowRemoteRefs {
    /// `true` or `false`.
    All(bool),
    /// URL prefixes, e.g. `https://schemas.example.com/`.
    Prefixes(Vec<String>),
}

impl<'de> Deserialize<'de> for AllowRemoteRefs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AllowRemoteRefs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, or a list of URL prefixes (e.g. [\"https://schemas.example.com/\"])")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(AllowRemoteRefs::All(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(prefix) = seq.next_element::<String>()? {
                    list.push(prefix);
                }
                Ok(AllowRemoteRefs::Prefixes(list))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Operation filter for `include` / `exclude`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationFilter {
    /// operationIds.
    pub operations: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// HTTP methods (any case).
    pub methods: Vec<String>,
    /// Path templates as written in the document, as globs: `*` stays within one
    /// segment, `**` spans segments (e.g. `/pets/*`, `/admin/**`).
    pub paths: Vec<Spanned<String>>,
}

/// `targets[].credentials`: exactly one kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    /// A bearer token.
    #[serde(default)]
    pub bearer: Option<Secret>,
    /// An API key.
    #[serde(default)]
    pub api_key: Option<ApiKeyConfig>,
    /// OAuth2 client credentials.
    #[serde(default)]
    pub oauth2: Option<crate::auth::oauth2::OAuth2Config>,
    /// Forward the caller's own token (off by default: confused-deputy risk).
    #[serde(default)]
    pub passthrough: bool,
    /// Exchange the caller's token for one meant for the upstream (RFC 8693).
    #[serde(default)]
    pub token_exchange: Option<crate::auth::oauth2::OAuth2Config>,
    /// The signed-in user's own token, by the authorization code grant (per-user OAuth).
    #[serde(default)]
    pub oauth2_user: Option<crate::auth::user_oauth::UserOAuthConfig>,
}

/// `credentials.api_key`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// `header`, `query` or `cookie`.
    #[serde(rename = "in")]
    pub location: ApiKeyLocation,
    /// Header, query parameter or cookie name.
    pub name: String,
    /// The key.
    pub value: Secret,
}

/// `demo:`: the built-in sample API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Where the sample restaurant API listens.
    pub listen: SocketAddr,
}

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from elsewhere (e.g. a secret file).
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret value, for building credentials.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A size in bytes, written `4MiB`, `512KiB`, `1GB` or a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n as usize)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("invalid size `{s}`: expected e.g. 4MiB, 512KiB or 1048576"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}`: use B, KiB, MiB, GiB, KB, MB or GB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1m30s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    let bad = || format!("invalid duration `{s}`: expected e.g. 500ms, 10s, 2m, 1h or 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(secs);
    }
    Ok(total)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(f64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        Raw::N(n) => Err(serde::de::Error::custom(format!("invalid duration {n}"))),
        Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

pub(crate) fn de_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), position(*line, *column))]
pub struct ConfigError {
    /// The file concerned.
    pub file: PathBuf,
    /// 1-based line, 0 when unknown.
    pub line: u64,
    /// 1-based column, 0 when unknown.
    pub column: u64,
    /// What is wrong and what to do.
    pub message: String,
}

fn position(line: u64, column: u64) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, 0) => format!(":{l}"),
        (l, c) => format!(":{l}:{c}"),
    }
}

impl ConfigError {
    /// An error at a location of the file.
    pub fn at(file: &Path, location: &serde_saphyr::Location, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: location.line(),
            column: location.column(),
            message: message.into(),
        }
    }

    /// An error about the whole file.
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

fn check_methods(
    path: &Path,
    at: &serde_saphyr::Location,
    methods: Option<&[String]>,
) -> Result<(), ConfigError> {
    for m in methods.unwrap_or_default() {
        if ![
            "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
        ]
        .contains(&m.to_ascii_uppercase().as_str())
        {
            return Err(ConfigError::at(
                path,
                at,
                format!("`{m}` is not an HTTP method"),
            ));
        }
    }
    Ok(())
}

impl Config {
    /// Per-user OAuth: `oauth2_user` targets need inbound authentication with a login
    /// client and a vault; a vault and `public_url` must be well formed.
    fn check_user_auth(&self, path: &Path) -> Result<(), ConfigError> {
        if let Some(url) = &self.gateway.public_url {
            let ok = url::Url::parse(&url.value).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && (u.path() == "/" || u.path().is_empty())
            }) && !url.value.ends_with("//");
            if !ok {
                return Err(ConfigError::at(
                    path,
                    &url.referenced,
                    format!(
                        "gateway.public_url `{}` must be the absolute http(s) base URL users reach this gateway at, without a path, query or fragment (e.g. https://gateway.example.com)",
                        url.value
                    ),
                ));
            }
        }
        if let Some(vault) = &self.vault {
            vault
                .value
                .validate(path, &vault.referenced, self.cache.shared.is_some())?;
        }
        for target in &self.targets {
            let Some(creds) = &target.credentials else {
                continue;
            };
            let Some(user) = &creds.value.oauth2_user else {
                continue;
            };
            let name = &target.name.value;
            user.validate(path, name)?;
            if target.openapi.is_none() {
                return Err(ConfigError::at(
                    path,
                    &creds.referenced,
                    format!(
                        "target `{name}`: credentials.oauth2_user is supported for openapi targets"
                    ),
                ));
            }
            let need = |what: &str| {
                ConfigError::at(
                    path,
                    &creds.referenced,
                    format!(
                        "target `{name}`: credentials.oauth2_user acts for the signed-in user, which needs {what}"
                    ),
                )
            };
            match &self.inbound {
                None => {
                    return Err(need(
                        "inbound authentication (an `inbound:` section): the user is the token's issuer and subject",
                    ));
                }
                Some(i) if i.login.is_none() => {
                    return Err(need(
                        "`inbound.login` (the gateway's client at the inbound issuer): the user who opens an authorization link must sign in, so that tokens are stored for the user who asked",
                    ));
                }
                Some(_) => {}
            }
            if self.vault.is_none() {
                return Err(need(
                    "a `vault:` section (where the users' tokens are kept, encrypted)",
                ));
            }
            // One user's answers must never be served to another.
            let shared = |scope: Option<crate::cache::CacheScope>| {
                scope == Some(crate::cache::CacheScope::Shared)
            };
            let target_shared = target.cache.as_ref().filter(|c| shared(c.value.scope));
            let operation_shared = target.operations.iter().find(
                |(_, o)| matches!(&o.cache, Some(CacheOverride::Settings(s)) if shared(s.scope)),
            );
            if let Some(cache) = target_shared {
                return Err(ConfigError::at(
                    path,
                    &cache.referenced,
                    format!(
                        "target `{name}`: cache.scope `shared` would serve one user's answers to another; a target with credentials.oauth2_user caches per caller (leave `scope` out or set `caller`)"
                    ),
                ));
            }
            if let Some((operation, _)) = operation_shared {
                return Err(ConfigError::at(
                    path,
                    &creds.referenced,
                    format!(
                        "target `{name}`: operations.{operation}.cache.scope `shared` would serve one user's answers to another; a target with credentials.oauth2_user caches per caller"
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Reads, interpolates, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the configuration: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let text = interpolate(text, &|name| std::env::var(name).ok()).map_err(
            |(line, column, message)| ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            },
        )?;
        let mut config: Config = serde_saphyr::from_str(&text).map_err(|e| yaml_error(path, &e))?;
        config.validate(path)?;
        // The same text as plain data, only to fingerprint its parts.
        let raw: serde_json::Value = serde_saphyr::from_str(&text).unwrap_or_default();
        config.fingerprints = Fingerprints::of(&raw);
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        if self.gateway.description_budget < MIN_DESCRIPTION_BUDGET {
            return Err(ConfigError::file(
                path,
                format!(
                    "gateway.description_budget must be at least {MIN_DESCRIPTION_BUDGET} characters (found {})",
                    self.gateway.description_budget
                ),
            ));
        }
        if let Some(inbound) = &self.inbound {
            inbound.validate(path)?;
        }
        crate::interceptors::validate(&self.interceptors, path)?;
        if let Some(shared) = &self.cache.shared {
            let at = shared.value.url_at.as_ref().unwrap_or(&shared.referenced);
            crate::cache::shared::check(&shared.value).map_err(|m| ConfigError::at(path, at, m))?;
        }
        let naming = &self.gateway.naming;
        if !(1..=128).contains(&naming.max_length) {
            return Err(ConfigError::file(
                path,
                "gateway.naming.max_length must be between 1 and 128",
            ));
        }
        let dot_ok = naming.charset == NameCharset::Mcp;
        if !naming
            .separator
            .chars()
            .all(|c| crate::catalog::is_name_char(c) && (dot_ok || c != '.'))
        {
            return Err(ConfigError::file(
                path,
                format!(
                    "gateway.naming.separator `{}` may only use A-Z a-z 0-9 _ -{}",
                    naming.separator,
                    if dot_ok {
                        " ."
                    } else {
                        " (and . with naming.charset: mcp)"
                    }
                ),
            ));
        }
        if self.gateway.max_concurrent_requests == 0 {
            return Err(ConfigError::file(
                path,
                "gateway.max_concurrent_requests must be at least 1",
            ));
        }
        self.gateway.search.validate(path, naming.charset)?;
        if let Some(limit) = &self.gateway.rate_limit {
            if limit.value.per.is_some() {
                return Err(ConfigError::at(
                    path,
                    &limit.referenced,
                    "gateway.rate_limit is always per caller (one budget per inbound identity across all tools): remove `per:` (per-target budgets go under targets[].rate_limit)",
                ));
            }
            limit
                .value
                .check("gateway.rate_limit")
                .map_err(|m| ConfigError::at(path, &limit.referenced, m))?;
        }
        if self.gateway.rate_limit_store == RateLimitStore::Shared && self.cache.shared.is_none() {
            return Err(ConfigError::file(
                path,
                "gateway.rate_limit_store: shared needs cache.shared (the Redis it shares rate limits in); configure cache.shared or use rate_limit_store: local",
            ));
        }
        self.check_user_auth(path)?;
        if self.gateway.page_size == 0 {
            return Err(ConfigError::file(
                path,
                "gateway.page_size must be at least 1",
            ));
        }
        let mut seen: Vec<&str> = Vec::new();
        for target in &self.targets {
            let name = &target.name;
            if name.value.is_empty() || !name.value.chars().all(crate::catalog::is_name_char) {
                return Err(ConfigError::at(
                    path,
                    &name.referenced,
                    format!(
                        "target name `{}` may only use A-Z a-z 0-9 _ . - and must not be empty",
                        name.value
                    ),
                ));
            }
            if seen.contains(&name.value.as_str()) {
                return Err(ConfigError::at(
                    path,
                    &name.referenced,
                    format!(
                        "two targets are called `{}`; target names must be unique",
                        name.value
                    ),
                ));
            }
            seen.push(&name.value);
            let kinds: Vec<(&str, serde_saphyr::Location)> = [
                target
                    .openapi
                    .as_ref()
                    .map(|o| ("openapi", o.spec.referenced)),
                target.lambda.as_ref().map(|l| ("lambda", l.referenced)),
                target.mcp.as_ref().map(|m| ("mcp", m.referenced)),
            ]
            .into_iter()
            .flatten()
            .collect();
            match kinds.as_slice() {
                [] => {
                    return Err(ConfigError::at(
                        path,
                        &name.referenced,
                        format!(
                            "target `{}` needs one of: an `openapi:` section (spec, base_url...), a `lambda:` section (function, tools) or an `mcp:` section (url or command)",
                            name.value
                        ),
                    ));
                }
                [_] => {}
                [(first, _), (second, at), ..] => {
                    return Err(ConfigError::at(
                        path,
                        at,
                        format!(
                            "target `{}` has both `{first}:` and `{second}:`; a target takes exactly one kind (split it in two targets)",
                            name.value
                        ),
                    ));
                }
            }
            if target.lambda.is_some() {
                crate::targets::lambda::settings::check_target(path, target)?;
            }
            crate::targets::mcp::settings::check_target(path, target)?;
            if let Some(creds) = &target.credentials {
                let c = &creds.value;
                let kinds = [
                    c.bearer.is_some(),
                    c.api_key.is_some(),
                    c.oauth2.is_some(),
                    c.passthrough,
                    c.token_exchange.is_some(),
                    c.oauth2_user.is_some(),
                ];
                let count = kinds.iter().filter(|k| **k).count();
                if count != 1 {
                    return Err(ConfigError::at(
                        path,
                        &creds.referenced,
                        format!(
                            "target `{}`: `credentials` takes exactly one of bearer, api_key, oauth2, passthrough, token_exchange or oauth2_user (found {count})",
                            name.value
                        ),
                    ));
                }
                crate::auth::outbound::validate_credentials(
                    c,
                    path,
                    &creds.referenced,
                    &name.value,
                    self.inbound.is_some(),
                )?;
            }
            let op_scopes = target.operations.values().any(|o| o.scopes.is_some());
            if (!target.scopes.is_empty() || op_scopes) && self.inbound.is_none() {
                return Err(ConfigError::at(
                    path,
                    &name.referenced,
                    format!(
                        "target `{}`: `scopes` need inbound authentication (an `inbound:` section); without it nobody's scopes are known",
                        name.value
                    ),
                ));
            }
            if let Some(cache) = &target.cache {
                let c = &cache.value;
                if c.ttl.is_zero() {
                    return Err(ConfigError::at(
                        path,
                        &cache.referenced,
                        "cache.ttl must be above zero",
                    ));
                }
                if c.max_entries.is_some() && c.max_bytes.is_some() {
                    return Err(ConfigError::at(
                        path,
                        &cache.referenced,
                        "cache takes max_entries or max_bytes, not both",
                    ));
                }
                check_methods(path, &cache.referenced, c.methods.as_deref())?;
            }
            for (op, settings) in &target.operations {
                if let Some(CacheOverride::Settings(o)) = &settings.cache {
                    check_methods(path, &name.referenced, o.methods.as_deref())?;
                    if target.cache.is_none() && o.ttl.is_none() {
                        return Err(ConfigError::at(
                            path,
                            &name.referenced,
                            format!(
                                "target `{}`: operations.{op}.cache needs a ttl (the target has no cache settings)",
                                name.value
                            ),
                        ));
                    }
                }
            }
            if let Some(limit) = &target.rate_limit {
                limit
                    .value
                    .check(&format!("target `{}`: rate_limit", name.value))
                    .map_err(|m| ConfigError::at(path, &limit.referenced, m))?;
            }
            for (op, settings) in &target.operations {
                if let Some(limit) = &settings.rate_limit {
                    limit
                        .value
                        .check(&format!(
                            "target `{}`: operations.{op}.rate_limit",
                            name.value
                        ))
                        .map_err(|m| ConfigError::at(path, &limit.referenced, m))?;
                }
            }
            if target.timeout.is_zero() {
                return Err(ConfigError::at(
                    path,
                    &name.referenced,
                    format!("target `{}`: timeout must be above zero", name.value),
                ));
            }
            if let Some(openapi) = &target.openapi {
                for filter in [&openapi.include, &openapi.exclude].into_iter().flatten() {
                    for glob in &filter.paths {
                        if let Err(reason) = crate::openapi::path_globs([glob.value.as_str()]) {
                            return Err(ConfigError::at(path, &glob.referenced, reason));
                        }
                    }
                }
                if let Some(budget) = openapi.description_budget
                    && budget < MIN_DESCRIPTION_BUDGET
                {
                    return Err(ConfigError::at(
                        path,
                        &openapi.spec.referenced,
                        format!(
                            "target `{}`: description_budget must be at least {MIN_DESCRIPTION_BUDGET} characters (found {budget})",
                            name.value
                        ),
                    ));
                }
            }
            for (op, settings) in &target.operations {
                if let Some(content_type) = &settings.content_type
                    && !content_type.contains('/')
                {
                    return Err(ConfigError::at(
                        path,
                        &name.referenced,
                        format!(
                            "target `{}`: operations.{op}.content_type `{content_type}` is not a media type (e.g. multipart/form-data)",
                            name.value
                        ),
                    ));
                }
            }
            if let Some(openapi) = &target.openapi
                && let Some(allow) = &openapi.allow_remote_refs
                && let AllowRemoteRefs::Prefixes(list) = &allow.value
            {
                for prefix in list {
                    crate::openapi::RemoteRefs::parse_prefix(prefix).map_err(|e| {
                        ConfigError::at(
                            path,
                            &allow.referenced,
                            format!("target `{}`: allow_remote_refs: {e}", name.value),
                        )
                    })?;
                }
            }
            if let Some(openapi) = &target.openapi
                && let Some(base) = &openapi.base_url
            {
                match url::Url::parse(&base.value) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        if u.query().is_some() || u.fragment().is_some() {
                            return Err(ConfigError::at(
                                path,
                                &base.referenced,
                                "base_url must not have a query string or fragment",
                            ));
                        }
                    }
                    _ => {
                        return Err(ConfigError::at(
                            path,
                            &base.referenced,
                            format!(
                                "base_url `{}` is not an absolute http(s) URL (e.g. http://127.0.0.1:8081/v1)",
                                base.value
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Resolves a path written in the config relative to the config file's folder.
    pub fn resolve(config_file: &Path, relative: &Path) -> PathBuf {
        if relative.is_absolute() {
            relative.to_path_buf()
        } else {
            config_file
                .parent()
                .unwrap_or(Path::new("."))
                .join(relative)
        }
    }

    /// Warnings about settings that work but deserve attention.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.listen.ip().is_loopback() && self.inbound.is_none() {
            out.push(format!(
                "listening on {} without inbound authentication: anyone who can reach this address can call every tool",
                self.listen
            ));
        }
        if self.inbound.is_none() {
            let per_caller = |l: &Option<Spanned<RateLimitConfig>>| {
                l.as_ref()
                    .is_some_and(|l| l.value.per == Some(RateLimitPer::Caller))
            };
            if self.gateway.rate_limit.is_some() {
                out.push("gateway.rate_limit is per caller, but without inbound authentication every caller is anonymous: they all share one budget".into());
            }
            for t in &self.targets {
                if per_caller(&t.rate_limit)
                    || t.operations.values().any(|o| per_caller(&o.rate_limit))
                {
                    out.push(format!(
                        "target `{}`: rate_limit per: caller without inbound authentication: every caller is anonymous and they all share one budget",
                        t.name.value
                    ));
                }
            }
        }
        out
    }
}

/// Turns a YAML/serde error into a located one, adding a "did you mean" for unknown keys.
fn yaml_error(path: &Path, e: &serde_saphyr::Error) -> ConfigError {
    let location = e.location();
    let mut message = e.to_string();
    // serde-saphyr renders a multi-line snippet; keep the first line, the location is ours.
    if let Some(first) = message.lines().next() {
        message = first.trim().to_string();
    }
    message = strip_prefix_location(&message).to_string();
    if message.contains("socket address") {
        message.push_str(" (expected host:port, e.g. 127.0.0.1:8000 or 0.0.0.0:8000)");
    }
    if let Some(suggestion) = suggest_field(&message) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    match location {
        Some(loc) => ConfigError::at(path, &loc, message),
        None => ConfigError::file(path, message),
    }
}

/// For an "unknown field `x`, expected one of a, b" message: the expected field closest to
/// `x`, if any is close.
fn suggest_field(message: &str) -> Option<&str> {
    let rest = message.split("unknown field `").nth(1)?;
    let field = rest.split('`').next()?;
    let expected = rest.split_once("expected ")?.1;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    expected
        .split(", ")
        .map(|k| k.trim().trim_matches('`'))
        .map(|k| (strsim::jaro_winkler(field, k), k))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Drops serde-saphyr's own `error: line N column M: ` prefix (we print the location).
fn strip_prefix_location(message: &str) -> &str {
    let m = message.strip_prefix("error: ").unwrap_or(message);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest
            .split(": ")
            .next()
            .is_some_and(|loc| loc.contains(" column "))
    {
        return after;
    }
    m
}

/// Expands `${VAR}` and `${VAR:-default}` in configuration text; `$${` is a literal `${`.
/// A value that is not plain YAML-safe text is inserted as a quoted YAML string, so that an
/// environment value can never change the structure of the file. Errors carry the
/// 1-based line and column of the placeholder.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (u64, u64, String)> {
    let mut out = String::with_capacity(text.len());
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 0usize;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                col += pos + 2;
                continue;
            }
            out.push_str(&rest[..pos]);
            let at = (line_no as u64 + 1, (col + pos) as u64 + 1);
            let Some(end) = rest[pos..].find('}') else {
                return Err((
                    at.0,
                    at.1,
                    "unclosed `${`: write ${NAME} or ${NAME:-default} (or $${ for a literal)"
                        .into(),
                ));
            };
            let inner = &rest[pos + 2..pos + end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err((
                    at.0,
                    at.1,
                    format!(
                        "`${{{inner}}}` is not a valid variable reference: names use A-Z, 0-9 and _"
                    ),
                ));
            }
            let value = match (lookup(name), default) {
                (Some(v), _) => v,
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    return Err((
                        at.0,
                        at.1,
                        format!(
                            "environment variable {name} is not set (set it, or write ${{{name}:-default}})"
                        ),
                    ));
                }
            };
            let before = &line[..line.len() - rest.len() + pos];
            push_yaml_safe(&mut out, &value, before);
            rest = &rest[pos + end + 1..];
            col += pos + end + 1;
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Appends `value` so that it stays one scalar whatever it contains: inside a double-quoted
/// string it is escaped; inside a single-quoted one quotes are doubled; elsewhere plain-safe
/// text goes as is and anything else as a double-quoted string.
fn push_yaml_safe(out: &mut String, value: &str, line_before: &str) {
    let (mut in_double, mut in_single, mut escaped) = (false, false, false);
    for c in line_before.chars() {
        match c {
            '\\' if in_double && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !in_single && !escaped => in_double = !in_double,
            '\'' if !in_double => in_single = !in_single,
            _ => {}
        }
        escaped = false;
    }
    if in_double {
        let quoted = serde_json::to_string(value).unwrap_or_default();
        out.push_str(&quoted[1..quoted.len() - 1]);
    } else if in_single {
        out.push_str(&value.replace('\'', "''"));
    } else if !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@+=~,%".contains(c))
        && !value.contains(": ")
        && !value.starts_with(['-', ':', '@', '%', ','])
    {
        out.push_str(value);
    } else {
        out.push_str(&serde_json::to_string(value).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc.def".into()),
            "TRICKY" => Some("a: b # c\n- d".into()),
            "QUOTE" => Some("it's \"x\"".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolation_expands_and_defaults() {
        let out = interpolate("a: ${TOKEN}\nb: ${MISSING:-dflt}\nc: $${LIT}\n", &env).unwrap();
        assert_eq!(out, "a: abc.def\nb: dflt\nc: ${LIT}\n");
    }

    #[test]
    fn interpolation_keeps_structure_for_hostile_values() {
        #[derive(Deserialize)]
        struct T {
            a: String,
            b: String,
            c: String,
        }
        let text = interpolate("a: ${TRICKY}\nb: \"x ${QUOTE}\"\nc: 'y ${QUOTE}'\n", &env).unwrap();
        let t: T = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(t.a, "a: b # c\n- d");
        assert_eq!(t.b, "x it's \"x\"");
        assert_eq!(t.c, "y it's \"x\"");
    }

    #[test]
    fn missing_variable_is_located() {
        let err = interpolate("x: 1\ny: ${NOPE}\n", &env).unwrap_err();
        assert_eq!((err.0, err.1), (2, 4));
        assert!(err.2.contains("NOPE"), "{}", err.2);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert!(parse_size("4 lightyears").is_err());
    }

    #[test]
    fn unknown_key_is_located_with_suggestion() {
        let err = Config::parse(
            "listen: 127.0.0.1:8000\ngateway:\n  nmae: x\n",
            Path::new("gw.yaml"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("gw.yaml:3:"), "{msg}");
        assert!(msg.contains("did you mean `name`"), "{msg}");
    }

    #[test]
    fn wrong_type_is_located() {
        let err = Config::parse(
            "targets:\n  - name: a\n    timeout: soon\n    openapi: {spec: x.yaml}\n",
            Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("duration"), "{err}");
    }

    #[test]
    fn duplicate_targets_and_two_credentials_are_rejected() {
        let dup = "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n  - name: a\n    openapi: {spec: y.yaml}\n";
        let err = Config::parse(dup, Path::new("gw.yaml")).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        let two = "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    credentials:\n      bearer: t\n      api_key: {in: header, name: X, value: v}\n";
        let err = Config::parse(two, Path::new("gw.yaml")).unwrap_err();
        assert!(err.message.contains("exactly one"), "{err}");
    }

    #[test]
    fn selection_budget_and_content_type_mistakes_are_located() {
        let err = Config::parse(
            "targets:\n  - name: a\n    openapi:\n      spec: x.yaml\n      include: {paths: [\"/ok/*\", \"/pets/[a\"]}\n",
            Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (5, 34), "{err}");
        assert!(err.message.contains("path glob `/pets/[a`"), "{err}");
        let err = Config::parse(
            "targets:\n  - name: a\n    openapi: {spec: x.yaml, description_budget: 10}\n",
            Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("description_budget must be at least 100"),
            "{err}"
        );
        let err =
            Config::parse("gateway: {description_budget: 5}\n", Path::new("gw.yaml")).unwrap_err();
        assert!(err.message.contains("gateway.description_budget"), "{err}");
        let err = Config::parse(
            "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    operations: {up: {content_type: multipart}}\n",
            Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("operations.up.content_type `multipart` is not a media type"),
            "{err}"
        );
        let ok = Config::parse(
            "targets:\n  - name: a\n    openapi:\n      spec: x.yaml\n      include_deprecated: true\n      exclude: {paths: [\"/admin/**\"]}\n",
            Path::new("gw.yaml"),
        )
        .expect("valid");
        let openapi = ok.targets[0].openapi.as_ref().unwrap();
        assert!(openapi.include_deprecated);
        assert_eq!(
            openapi.exclude.as_ref().unwrap().paths[0].value,
            "/admin/**"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let cfg = Config::parse(
            "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    credentials: {bearer: hunter2}\n",
            Path::new("gw.yaml"),
        )
        .unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn rate_limit_mistakes_are_located() {
        let parse = |text: &str| Config::parse(text, Path::new("gw.yaml"));
        let target = |limit: &str| {
            format!(
                "targets:\n  - name: a\n    openapi: {{spec: x.yaml}}\n    rate_limit: {limit}\n"
            )
        };
        let ok = parse(&target(
            "{requests_per_second: 0.5, concurrent: 2, per: caller}",
        ))
        .unwrap();
        let limit = &ok.targets[0].rate_limit.as_ref().unwrap().value;
        assert_eq!(limit.requests_per_second, Some(0.5));
        assert_eq!(limit.per, Some(RateLimitPer::Caller));
        assert!(
            ok.warnings()
                .iter()
                .any(|w| w.contains("per: caller without inbound")),
            "{:?}",
            ok.warnings()
        );
        for (limit, expected) in [
            (
                "{requests_per_second: 0}",
                "requests_per_second must be a number above 0",
            ),
            (
                "{requests_per_second: -1}",
                "requests_per_second must be a number above 0",
            ),
            (
                "{requests_per_second: .inf}",
                "requests_per_second must be a number above 0",
            ),
            (
                "{requests_per_second: 1, burst: 0}",
                "burst must be at least 1",
            ),
            ("{concurrent: 0}", "concurrent must be at least 1"),
            ("{burst: 5}", "burst needs requests_per_second"),
            (
                "{per: caller}",
                "needs requests_per_second, concurrent or both",
            ),
        ] {
            let err = parse(&target(limit)).unwrap_err();
            assert_eq!(err.line, 4, "{limit}: {err}");
            assert!(err.message.contains(expected), "{limit}: {err}");
            assert!(err.message.contains("target `a`: rate_limit"), "{err}");
        }
        let err = parse(&target("{requests_per_second: 1, per: everyone}")).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        let err = parse(&target("{request_per_second: 1}")).unwrap_err();
        assert!(
            err.message.contains("did you mean `requests_per_second`"),
            "{err}"
        );
        let err = parse(
            "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    operations:\n      listPets:\n        rate_limit: {concurrent: 0}\n",
        )
        .unwrap_err();
        assert_eq!(err.line, 6, "{err}");
        assert!(
            err.message.contains(
                "target `a`: operations.listPets.rate_limit.concurrent must be at least 1"
            ),
            "{err}"
        );
        let err =
            parse("gateway:\n  rate_limit: {requests_per_second: 1, per: caller}\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("always per caller"), "{err}");
        let err = parse("gateway:\n  rate_limit: {burst: 2}\n").unwrap_err();
        assert!(
            err.message.contains("gateway.rate_limit.burst needs"),
            "{err}"
        );
        parse("gateway:\n  rate_limit: {requests_per_second: 100, burst: 200, concurrent: 10}\n")
            .unwrap();
    }

    #[test]
    fn allow_remote_refs_takes_a_bool_or_url_prefixes() {
        use crate::openapi::RemoteRefs;
        let policy = |value: &str| {
            let text = format!(
                "targets:\n  - name: a\n    openapi:\n      spec: x.yaml\n      allow_remote_refs: {value}\n"
            );
            Config::parse(&text, Path::new("gw.yaml"))
                .map(|c| c.targets[0].openapi.as_ref().unwrap().remote_refs())
        };
        let absent = Config::parse(
            "targets:\n  - name: a\n    openapi: {spec: x.yaml}\n",
            Path::new("gw.yaml"),
        )
        .unwrap();
        assert_eq!(
            absent.targets[0].openapi.as_ref().unwrap().remote_refs(),
            RemoteRefs::Refused
        );
        assert_eq!(policy("false").unwrap(), RemoteRefs::Refused);
        assert_eq!(policy("true").unwrap(), RemoteRefs::Any);
        assert_eq!(
            policy("[\"https://schemas.example.com/v1/\"]").unwrap(),
            RemoteRefs::Prefixes(vec![
                url::Url::parse("https://schemas.example.com/v1/").unwrap()
            ])
        );
        let err = policy("[\"file:///schemas/\"]").unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        assert!(err.message.contains("allow_remote_refs"), "{err}");
        assert!(err.message.contains("http"), "{err}");
        let err = policy("yes please").unwrap_err();
        assert_eq!(err.line, 5, "{err}");
        assert!(err.message.contains("list of URL prefixes"), "{err}");
    }
}
