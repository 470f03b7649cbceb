//! Load time: from `gateway.yaml` to a ready [`Catalog`] — read each target's document,
//! convert its operations, build credentials, name and compile every tool. Problems are
//! collected with their file and location; nothing here runs on the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::outbound::CredentialProvider;
use crate::cache::{CacheBound, CacheScope, ResponseCache};
use crate::catalog::{Catalog, Naming};
use crate::catalog::{ToolCache, ToolSpec};
use crate::config::{CacheOverride, TargetConfig};
use crate::config::{Config, ConfigError, PrefixMode};
use crate::metrics::Metrics;
use crate::openapi::{self, ConvertOptions, Selection, Skipped};
use crate::targets::http::HttpTarget;

/// A loaded configuration: the catalog and what was noticed on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed configuration.
    pub config: Config,
    /// The file it came from.
    pub config_file: PathBuf,
    /// Every tool.
    pub catalog: Catalog,
    /// Per target: name, document, tools made, operations skipped.
    pub targets: Vec<TargetSummary>,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
    /// The metrics registry the tools are bound to.
    pub metrics: Arc<Metrics>,
    /// Scopes each tool needs (inbound auth), by tool name.
    pub tool_scopes: crate::auth::inbound::ToolScopes,
}

/// What one target contributed.
#[derive(Debug)]
pub struct TargetSummary {
    /// Target name.
    pub name: String,
    /// The document it was built from.
    pub spec: PathBuf,
    /// Tools made.
    pub tools: usize,
    /// Operations left out, with reasons.
    pub skipped: Vec<Skipped>,
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
    /// A target's credentials cannot be used.
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
    }
}

fn selection(openapi: &crate::config::OpenApiTargetConfig) -> Result<Selection, String> {
    let upper = |v: &[String]| v.iter().map(|m| m.to_ascii_uppercase()).collect();
    let globs = |filter: &crate::config::OperationFilter| {
        openapi::path_globs(filter.paths.iter().map(|p| p.value.as_str()))
    };
    let mut s = Selection {
        include_deprecated: openapi.include_deprecated,
        ..Selection::default()
    };
    if let Some(inc) = &openapi.include {
        s.include_operations = inc.operations.clone();
        s.include_tags = inc.tags.clone();
        s.include_methods = upper(&inc.methods);
        s.include_paths = globs(inc)?;
    }
    if let Some(exc) = &openapi.exclude {
        s.exclude_operations = exc.operations.clone();
        s.exclude_tags = exc.tags.clone();
        s.exclude_methods = upper(&exc.methods);
        s.exclude_paths = globs(exc)?;
    }
    Ok(s)
}

/// Loads `gateway.yaml` at `path` and everything it names.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let mut warnings = config.warnings();
    let naming = naming(&config);
    let metrics = Arc::new(Metrics::new());
    let mut catalog = Catalog::new();
    let mut targets = Vec::new();
    let mut tool_scopes = crate::auth::inbound::ToolScopes::new();
    let lambda_clients = crate::targets::lambda::Clients::build(&config, path)?;
    for target in &config.targets {
        let name = target.name.value.clone();
        if target.lambda.is_some() {
            let cache_for = tool_cache_policy(target, config.inbound.is_some(), &metrics);
            let (spec, tools, errors) = crate::targets::lambda::load_target(
                path,
                &config,
                target,
                &lambda_clients,
                &naming,
                &metrics,
                &|tool: &str| cache_for(tool, None),
                &mut catalog,
                &mut warnings,
            )?;
            let skipped = errors
                .into_iter()
                .map(|e| Skipped {
                    operation: e.source_op,
                    reason: e.reason,
                })
                .collect();
            targets.push(TargetSummary {
                name,
                spec,
                tools,
                skipped,
            });
            continue;
        }
        let Some(openapi) = &target.openapi else {
            continue;
        };
        let spec = Config::resolve(path, &openapi.spec.value);
        let target_error = |message: String| LoadError::Target {
            target: name.clone(),
            message,
        };
        let options = ConvertOptions {
            base_url: openapi.base_url.as_ref().map(|b| b.value.clone()),
            selection: selection(openapi).map_err(target_error)?,
            descriptions: openapi::DescriptionBudget {
                total: openapi
                    .description_budget
                    .unwrap_or(config.gateway.description_budget),
            },
            content_types: target
                .operations
                .iter()
                .filter_map(|(op, o)| Some((op.clone(), o.content_type.clone()?)))
                .collect(),
            remote_refs: openapi.remote_refs(),
        };
        let mut converted =
            openapi::load_and_convert(&spec, &options).map_err(|error| LoadError::Spec {
                target: name.clone(),
                error,
            })?;
        if let Some(first) = converted.option_errors.first() {
            return Err(target_error(first.clone()));
        }
        apply_overrides(target, &mut converted.tools, &mut warnings).map_err(|message| {
            LoadError::Target {
                target: name.clone(),
                message,
            }
        })?;
        warnings.extend(
            converted
                .warnings
                .iter()
                .map(|w| format!("target `{name}`: {w}")),
        );
        let credentials =
            match &target.credentials {
                None => None,
                Some(c) => Some(credential(&c.value, &name, path, &metrics).map_err(
                    |message| LoadError::Target {
                        target: name.clone(),
                        message,
                    },
                )?),
            };
        let http_target = Arc::new(HttpTarget {
            name: name.as_str().into(),
            credentials,
            timeout: target.timeout,
            max_response_bytes: config.gateway.max_response.0,
        });
        let made = converted.tools.len();
        let cache_for = cache_policy(target, config.inbound.is_some(), &metrics);
        // The catalog calls `cache_for` once per tool it adds, in order: note each one's
        // operation to give the added tools their scopes below.
        let added = std::cell::RefCell::new(Vec::new());
        let before = catalog.len();
        let errors = catalog.add_http_tools(
            &http_target,
            &naming,
            converted.tools,
            &metrics,
            &|spec: &ToolSpec| {
                added.borrow_mut().push(spec.name.clone());
                cache_for(spec)
            },
        );
        for (tool, op) in catalog.tools()[before..].iter().zip(added.into_inner()) {
            tool_scopes.add(&tool.name, target, &op);
        }
        let mut skipped = converted.skipped;
        for e in &errors {
            skipped.push(Skipped {
                operation: e.source_op.clone(),
                reason: e.reason.clone(),
            });
        }
        targets.push(TargetSummary {
            name,
            spec,
            tools: made - errors.len(),
            skipped,
        });
    }
    metrics.config_reloads.with_label_values(&["ok"]).inc();
    Ok(Loaded {
        config,
        config_file: path.to_path_buf(),
        catalog,
        targets,
        warnings,
        metrics,
        tool_scopes,
    })
}

