//! Reloading a running gateway: on SIGHUP, `POST /admin/reload` or a changed file
//! (`serve --watch`), `gateway.yaml` and its documents are loaded again, reusing the
//! targets that did not change, and the new snapshot is swapped in whole. A reload that
//! fails keeps the last good catalog and reports exactly why; calls in flight finish on the
//! snapshot they started with. Settings that cannot change live are reported.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::auth::inbound::InboundAuth;
use crate::gateway::{self, Loaded};
use crate::mcp::{EndpointSettings, McpEndpoint, Snapshot};
use crate::targets::http::HttpClient;

/// What a reload did, as the admin endpoint answers it and the log records it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// `ok` or `error`.
    pub outcome: &'static str,
    /// What asked for it: `sighup`, `admin`, `watch`.
    pub trigger: &'static str,
    /// Why it failed (file, location, reason), when it did; the last good catalog is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tools served after the reload.
    pub tools: usize,
    /// Whether the tool list changed (clients are notified).
    pub tools_changed: bool,
    /// Targets loaded again.
    pub targets_rebuilt: Vec<String>,
    /// Targets whose tools were kept as they were.
    pub targets_reused: Vec<String>,
    /// Settings that changed but only take effect after a restart.
    pub restart_required: Vec<&'static str>,
    /// Non-fatal findings of the new configuration.
    pub warnings: Vec<String>,
    /// How long it took.
    pub duration_ms: f64,
}

/// The settings the endpoint serves a load with. The listener address (for the Origin and
/// Host policy) is the one the process bound, which a reload cannot change.
pub fn endpoint_settings(
    loaded: &Loaded,
    listen: std::net::SocketAddr,
    inbound: Option<Arc<InboundAuth>>,
) -> EndpointSettings {
    let g = &loaded.config.gateway;
    EndpointSettings {
        server_name: g.name.clone(),
        instructions: g.instructions.clone(),
        page_size: g.page_size,
        list_ttl_ms: g.list_ttl.as_millis() as u64,
        max_body: g.max_body.0,
        origins: crate::mcp::transport::OriginPolicy::new(
            listen,
            &g.allowed_origins,
            &g.allowed_hosts,
        ),
        inbound,
        sessions: loaded.sessions.clone(),
        rate_limit: loaded.rate_limit.clone(),
        rate_limit_store: match g.rate_limit_store {
            crate::config::RateLimitStore::Local => None,
            crate::config::RateLimitStore::Shared => loaded
                .shared_cache
                .as_ref()
                .map(|tier| crate::ratelimit::SharedStore::new(tier, &loaded.metrics)),
        },
        policy: loaded.policy.clone(),
        interceptors: crate::interceptors::Interceptors::build(&loaded.config.interceptors),
        user_auth: loaded.user_auth.clone(),
        public_base: public_base(&loaded.config, listen).into(),
    }
}

