//! Load time: from `gateway.yaml` to a ready [`Catalog`]. Each target is loaded by its kind
//! ([`crate::targets::load`]); what is common to every kind (overrides, naming, policy,
//! cache, metrics, compiled validators) is applied here, once. A reload passes the previous
//! [`Loaded`]: a target whose section, shared settings and input files are unchanged keeps
//! its tools as they are (same validators, caches and credentials). Nothing here runs on
//! the request path.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::shared::SharedTier;
use crate::cache::{CacheBound, CacheScope, ResponseCache};
use crate::catalog::{
    Catalog, Naming, Tool, ToolCache, ToolPolicy, ToolRateLimits, ToolSettings, ToolSpec,
};
use crate::config::{CacheOverride, Config, ConfigError, PrefixMode, TargetConfig};
use crate::metrics::Metrics;
use crate::openapi::{self, Skipped};
use crate::ratelimit::{Limiter, Scope};
use crate::targets::{self, Binding, LoadContext};

/// A loaded configuration: the catalog, what was noticed on the way, and what a reload
/// can reuse.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The file it came from.
    pub config_file: PathBuf,
    /// Every tool.
    pub catalog: Arc<Catalog>,
    /// Per target: name, document, tools made, operations skipped.
    pub targets: Vec<TargetSummary>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
    /// The metrics registry the tools are bound to (one per process, across reloads).
    pub metrics: Arc<Metrics>,
    /// Per target, what it was built from and what it made.
    builds: Vec<TargetBuild>,
    /// Notified when an upstream's tools changed (the reloader listens); the same across
    /// reloads.
    pub changes: Arc<tokio::sync::Notify>,
    /// The response cache's shared tier (`cache.shared`), made by the first load and kept
    /// by every reload (a change of its settings needs a restart).
    pub shared_cache: Option<Arc<SharedTier>>,
    /// The keys of signed session ids, when `gateway.session` has one.
    pub sessions: Option<Arc<crate::mcp::session::SessionKeys>>,
    /// `gateway.rate_limit`'s budgets (kept by a reload that leaves the section unchanged).
    pub rate_limit: Option<Arc<Limiter>>,
    /// `policy:`, parsed again by every (re)load.
    pub policy: Option<Arc<crate::policy::Policies>>,
    /// Per-user OAuth (vault, login client, targets), when a target uses it.
    pub user_auth: Option<Arc<crate::auth::user_oauth::UserAuth>>,
}

/// What one target contributed.
#[derive(Debug, Clone)]
pub struct TargetSummary {
    /// Target name.
    pub name: String,
    /// The document it was built from.
    pub spec: PathBuf,
    /// Tools made.
    pub tools: usize,
    /// Operations left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// Whether a reload kept this target's tools as they were.
    pub reused: bool,
}

/// One target's tools and what they were made from, for a reload to compare.
struct TargetBuild {
    name: String,
    /// The target's section and the shared settings (config fingerprints).
    config: (u64, u64),
    /// The local files the tools depend on, with a hash of their content (`None`:
    /// unreadable).
    inputs: Vec<(PathBuf, Option<u64>)>,
    /// Built from something that cannot be compared (remote `$ref`s).
    volatile: bool,
    /// The upstream's revision the tools were made from (MCP targets).
    revision: Option<u64>,
    /// Names were made unique against other targets' tools.
    collided: bool,
    tools: Vec<Arc<Tool>>,
    summary: TargetSummary,
    warnings: Vec<String>,
    /// What the kind keeps alive for the next load (an MCP upstream).
    state: Option<Arc<dyn crate::targets::TargetState>>,
    /// An MCP server's prompts, resources and templates.
    offerings: crate::catalog::Offerings,
}

impl std::fmt::Debug for TargetBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetBuild")
            .field("name", &self.name)
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

/// Why a configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `gateway.yaml` itself is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A target's document is unusable.
    #[error("target `{target}`: {error}")]
    Spec {
        /// The target.
        target: String,
        /// What is wrong with its document.
        error: openapi::SpecError,
    },
    /// A target's settings or credentials cannot be used.
    #[error("target `{target}`: {message}")]
    Target {
        /// The target.
        target: String,
        /// What is wrong.
        message: String,
    },
}