/// Applies `operations.<id>.{rename, description}` to the converted tools, and warns about
/// entries that match no operation (a typo would otherwise silently do nothing). The cache
/// and scope settings keep matching the original operationId.
fn apply_overrides(
    target: &TargetConfig,
    tools: &mut [ToolSpec],
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
    let mut seen = std::collections::HashSet::new();
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

/// Decides, per tool, whether and how its answers are cached: the target's `cache`, then
/// `operations.<id>.cache` overrides. Only the configured methods are cached (GET and HEAD
/// by default). One moka cache serves all tools of a target.
fn cache_policy<'a>(
    target: &'a TargetConfig,
    inbound_auth: bool,
    metrics: &Metrics,
) -> impl Fn(&ToolSpec) -> Option<ToolCache> + 'a {
    let by_name = tool_cache_policy(target, inbound_auth, metrics);
    move |spec: &ToolSpec| by_name(&spec.name, Some(spec.operation.method.as_str()))
}

/// [`cache_policy`] by tool name and HTTP method; a tool without a method (Lambda) is
/// cached whenever its target or its `operations.<tool>.cache` says so.
fn tool_cache_policy<'a>(
    target: &'a TargetConfig,
    inbound_auth: bool,
    metrics: &Metrics,
) -> impl Fn(&str, Option<&str>) -> Option<ToolCache> + 'a {
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
        ResponseCache::new(&target.name.value, bound, metrics)
    });
    let default_scope = if inbound_auth {
        CacheScope::Caller
    } else {
        CacheScope::Shared
    };
    move |name: &str, method: Option<&str>| {
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
    }
}

fn credential(
    c: &crate::config::CredentialsConfig,
    target: &str,
    config_file: &Path,
    metrics: &Arc<Metrics>,
) -> Result<CredentialProvider, String> {
    if let Some(o) = &c.oauth2 {
        let secret = o.secret(config_file)?;
        let source =
            crate::auth::oauth2::ClientCredentials::new(target, o, secret, metrics.clone())?;
        return Ok(CredentialProvider::OAuth2(Arc::new(source)));
    }
    if let Some(o) = &c.token_exchange {
        let secret = o.secret(config_file)?;
        let exchange = crate::auth::oauth2::TokenExchange::new(target, o, secret, metrics.clone())?;
        return Ok(CredentialProvider::TokenExchange(Arc::new(exchange)));
    }
    if c.passthrough {
        return Ok(CredentialProvider::Passthrough);
    }
    if let Some(token) = &c.bearer {
        return CredentialProvider::bearer(token.expose()).map_err(|e| e.to_string());
    }
    if let Some(key) = &c.api_key {
        return CredentialProvider::api_key(key.location, &key.name, key.value.expose())
            .map_err(|e| e.to_string());
    }
    Err("credentials: no kind given".into())
}

impl Loaded {
    /// The MCP endpoint serving this catalog, with settings from the configuration.
    pub fn into_endpoint(
        self,
        http: crate::targets::http::HttpClient,
    ) -> (crate::mcp::McpEndpoint, Config) {
        let g = &self.config.gateway;
        let settings = crate::mcp::EndpointSettings {
            server_name: g.name.clone(),
            instructions: g.instructions.clone(),
            page_size: g.page_size,
            list_ttl_ms: g.list_ttl.as_millis() as u64,
            max_body: g.max_body.0,
            origins: crate::mcp::transport::OriginPolicy::new(
                self.config.listen,
                &g.allowed_origins,
                &g.allowed_hosts,
            ),
            inbound: self.config.inbound.as_ref().map(|inbound| {
                crate::auth::inbound::InboundAuth::new(
                    inbound,
                    self.tool_scopes,
                    http.clone(),
                    self.metrics.clone(),
                )
            }),
        };
        (
            crate::mcp::McpEndpoint::new(Arc::new(self.catalog), http, settings, self.metrics),
            self.config,
        )
    }
}
