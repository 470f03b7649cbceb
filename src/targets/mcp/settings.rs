//! `targets[].mcp` in gateway.yaml: an upstream MCP server, reached over Streamable HTTP
//! (`url`) or spawned as a stdio process (`command`), and how its tools are listed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::{ConfigError, TargetConfig};

/// `targets[].mcp`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpTargetConfig {
    /// The server's Streamable HTTP endpoint (`https://mcp.example.com/mcp`).
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// Or a stdio server: the program the gateway spawns and supervises.
    #[serde(default)]
    pub command: Option<Spanned<String>>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for it (the gateway's own environment is not passed on,
    /// except `PATH` and `HOME`).
    #[serde(default)]
    pub env: indexmap::IndexMap<String, String>,
    /// Its working directory, relative to gateway.yaml (default: gateway.yaml's folder).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// How `tools/list` reaches the upstream's tools: `default` keeps a synced copy.
    #[serde(default)]
    pub listing: Listing,
    /// How often the synced copy is refreshed (besides the upstream's list-changed
    /// notifications), default `5m`.
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub refresh: Option<Duration>,
    /// What an unreachable upstream does to the gateway: `open` (default) serves the other
    /// targets and retries; `closed` refuses to load.
    #[serde(default)]
    pub failure: FailureMode,
    /// The protocol revision to speak (default: negotiated, 2026-07-28 first).
    #[serde(default)]
    pub protocol_version: Option<Spanned<String>>,
    /// How `url` is spoken to: `auto` (default: Streamable HTTP, else the 2024-11-05
    /// HTTP+SSE transport when the server refuses it), `streamable-http` or `sse`.
    #[serde(default)]
    pub transport: HttpTransport,
}

/// `targets[].mcp.transport`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpTransport {
    /// Streamable HTTP, falling back to HTTP+SSE.
    #[default]
    Auto,
    /// Streamable HTTP only.
    StreamableHttp,
    /// The HTTP+SSE transport of the 2024-11-05 revision.
    Sse,
}

/// `targets[].mcp.listing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Listing {
    /// A copy of the upstream's tools in the catalog, fetched at load and refreshed:
    /// `tools/list` stays local, fast and the same on every replica.
    #[default]
    Default,
    /// Every `tools/list` (and every call of a tool the catalog does not know yet) asks
    /// the upstream first; a changed list is loaded before the answer.
    Dynamic,
}

/// `targets[].mcp.failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// An unreachable upstream contributes no tools until it answers; the gateway serves.
    #[default]
    Open,
    /// An unreachable upstream at load is a load error; later, `/readyz` answers 503.
    Closed,
}

/// The default refresh interval of a synced tool list.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

impl McpTargetConfig {
    /// Where the server is, for messages and summaries.
    pub fn describe(&self) -> String {
        match (&self.url, &self.command) {
            (Some(url), _) => url.value.clone(),
            (None, Some(command)) => {
                let mut text = command.value.clone();
                for a in &self.args {
                    text.push(' ');
                    text.push_str(a);
                }
                text
            }
            (None, None) => String::new(),
        }
    }

    /// The working directory of a stdio server.
    pub fn working_dir(&self, config_file: &Path) -> PathBuf {
        match &self.cwd {
            Some(cwd) => crate::config::Config::resolve(config_file, cwd),
            None => config_file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }
}

/// Checks a target's `mcp:` section and what the target may combine with it.
pub fn check_target(path: &Path, target: &TargetConfig) -> Result<(), ConfigError> {
    let Some(mcp) = &target.mcp else {
        return Ok(());
    };
    let name = &target.name.value;
    let at = &mcp.referenced;
    let mcp = &mcp.value;
    match (&mcp.url, &mcp.command) {
        (Some(_), Some(command)) => {
            return Err(ConfigError::at(
                path,
                &command.referenced,
                format!(
                    "target `{name}`: mcp takes `url` (Streamable HTTP) or `command` (stdio), not both"
                ),
            ));
        }
        (None, None) => {
            return Err(ConfigError::at(
                path,
                at,
                format!(
                    "target `{name}`: mcp needs `url` (a Streamable HTTP endpoint) or `command` (a stdio server to spawn)"
                ),
            ));
        }
        (Some(url), None) => {
            let parsed = url::Url::parse(&url.value).map_err(|e| {
                ConfigError::at(
                    path,
                    &url.referenced,
                    format!("target `{name}`: mcp.url `{}` is not a URL: {e}", url.value),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::at(
                    path,
                    &url.referenced,
                    format!(
                        "target `{name}`: mcp.url must be an absolute http(s) URL (found `{}`)",
                        url.value
                    ),
                ));
            }
        }
        (None, Some(command)) => {
            if command.value.trim().is_empty() {
                return Err(ConfigError::at(
                    path,
                    &command.referenced,
                    format!("target `{name}`: mcp.command must not be empty"),
                ));
            }
            if let Some(creds) = &target.credentials {
                return Err(ConfigError::at(
                    path,
                    &creds.referenced,
                    format!(
                        "target `{name}`: a stdio MCP server takes no `credentials` (give it what it needs in mcp.env)"
                    ),
                ));
            }
        }
    }
    if mcp.refresh.is_some_and(|r| r < Duration::from_secs(1)) {
        return Err(ConfigError::at(
            path,
            at,
            format!("target `{name}`: mcp.refresh must be at least 1s"),
        ));
    }
    if let Some(v) = &mcp.protocol_version
        && !crate::mcp::SUPPORTED_VERSIONS.contains(&v.value.as_str())
    {
        return Err(ConfigError::at(
            path,
            &v.referenced,
            format!(
                "target `{name}`: mcp.protocol_version `{}` is not one of {}",
                v.value,
                crate::mcp::SUPPORTED_VERSIONS.join(", ")
            ),
        ));
    }
    if target
        .cache
        .as_ref()
        .is_some_and(|c| c.value.methods.is_some())
    {
        return Err(ConfigError::at(
            path,
            at,
            format!(
                "target `{name}`: cache `methods` do not apply to MCP tools (every tool of a cached MCP target is cached; turn one off with operations.<tool>.cache: false)"
            ),
        ));
    }
    Ok(())
}