/// The naming rules of a configuration.
pub fn naming(config: &Config) -> Naming {
    let n = &config.gateway.naming;
    Naming {
        separator: n.separator.clone(),
        prefix: n.prefix == PrefixMode::Always,
        max_length: n.max_length,
        allow_dot: n.charset == crate::config::NameCharset::Mcp,
    }
}

/// Loads `gateway.yaml` at `path` and everything it names, with a registry of its own.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with(path, &Arc::new(Metrics::new()), None)
}

/// Loads `gateway.yaml` at `path`, binding tools to `metrics`; with `previous`, targets
/// whose inputs did not change keep their tools. Counts the outcome in
/// `toolgate_config_loads_total`.
pub fn load_with(
    path: &Path,
    metrics: &Arc<Metrics>,
    previous: Option<&Loaded>,
) -> Result<Loaded, LoadError> {
    let result = build(path, metrics, previous);
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics.config_loads.with_label_values(&[outcome]).inc();
    result
}

fn build(
    path: &Path,
    metrics: &Arc<Metrics>,
    previous: Option<&Loaded>,
) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let mut warnings = config.warnings();
    let sessions = config
        .gateway
        .session
        .keys(path)
        .map_err(LoadError::Config)?
        .map(Arc::new);
    let naming = naming(&config);
    let lambda_clients = targets::lambda::Clients::build(&config, path)?;
    let changes = previous.map(|p| p.changes.clone()).unwrap_or_default();
    let shared_cache = match previous {
        Some(p) => p.shared_cache.clone(),
        None => match &config.cache.shared {
            Some(settings) => {
                // Nothing is contacted here (`check` and `tools` load too): serving connects.
                let tier = SharedTier::new(&settings.value).map_err(|m| {
                    LoadError::Config(ConfigError::at(path, &settings.referenced, m))
                })?;
                Some(tier)
            }
            None => None,
        },
    };
    let ctx = LoadContext {
        config_file: path,
        config: &config,
        metrics,
        lambda_clients: &lambda_clients,
        changes: &changes,
        shared_cache: shared_cache.as_ref(),
    };
    let inbound = config.inbound.is_some();
    let mut used: HashSet<Arc<str>> = HashSet::new();
    let mut builds = Vec::with_capacity(config.targets.len());
    for (i, target) in config.targets.iter().enumerate() {
        let fingerprint = (
            config.fingerprints.targets.get(i).copied().unwrap_or(0),
            config.fingerprints.tools,
        );
        let before = previous.and_then(|p| p.builds.iter().find(|b| b.name == target.name.value));
        let build = match before.filter(|b| b.reusable(fingerprint, &used)) {
            Some(old) => old.reuse(&mut used),
            None => {
                // A kind's state (an upstream connection) outlives a rebuild of the same,
                // unchanged section.
                let state = before
                    .filter(|b| b.config == fingerprint)
                    .and_then(|b| b.state.as_ref());
                build_target(
                    &ctx,
                    target,
                    fingerprint,
                    &naming,
                    inbound,
                    &mut used,
                    state,
                )?
            }
        };
        warnings.extend(build.warnings.iter().cloned());
        builds.push(build);
    }
    let tools: Vec<Arc<Tool>> = builds
        .iter()
        .flat_map(|b| b.tools.iter().cloned())
        .collect();
    let mut offerings = crate::catalog::Offerings::default();
    for b in &builds {
        offerings
            .prompts
            .extend(b.offerings.prompts.iter().cloned());
        offerings
            .resources
            .extend(b.offerings.resources.iter().cloned());
        offerings
            .templates
            .extend(b.offerings.templates.iter().cloned());
        offerings
            .dynamic
            .extend(b.offerings.dynamic.iter().cloned());
    }
    let mut catalog = Catalog::from_tools(tools).with_offerings(offerings);
    let search = &config.gateway.search;
    if search.enabled {
        if let Some(tool) = catalog.get(&search.tool_name) {
            return Err(LoadError::Config(ConfigError::file(
                path,
                format!(
                    "gateway.search.tool_name `{}` is also the name of a tool of target `{}`; choose another name for the search tool",
                    search.tool_name, tool.target
                ),
            )));
        }
        let previous_search = previous.and_then(|p| p.catalog.search()).map(|s| &**s);
        let (built, report) =
            crate::search::ToolSearch::build(search, path, catalog.tools(), previous_search)
                .map_err(|e| LoadError::Config(ConfigError::file(path, e)))?;
        tracing::info!(
            tools = report.tools,
            dense = report.dense,
            seconds = report.seconds,
            "search index built"
        );
        for pattern in &report.unmatched_pins {
            warnings.push(format!(
                "gateway.search.pinned: `{pattern}` matches no tool"
            ));
        }
        catalog = catalog.with_search(Arc::new(built));
    }
    let rate_limit = config.gateway.rate_limit.as_ref().map(|section| {
        let unchanged = previous.filter(|p| {
            p.config.gateway.rate_limit.as_ref().map(|s| &s.value) == Some(&section.value)
        });
        match unchanged.and_then(|p| p.rate_limit.clone()) {
            Some(kept) => kept,
            None => Arc::new(Limiter::new(&section.value, Scope::Gateway)),
        }
    });
    let policy = match &config.policy {
        Some(section) => Some(Arc::new(
            crate::policy::Policies::load(path, section).map_err(LoadError::Config)?,
        )),
        None => None,
    };
    let user_auth = user_auth(&config, path, &catalog, shared_cache.as_ref(), metrics)?;
    Ok(Loaded {
        user_auth,
        policy,
        rate_limit,
        targets: builds.iter().map(|b| b.summary.clone()).collect(),
        catalog: Arc::new(catalog),
        config,
        config_file: path.to_path_buf(),
        warnings,
        metrics: metrics.clone(),
        builds,
        changes,
        shared_cache,
        sessions,
    })
}

