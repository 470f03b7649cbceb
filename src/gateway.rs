//! Load time: from `gateway.yaml` to a ready [`Catalog`] — read each target's document,
//! convert its operations, build credentials, name and compile every tool. Problems are
//! collected with their file and location; nothing here runs on the request path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::outbound::CredentialProvider;
use crate::catalog::{Catalog, Naming};
use crate::config::{Config, ConfigError, PrefixMode};
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

fn selection(openapi: &crate::config::OpenApiTargetConfig) -> Selection {
    let upper = |v: &[String]| v.iter().map(|m| m.to_ascii_uppercase()).collect();
    let mut s = Selection::default();
    if let Some(inc) = &openapi.include {
        s.include_operations = inc.operations.clone();
        s.include_tags = inc.tags.clone();
        s.include_methods = upper(&inc.methods);
    }
    if let Some(exc) = &openapi.exclude {
        s.exclude_operations = exc.operations.clone();
        s.exclude_tags = exc.tags.clone();
        s.exclude_methods = upper(&exc.methods);
    }
    s
}

/// Loads `gateway.yaml` at `path` and everything it names.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let config = Config::load(path)?;
    let mut warnings = config.warnings();
    let naming = naming(&config);
    let mut catalog = Catalog::new();
    let mut targets = Vec::new();
    for target in &config.targets {
        let name = target.name.value.clone();
        let Some(openapi) = &target.openapi else {
            continue;
        };
        let spec = Config::resolve(path, &openapi.spec.value);
        let options = ConvertOptions {
            base_url: openapi.base_url.as_ref().map(|b| b.value.clone()),
            selection: selection(openapi),
        };
        let converted =
            openapi::load_and_convert(&spec, &options).map_err(|error| LoadError::Spec {
                target: name.clone(),
                error,
            })?;
        warnings.extend(
            converted
                .warnings
                .iter()
                .map(|w| format!("target `{name}`: {w}")),
        );
        let credentials = match &target.credentials {
            None => None,
            Some(c) => Some(credential(&c.value).map_err(|message| LoadError::Target {
                target: name.clone(),
                message,
            })?),
        };
        let http_target = Arc::new(HttpTarget {
            name: name.as_str().into(),
            credentials,
            timeout: target.timeout,
            max_response_bytes: config.gateway.max_response.0,
        });
        let made = converted.tools.len();
        let errors = catalog.add_http_tools(&http_target, &naming, converted.tools);
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
    Ok(Loaded {
        config,
        config_file: path.to_path_buf(),
        catalog,
        targets,
        warnings,
    })
}

fn credential(c: &crate::config::CredentialsConfig) -> Result<CredentialProvider, String> {
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
        };
        (
            crate::mcp::McpEndpoint::new(Arc::new(self.catalog), http, settings),
            self.config,
        )
    }
}