/// `gateway.public_url` without a trailing `/`, else the listener's own address (loopback
/// when it listens on every interface).
fn public_base(config: &crate::config::Config, listen: std::net::SocketAddr) -> String {
    if let Some(url) = &config.gateway.public_url {
        return url.value.trim_end_matches('/').to_string();
    }
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// The snapshot of a first load, with its inbound authenticator (started here). The shared
/// cache tier starts connecting here too, in the background.
pub fn first_snapshot(
    loaded: &Loaded,
    listen: std::net::SocketAddr,
    http: &HttpClient,
) -> (Snapshot, Option<Arc<InboundAuth>>) {
    if let Some(tier) = &loaded.shared_cache {
        tier.connect();
    }
    let inbound = loaded
        .config
        .inbound
        .as_ref()
        .map(|i| InboundAuth::new(i, http.clone(), loaded.metrics.clone()));
    let settings = endpoint_settings(loaded, listen, inbound.clone());
    (Snapshot::new(loaded.catalog.clone(), settings), inbound)
}

/// The state of the running configuration.
struct Current {
    loaded: Arc<Loaded>,
    inbound: Option<Arc<InboundAuth>>,
}

/// Reloads the configuration of a running gateway, one reload at a time.
pub struct Reloader {
    config_file: PathBuf,
    listen: std::net::SocketAddr,
    http: HttpClient,
    current: Mutex<Current>,
    running: tokio::sync::Mutex<()>,
    /// What `--watch` compares against: the watched files as of the last load, so that a
    /// change made before the watcher first looks is not missed.
    stamps: Mutex<(Vec<PathBuf>, Vec<Stamp>)>,
}

type Stamp = Option<(SystemTime, u64)>;

impl Reloader {
    /// A reloader for the gateway serving `loaded` on `listen`.
    pub fn new(
        loaded: Loaded,
        inbound: Option<Arc<InboundAuth>>,
        listen: std::net::SocketAddr,
        http: HttpClient,
    ) -> Self {
        let mut files = vec![loaded.config_file.clone()];
        files.extend(loaded.input_files());
        let seen = stamps(&files);
        Self {
            config_file: loaded.config_file.clone(),
            listen,
            http,
            current: Mutex::new(Current {
                loaded: Arc::new(loaded),
                inbound,
            }),
            running: tokio::sync::Mutex::new(()),
            stamps: Mutex::new((files, seen)),
        }
    }

    /// How the targets' upstreams are doing (MCP servers).
    pub fn health(&self) -> Vec<(String, crate::targets::TargetHealth)> {
        self.current.lock().expect("not poisoned").loaded.health()
    }

    /// The files a reload would read (the config, every target's inputs), for `--watch`.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let current = self.current.lock().expect("not poisoned");
        let mut files = vec![self.config_file.clone()];
        files.extend(current.loaded.input_files());
        files
    }

    /// Loads the configuration again and, when it loads, serves it on `endpoint`.
    pub async fn reload(&self, endpoint: &McpEndpoint, trigger: &'static str) -> ReloadReport {
        let _one_at_a_time = self.running.lock().await;
        let report = self.reload_now(endpoint, trigger).await;
        endpoint.reloaded();
        // After a failed reload too: `--watch` then waits for the next change instead of
        // trying the same one again.
        let files = self.watched_files();
        let seen = stamps(&files);
        *self.stamps.lock().expect("not poisoned") = (files, seen);
        report
    }

    async fn reload_now(&self, endpoint: &McpEndpoint, trigger: &'static str) -> ReloadReport {
        let started = Instant::now();
        let previous = self.current.lock().expect("not poisoned").loaded.clone();
        let metrics = endpoint.metrics().clone();
        let path = self.config_file.clone();
        let prev = previous.clone();
        // Loading is CPU and file work: off the runtime's worker threads.
        let result =
            tokio::task::spawn_blocking(move || gateway::load_with(&path, &metrics, Some(&prev)))
                .await
                .unwrap_or_else(|e| {
                    Err(gateway::LoadError::Target {
                        target: "(reload)".into(),
                        message: format!("the reload task failed: {e}"),
                    })
                });
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let metrics = endpoint.metrics();
        let next = match result {
            Ok(next) => next,
            Err(error) => {
                metrics.config_reloads.with_label_values(&["error"]).inc();
                let error = error.to_string();
                tracing::error!(
                    trigger,
                    %error,
                    "configuration reload failed; still serving the last good configuration"
                );
                return ReloadReport {
                    outcome: "error",
                    trigger,
                    error: Some(error),
                    tools: previous.catalog.len(),
                    tools_changed: false,
                    targets_rebuilt: Vec::new(),
                    targets_reused: Vec::new(),
                    restart_required: Vec::new(),
                    warnings: Vec::new(),
                    duration_ms,
                };
            }
        };
        let restart_required = previous.needs_restart(&next.config);
        for key in &restart_required {
            tracing::warn!(
                trigger,
                key,
                "`{key}` changed: it takes effect after a restart (the running value is kept)"
            );
        }
        let inbound = {
            let current = self.current.lock().expect("not poisoned");
            if current.loaded.config.fingerprints.inbound == next.config.fingerprints.inbound {
                current.inbound.clone()
            } else {
                next.config
                    .inbound
                    .as_ref()
                    .map(|i| InboundAuth::new(i, self.http.clone(), metrics.clone()))
            }
        };
        let settings = endpoint_settings(&next, self.listen, inbound.clone());
        let old = endpoint.swap(Snapshot::new(next.catalog.clone(), settings));
        let tools_changed = old.catalog().generation() != next.catalog.generation();
        // Series of tools that are gone would otherwise stay in /metrics forever.
        for tool in old.catalog().tools() {
            if next.catalog.get(&tool.name).is_none() {
                metrics.forget_tool(&tool.target, &tool.name);
            }
        }
        metrics.config_reloads.with_label_values(&["ok"]).inc();
        let (reused, rebuilt): (Vec<_>, Vec<_>) = next.targets.iter().partition(|t| t.reused);
        let report = ReloadReport {
            outcome: "ok",
            trigger,
            error: None,
            tools: next.catalog.len(),
            tools_changed,
            targets_rebuilt: rebuilt.iter().map(|t| t.name.clone()).collect(),
            targets_reused: reused.iter().map(|t| t.name.clone()).collect(),
            restart_required,
            warnings: next.warnings.clone(),
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        for w in &next.warnings {
            tracing::warn!("{w}");
        }
        tracing::info!(
            trigger,
            tools = report.tools,
            tools_changed,
            rebuilt = report.targets_rebuilt.len(),
            reused = report.targets_reused.len(),
            duration_ms = report.duration_ms,
            "configuration reloaded"
        );
        *self.current.lock().expect("not poisoned") = Current {
            loaded: Arc::new(next),
            inbound,
        };
        report
    }
}

/// What `--watch` compares: modification time and size of each file (missing: `None`).
fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

/// Reloads whenever the configuration or one of its input files changes, checking every
/// `interval` (polling works on every filesystem, Kubernetes ConfigMap symlink swaps
/// included). Runs until the process ends.
pub async fn watch(reloader: Arc<Reloader>, endpoint: Arc<McpEndpoint>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let changed = {
            let guard = reloader.stamps.lock().expect("not poisoned");
            stamps(&guard.0) != guard.1
        };
        if !changed {
            continue;
        }
        // Let a writer finish (editors write, rename and touch in several steps).
        tokio::time::sleep(interval.min(Duration::from_millis(200))).await;
        reloader.reload(&endpoint, "watch").await;
    }
}

/// An endpoint serving `loaded` without listeners (benches, embedding): its settings as the
/// configuration gives them, inbound authentication started when configured.
pub fn endpoint_of(loaded: &Loaded, http: HttpClient) -> McpEndpoint {
    let (snapshot, _) = first_snapshot(loaded, loaded.config.listen, &http);
    McpEndpoint::new(snapshot, http, loaded.metrics.clone())
}