/// Per-user OAuth's run-time part, when some tool's target acts for the user: the vault
/// (its key read now) and the login client (its secret read now).
fn user_auth(
    config: &Config,
    path: &Path,
    catalog: &Catalog,
    shared: Option<&Arc<SharedTier>>,
    metrics: &Arc<Metrics>,
) -> Result<Option<Arc<crate::auth::user_oauth::UserAuth>>, LoadError> {
    let mut targets = std::collections::HashMap::new();
    for tool in catalog.tools() {
        if let Some(oauth) = tool.binding.user_oauth() {
            targets
                .entry(tool.target.clone())
                .or_insert_with(|| oauth.clone());
        }
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let fail = |at: Option<&serde_saphyr::Location>, m: String| {
        LoadError::Config(match at {
            Some(at) => ConfigError::at(path, at, m),
            None => ConfigError::file(path, m),
        })
    };
    // `Config::check_user_auth` made sure oauth2_user comes with both.
    let (Some(vault), Some(inbound)) = (&config.vault, &config.inbound) else {
        return Err(fail(
            None,
            "credentials.oauth2_user needs `vault:` and `inbound.login`".into(),
        ));
    };
    let Some(login) = &inbound.login else {
        return Err(fail(
            None,
            "credentials.oauth2_user needs `inbound.login`".into(),
        ));
    };
    let store = crate::auth::vault::Vault::from_config(&vault.value, path, shared)
        .map_err(|m| fail(Some(&vault.referenced), format!("vault: {m}")))?;
    let discovery = inbound
        .jwt
        .value
        .discovery_url
        .as_ref()
        .map(|d| d.value.as_str());
    let login = crate::auth::user_oauth::Login::new(&login.value, discovery, path, metrics.clone())
        .map_err(|m| fail(Some(&login.referenced), m))?;
    Ok(Some(Arc::new(crate::auth::user_oauth::UserAuth {
        vault: store,
        login,
        targets,
    })))
}

/// A hash of a file's content; `None` when it cannot be read.
fn content_hash(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}

impl TargetBuild {
    /// Whether this build can serve again: same config, same input files, and names that
    /// do not depend on (or collide with) other targets.
    fn reusable(&self, config: (u64, u64), used: &HashSet<Arc<str>>) -> bool {
        self.config == config
            && !self.volatile
            && self
                .revision
                .is_none_or(|r| self.state.as_ref().and_then(|s| s.revision()) == Some(r))
            && !self.collided
            && self.inputs.iter().all(|(p, h)| content_hash(p) == *h)
            && !self.tools.iter().any(|t| used.contains(&t.name))
    }

    /// The same tools, claiming their names.
    fn reuse(&self, used: &mut HashSet<Arc<str>>) -> TargetBuild {
        used.extend(self.tools.iter().map(|t| t.name.clone()));
        TargetBuild {
            name: self.name.clone(),
            config: self.config,
            inputs: self.inputs.clone(),
            volatile: false,
            revision: self.revision,
            collided: false,
            tools: self.tools.clone(),
            summary: TargetSummary {
                reused: true,
                ..self.summary.clone()
            },
            warnings: self.warnings.clone(),
            state: self.state.clone(),
            offerings: crate::catalog::Offerings {
                prompts: self.offerings.prompts.clone(),
                resources: self.offerings.resources.clone(),
                templates: self.offerings.templates.clone(),
                dynamic: self.offerings.dynamic.clone(),
            },
        }
    }
}

/// Loads one target by its kind and builds its tools.
fn build_target(
    ctx: &LoadContext<'_>,
    target: &TargetConfig,
    config: (u64, u64),
    naming: &Naming,
    inbound: bool,
    used: &mut HashSet<Arc<str>>,
    previous: Option<&Arc<dyn crate::targets::TargetState>>,
) -> Result<TargetBuild, LoadError> {
    let name = &target.name.value;
    // Inputs are known once loaded; a file edited during the load itself may be seen as
    // unchanged by the next reload until it changes again.
    let mut loaded = targets::load(ctx, target, previous)?;
    let inputs = loaded
        .inputs
        .iter()
        .map(|p| (p.clone(), content_hash(p)))
        .collect();
    let mut warnings = std::mem::take(&mut loaded.warnings);
    for spec in &mut loaded.specs {
        let declared = target
            .operations
            .get(&spec.name)
            .and_then(|o| o.output_schema)
            .unwrap_or(target.output_schemas);
        if !declared {
            spec.output_schema = None;
        }
    }
    apply_overrides(target, &mut loaded.specs, &mut warnings).map_err(|message| {
        LoadError::Target {
            target: name.clone(),
            message,
        }
    })?;
    let made = loaded.specs.len();
    let settings = tool_settings(target, inbound, ctx.metrics, ctx.shared_cache);
    let built = crate::catalog::build_tools(
        &Arc::from(name.as_str()),
        loaded.specs,
        naming,
        used,
        ctx.metrics,
        &settings,
    );
    let mut skipped = loaded.skipped;
    skipped.extend(built.errors.iter().map(|e| Skipped {
        operation: e.source_op.clone(),
        reason: e.reason.clone(),
    }));
    Ok(TargetBuild {
        name: name.clone(),
        config,
        inputs,
        volatile: loaded.volatile,
        revision: loaded.revision,
        collided: built.collided,
        summary: TargetSummary {
            name: name.clone(),
            spec: loaded.document,
            tools: made - built.errors.len(),
            skipped,
            reused: false,
        },
        tools: built.tools,
        offerings: loaded
            .offered
            .map(|(offered, source)| offerings(target, naming, offered, source))
            .unwrap_or_default(),
        warnings,
        state: loaded.state,
    })
}

/// An MCP server's prompts, resources and templates as the catalog serves them: prompts
/// named like tools, URIs under `toolgate://<target>/`, each with the target's scopes.
fn offerings(
    target: &TargetConfig,
    naming: &Naming,
    offered: crate::targets::mcp::Offered,
    source: Arc<crate::targets::mcp::McpUpstream>,
) -> crate::catalog::Offerings {
    use crate::catalog::{Offering, gateway_uri};
    let name: Arc<str> = target.name.value.as_str().into();
    let policy = ToolPolicy {
        scopes: target.scopes.clone().into_boxed_slice(),
    };
    let make = |mut item: serde_json::Value, member: &str, key: String| -> Option<Arc<Offering>> {
        let upstream_key = item.get(member)?.as_str()?.to_string();
        item[member] = serde_json::Value::String(key.clone());
        Some(Arc::new(Offering {
            key: key.into(),
            definition: serde_json::value::to_raw_value(&item).ok()?,
            upstream_key: upstream_key.into(),
            target: name.clone(),
            source: source.clone(),
            policy: policy.clone(),
        }))
    };
    let mut used = HashSet::new();
    let prompts = offered
        .prompts
        .into_iter()
        .filter_map(|p| {
            let local = p.get("name")?.as_str()?.to_string();
            let key = naming.unique(naming.full_name(&name, &local), &used);
            used.insert(Arc::from(key.as_str()));
            make(p, "name", key)
        })
        .collect();
    let resources = offered
        .resources
        .into_iter()
        .filter_map(|r| {
            let key = gateway_uri(&name, r.get("uri")?.as_str()?);
            make(r, "uri", key)
        })
        .collect();
    let templates = offered
        .templates
        .into_iter()
        .filter_map(|t| {
            let key = gateway_uri(&name, t.get("uriTemplate")?.as_str()?);
            make(t, "uriTemplate", key)
        })
        .collect();
    crate::catalog::Offerings {
        prompts,
        resources,
        templates,
        dynamic: offered.dynamic.map(|h| (source, h)).into_iter().collect(),
    }
}

/// Applies `operations.<key>.{rename, description}` to a target's tools (keys are
/// operationIds, `<method>_<path>` names, or Lambda tool names), and warns about entries
/// that match no tool (a typo would otherwise silently do nothing). The cache and scope
/// settings keep matching the original key.
fn apply_overrides<B>(
    target: &TargetConfig,
    tools: &mut [ToolSpec<B>],
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let name = &target.name.value;
    for key in target.operations.keys() {
        if !tools.iter().any(|t| t.name == *key) {
            warnings.push(format!(
                "target `{name}`: operations.{key} matches no operation (keys are operationIds, or <method>_<path> without one)"
            ));
        }
    }
    for tool in tools.iter_mut() {
        let Some(over) = target.operations.get(&tool.name) else {
            continue;
        };
        if let Some(description) = &over.description {
            tool.description = description.clone();
        }
        if let Some(rename) = &over.rename {
            if rename.is_empty() || !rename.chars().all(crate::catalog::is_name_char) {
                return Err(format!(
                    "operations.{}.rename: `{rename}` may only use A-Z a-z 0-9 _ . - and must not be empty",
                    tool.name
                ));
            }
            tool.source = format!("{} (renamed {rename})", tool.source);
            tool.rename = Some(rename.clone());
        }
    }
    let mut seen = HashSet::new();
    for tool in tools.iter() {
        let local = tool.rename.as_deref().unwrap_or(&tool.name);
        if tool.rename.is_some() && !seen.insert(local.to_string()) {
            return Err(format!("operations: two tools would be renamed `{local}`"));
        }
    }
    for tool in tools.iter() {
        if let Some(r) = &tool.rename
            && tools
                .iter()
                .any(|other| other.rename.is_none() && other.name == *r)
        {
            return Err(format!(
                "operations.{}.rename: `{r}` is already the name of another operation",
                tool.name
            ));
        }
    }
    Ok(())
}

/// Default size bound of a target's cache.
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Decides, per tool of `target` and for every kind alike, its policy (the scopes of
/// `operations.<key>.scopes`, else the target's `scopes`) and whether and how its answers
/// are cached (the target's `cache`, then `operations.<key>.cache`). Only the configured
/// methods are cached (GET and HEAD by default); a tool without a method (Lambda) is
/// cached whenever its config says so. One moka cache serves all tools of a target, with
/// the shared tier behind it when there is one.
fn tool_settings<'a>(
    target: &'a TargetConfig,
    inbound_auth: bool,
    metrics: &Metrics,
    shared_tier: Option<&Arc<SharedTier>>,
) -> impl Fn(&ToolSpec<Binding>) -> ToolSettings + 'a {
    let base = target.cache.as_ref().map(|c| &c.value);
    let any_override = target.operations.values().any(|o| {
        matches!(
            o.cache,
            Some(CacheOverride::Settings(_)) | Some(CacheOverride::Enabled(true))
        )
    });
    let shared = (base.is_some() || any_override).then(|| {
        let bound = match base {
            Some(c) => match (c.max_entries, c.max_bytes) {
                (Some(n), _) => CacheBound::Entries(n),
                (None, Some(b)) => CacheBound::Bytes(b.0 as u64),
                (None, None) => CacheBound::Bytes(DEFAULT_CACHE_BYTES),
            },
            None => CacheBound::Bytes(DEFAULT_CACHE_BYTES),
        };
        let cache = ResponseCache::new(&target.name.value, bound, metrics);
        match shared_tier {
            Some(tier) => cache.with_shared(tier, &target.name.value, metrics),
            None => cache,
        }
    });
    // One budget for the target's tools together, shared by each of them.
    let target_limit = target
        .rate_limit
        .as_ref()
        .map(|l| Arc::new(Limiter::new(&l.value, Scope::Target).named(&target.name.value, "")));
    let default_scope = if inbound_auth {
        CacheScope::Caller
    } else {
        CacheScope::Shared
    };
    let cache_for = move |name: &str, method: Option<&str>| -> Option<ToolCache> {
        let cache = shared.clone()?;
        let over = target.operations.get(name).and_then(|o| o.cache.as_ref());
        let settings = match over {
            Some(CacheOverride::Enabled(false)) => return None,
            Some(CacheOverride::Settings(s)) => Some(s),
            _ => None,
        };
        if base.is_none()
            && settings.is_none()
            && !matches!(over, Some(CacheOverride::Enabled(true)))
        {
            return None;
        }
        let ttl = settings.and_then(|s| s.ttl).or(base.map(|b| b.ttl))?;
        let methods = settings
            .and_then(|s| s.methods.as_ref())
            .or(base.and_then(|b| b.methods.as_ref()));
        let cacheable = match (methods, method) {
            (_, None) => true,
            (Some(list), Some(method)) => list.iter().any(|m| m.eq_ignore_ascii_case(method)),
            (None, Some(method)) => matches!(method, "GET" | "HEAD"),
        };
        if !cacheable {
            return None;
        }
        let scope = settings
            .and_then(|s| s.scope)
            .or(base.and_then(|b| b.scope))
            .unwrap_or(default_scope);
        Some(ToolCache { cache, ttl, scope })
    };
    move |spec: &ToolSpec<Binding>| {
        let scopes = target
            .operations
            .get(&spec.name)
            .and_then(|o| o.scopes.as_ref())
            .unwrap_or(&target.scopes);
        ToolSettings {
            cache: cache_for(&spec.name, spec.method.as_ref().map(|m| m.as_str())),
            policy: ToolPolicy {
                scopes: scopes.clone().into_boxed_slice(),
            },
            rate_limits: ToolRateLimits {
                target: target_limit.clone(),
                tool: target
                    .operations
                    .get(&spec.name)
                    .and_then(|o| o.rate_limit.as_ref())
                    .map(|l| {
                        Arc::new(
                            Limiter::new(&l.value, Scope::Tool)
                                .named(&target.name.value, &spec.name),
                        )
                    }),
            },
        }
    }
}

impl Loaded {
    /// Whether a reload can apply `next` in place, or which settings need a restart.
    pub fn needs_restart(&self, next: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.config.listen != next.listen {
            keys.push("listen");
        }
        if self.config.admin != next.admin {
            keys.push("admin");
        }
        if self.config.demo.as_ref().map(|d| d.listen) != next.demo.as_ref().map(|d| d.listen) {
            keys.push("demo");
        }
        // Compared with the tier that runs, which a reload keeps.
        if self.shared_cache.as_ref().map(|t| t.settings())
            != next.cache.shared.as_ref().map(|s| &s.value)
        {
            keys.push("cache.shared");
        }
        keys
    }

    /// The local files the tools were built from (documents, referenced files, tool
    /// definitions, secret files) and the session key file.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let session_key = self.config.gateway.session.key_file.as_ref();
        self.builds
            .iter()
            .flat_map(|b| b.inputs.iter().map(|(p, _)| p.clone()))
            .chain(session_key.map(|f| Config::resolve(&self.config_file, f)))
            .chain(self.policy.iter().flat_map(|p| p.files.iter().cloned()))
            .chain(
                self.config
                    .vault
                    .iter()
                    .flat_map(|v| v.value.files(&self.config_file)),
            )
            .chain(
                self.config
                    .inbound
                    .as_ref()
                    .and_then(|i| i.login.as_ref())
                    .and_then(|l| l.value.client_secret_file.as_ref())
                    .map(|f| Config::resolve(&self.config_file, &f.value)),
            )
            .collect()
    }

    /// How each target's upstream is doing, for the targets that track it (MCP servers).
    pub fn health(&self) -> Vec<(String, crate::targets::TargetHealth)> {
        self.builds
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.state.as_ref()?.health()?)))
            .collect()
    }

    /// How many targets this load rebuilt (the others kept their tools).
    pub fn rebuilt(&self) -> usize {
        self.targets.iter().filter(|t| !t.reused).count()
    }
}
