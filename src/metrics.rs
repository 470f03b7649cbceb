//! Prometheus metrics: one registry per gateway, rendered on the admin listener's
//! `/metrics`. Per-tool handles are bound once at load ([`ToolMetrics`]), so the request
//! path never looks labels up. Label values come only from the catalog (target and tool
//! names) and from fixed sets, never from caller input, so cardinality is bounded.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets (seconds): sub-millisecond to a minute.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Payload size buckets (bytes): 64 B to 16 MiB.
const SIZE_BUCKETS: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered 2xx (or the answer came from the cache).
    Ok,
    /// The upstream rejected the call (4xx): the caller's request was wrong.
    ToolError,
    /// The upstream failed (5xx, unreachable, unusable answer).
    UpstreamError,
    /// No answer within the target's timeout.
    Timeout,
    /// The caller may not call this tool.
    Denied,
    /// The arguments did not match the input schema; the upstream was not called.
    InvalidArguments,
    /// The upstream answered, but not what the tool's outputSchema describes (the result
    /// is `isError` with the answer as text).
    InvalidAnswer,
    /// Refused by a rate limit (HTTP 429); the upstream was not called.
    RateLimited,
    /// The user must authorize the upstream first (a URL elicitation was sent); the
    /// upstream was not called.
    AuthorizationRequired,
}

impl Outcome {
    const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::ToolError,
        Outcome::UpstreamError,
        Outcome::Timeout,
        Outcome::Denied,
        Outcome::InvalidArguments,
        Outcome::InvalidAnswer,
        Outcome::RateLimited,
        Outcome::AuthorizationRequired,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::UpstreamError => "upstream_error",
            Outcome::Timeout => "timeout",
            Outcome::Denied => "denied",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::InvalidAnswer => "invalid_answer",
            Outcome::RateLimited => "rate_limited",
            Outcome::AuthorizationRequired => "authorization_required",
        }
    }
}

/// MCP methods counted by name; anything else is `other`.
const METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "server/discover",
    "initialize",
    "ping",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "notification",
    "other",
];

/// Reasons an inbound request fails authentication (label values of
/// `toolgate_auth_failures_total`).
pub const AUTH_FAILURE_REASONS: &[&str] = &[
    "missing",
    "malformed",
    "algorithm",
    "unknown_kid",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "claims",
    "client",
    "claim_rule",
    "insufficient_scope",
    "keys_unavailable",
];

/// Every metric family toolgate registers (histograms without their `_bucket`, `_sum` and
/// `_count` suffixes), for dashboards and their tests.
pub const FAMILIES: &[&str] = &[
    "toolgate_tool_calls_total",
    "toolgate_tool_call_duration_seconds",
    "toolgate_upstream_duration_seconds",
    "toolgate_tool_calls_in_flight",
    "toolgate_upstream_responses_total",
    "toolgate_cache_requests_total",
    "toolgate_cache_evictions_total",
    "toolgate_cache_shared_total",
    "toolgate_tool_arguments_bytes",
    "toolgate_upstream_answer_bytes",
    "toolgate_mcp_requests_total",
    "toolgate_auth_failures_total",
    "toolgate_jwks_refreshes_total",
    "toolgate_outbound_token_fetches_total",
    "toolgate_user_authorizations_total",
    "toolgate_user_tokens_total",
    "toolgate_config_loads_total",
    "toolgate_config_reloads_total",
    "toolgate_catalog_tools",
    "toolgate_requests_shed_total",
    "toolgate_notification_streams",
    "toolgate_search_calls_total",
    "toolgate_search_duration_seconds",
    "toolgate_sessions_total",
    "toolgate_rate_limited_total",
    "toolgate_rate_limit_store_total",
    "toolgate_policy_decisions_total",
    "toolgate_interceptor_calls_total",
    "toolgate_build_info",
];

/// Revision label values of `toolgate_mcp_requests_total` (`legacy`: a handshake-era request
/// that does not say which).
const REVISIONS: &[&str] = &[
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "legacy",
];

/// All the gateway's metrics.
pub struct Metrics {
    registry: Registry,
    calls: IntCounterVec,
    duration: HistogramVec,
    upstream_duration: HistogramVec,
    in_flight: IntGaugeVec,
    upstream_status: IntCounterVec,
    cache: IntCounterVec,
    cache_evictions: IntCounterVec,
    cache_shared: IntCounterVec,
    request_bytes: HistogramVec,
    response_bytes: HistogramVec,
    mcp_requests: IntCounterVec,
    /// `mcp_requests` bound for every method × revision, row-major by method.
    mcp_request_counters: Vec<IntCounter>,
    /// Auth failures by reason (inbound authentication).
    pub auth_failures: IntCounterVec,
    /// JWKS refreshes by outcome.
    pub jwks_refreshes: IntCounterVec,
    /// Outbound token fetches by target and outcome.
    pub token_fetches: IntCounterVec,
    /// Per-user OAuth authorization flows by target and outcome (`started`, `connected`,
    /// `declined`, `user_mismatch`, `browser_mismatch`, `expired`, `invalid_link`,
    /// `invalid_state`, `failed`).
    pub user_authorizations: IntCounterVec,
    /// Per-user token events by target (`elicited`, `refreshed`, `refresh_refused`,
    /// `refresh_failed`, `rejected`, `revoked`).
    pub user_tokens: IntCounterVec,
    /// Configuration loads (at start and on every reload) by outcome.
    pub config_loads: IntCounterVec,
    /// Reloads of a running gateway by outcome (`ok`, `error`).
    pub config_reloads: IntCounterVec,
    /// Tools in the catalog being served.
    pub catalog_tools: prometheus::IntGauge,
    /// Requests refused with 503 because the gateway was at its concurrency limit.
    pub requests_shed: IntCounter,
    /// Open notification streams (GET streams and `subscriptions/listen`).
    pub notification_streams: prometheus::IntGauge,
    /// Calls of the search tool by outcome (`ok`, `empty`, `invalid_arguments`).
    pub search_calls: IntCounterVec,
    /// Time to answer a call of the search tool.
    pub search_duration: Histogram,
    /// Session ids issued and refused (`issued`, `unknown`, `expired`, `other_caller`).
    pub sessions: IntCounterVec,
    /// Tool calls refused by a rate limit, by target, tool, scope and limit.
    rate_limited: IntCounterVec,
    /// Admissions with `gateway.rate_limit_store: shared`, by where they were decided.
    rate_limit_store: IntCounterVec,
    /// Cedar policy decisions of tool calls, by decision and mode.
    pub policy_decisions: IntCounterVec,
    /// Interceptor calls by interceptor, phase and outcome.
    interceptor_calls: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    let g = prometheus::IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let tool = &["target", "tool"];
        let mut metrics = Self {
            calls: counter(
                &registry,
                "toolgate_tool_calls_total",
                "Tool calls by outcome.",
                &["target", "tool", "outcome"],
            ),
            duration: histogram(
                &registry,
                "toolgate_tool_call_duration_seconds",
                "Time from receiving tools/call to the answer being ready, in the gateway.",
                tool,
                DURATION_BUCKETS,
            ),
            upstream_duration: histogram(
                &registry,
                "toolgate_upstream_duration_seconds",
                "Time spent waiting for the upstream (TargetExecutionTime).",
                tool,
                DURATION_BUCKETS,
            ),
            in_flight: {
                let g = IntGaugeVec::new(
                    Opts::new("toolgate_tool_calls_in_flight", "Tool calls in progress."),
                    tool,
                )
                .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("metric registered once");
                g
            },
            upstream_status: counter(
                &registry,
                "toolgate_upstream_responses_total",
                "Upstream answers by status class.",
                &["target", "tool", "class"],
            ),
            cache: counter(
                &registry,
                "toolgate_cache_requests_total",
                "Response cache look-ups by result.",
                &["target", "tool", "result"],
            ),
            cache_evictions: counter(
                &registry,
                "toolgate_cache_evictions_total",
                "Response cache entries removed, by cause (expired, size, replaced, explicit).",
                &["target", "cause"],
            ),
            cache_shared: counter(
                &registry,
                "toolgate_cache_shared_total",
                "Use of the shared cache tier (cache.shared, Redis) by outcome: hit, miss, error, skipped (an outage's backoff) for look-ups; stored, too_large, error, skipped for stores.",
                &["target", "outcome"],
            ),
            request_bytes: histogram(
                &registry,
                "toolgate_tool_arguments_bytes",
                "Size of the tools/call request body.",
                tool,
                SIZE_BUCKETS,
            ),
            response_bytes: histogram(
                &registry,
                "toolgate_upstream_answer_bytes",
                "Size of the upstream answer body.",
                tool,
                SIZE_BUCKETS,
            ),
            mcp_requests: counter(
                &registry,
                "toolgate_mcp_requests_total",
                "MCP requests by method and protocol revision.",
                &["method", "revision"],
            ),
            auth_failures: counter(
                &registry,
                "toolgate_auth_failures_total",
                "Inbound authentication failures by reason.",
                &["reason"],
            ),
            jwks_refreshes: counter(
                &registry,
                "toolgate_jwks_refreshes_total",
                "JWKS refreshes by outcome.",
                &["outcome"],
            ),
            token_fetches: counter(
                &registry,
                "toolgate_outbound_token_fetches_total",
                "Outbound OAuth2 token requests by target and outcome.",
                &["target", "outcome"],
            ),
            user_authorizations: counter(
                &registry,
                "toolgate_user_authorizations_total",
                "Per-user OAuth authorization flows (connect links opened in a browser) by target and outcome.",
                &["target", "outcome"],
            ),
            user_tokens: counter(
                &registry,
                "toolgate_user_tokens_total",
                "Per-user OAuth token events (elicitations, refreshes, rejections, revocations) by target.",
                &["target", "event"],
            ),
            config_loads: counter(
                &registry,
                "toolgate_config_loads_total",
                "Configuration loads (at start and on every reload) by outcome.",
                &["outcome"],
            ),
            config_reloads: counter(
                &registry,
                "toolgate_config_reloads_total",
                "Reloads of the running gateway (SIGHUP, POST /admin/reload, --watch) by outcome; a failed one keeps the last good catalog.",
                &["outcome"],
            ),
            catalog_tools: gauge(
                &registry,
                "toolgate_catalog_tools",
                "Tools in the catalog being served.",
            ),
            requests_shed: {
                let c = IntCounter::new(
                    "toolgate_requests_shed_total",
                    "MCP requests refused with 503 at the concurrency limit (gateway.max_concurrent_requests).",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("metric registered once");
                c
            },
            notification_streams: gauge(
                &registry,
                "toolgate_notification_streams",
                "Open notification streams (handshake-era GET streams and subscriptions/listen).",
            ),
            search_calls: counter(
                &registry,
                "toolgate_search_calls_total",
                "Calls of the search tool (gateway.search) by outcome: ok, empty (nothing matched), invalid_arguments.",
                &["outcome"],
            ),
            search_duration: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "toolgate_search_duration_seconds",
                        "Time to answer a call of the search tool (ranking and writing the answer).",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                )
                .expect("valid metric");
                registry
                    .register(Box::new(h.clone()))
                    .expect("metric registered once");
                h
            },
            sessions: counter(
                &registry,
                "toolgate_sessions_total",
                "Handshake-era session ids (gateway.session) by event: issued, or refused as unknown (forged, altered, another key), expired, other_caller.",
                &["event"],
            ),
            rate_limited: counter(
                &registry,
                "toolgate_rate_limited_total",
                "Tool calls refused with 429 by a rate limit, by the budget that refused (scope: gateway, target, tool) and its limit (requests_per_second, concurrent).",
                &["target", "tool", "scope", "limit"],
            ),
            rate_limit_store: counter(
                &registry,
                "toolgate_rate_limit_store_total",
                "Rate-limit decisions with gateway.rate_limit_store: shared, by outcome: shared (decided in Redis), fallback (Redis down or slow: decided by this replica's local budgets).",
                &["outcome"],
            ),
            policy_decisions: counter(
                &registry,
                "toolgate_policy_decisions_total",
                "Cedar policy decisions of tool calls (policy:), by decision (allow, deny) and mode (enforce, log_only; a log_only deny still proceeds).",
                &["decision", "mode"],
            ),
            interceptor_calls: counter(
                &registry,
                "toolgate_interceptor_calls_total",
                "Calls of request and response interceptors, by interceptor, phase (request, response) and outcome (ok, transformed, answered, error, timeout).",
                &["interceptor", "phase", "outcome"],
            ),
            mcp_request_counters: Vec::new(),
            registry,
        };
        for event in ["issued", "unknown", "expired", "other_caller"] {
            metrics.sessions.with_label_values(&[event]);
        }
        for outcome in ["ok", "empty", "invalid_arguments"] {
            metrics.search_calls.with_label_values(&[outcome]);
        }
        metrics.mcp_request_counters = METHODS
            .iter()
            .flat_map(|m| REVISIONS.iter().map(move |r| (*m, *r)))
            .map(|(m, r)| metrics.mcp_requests.with_label_values(&[m, r]))
            .collect();
        // Known label values start at zero, so that dashboards and alerts see the series
        // before the first event.
        for reason in AUTH_FAILURE_REASONS {
            metrics.auth_failures.with_label_values(&[reason]);
        }
        for outcome in ["ok", "error"] {
            metrics.jwks_refreshes.with_label_values(&[outcome]);
            metrics.config_loads.with_label_values(&[outcome]);
            metrics.config_reloads.with_label_values(&[outcome]);
        }
        let build = IntGaugeVec::new(
            Opts::new("toolgate_build_info", "Build information."),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[crate::VERSION]).set(1);
        metrics
            .registry
            .register(Box::new(build))
            .expect("metric registered once");
        #[cfg(target_os = "linux")]
        {
            let _ = metrics.registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        metrics
    }

    /// Drops the series of a tool that a reload removed, so that renamed or deleted tools
    /// do not accumulate (calls in flight on it still count, unexported).
    pub fn forget_tool(&self, target: &str, tool: &str) {
        let labels = [target, tool];
        for o in Outcome::ALL {
            let _ = self.calls.remove_label_values(&[target, tool, o.as_str()]);
        }
        for c in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            let _ = self.upstream_status.remove_label_values(&[target, tool, c]);
        }
        for c in ["hit", "miss"] {
            let _ = self.cache.remove_label_values(&[target, tool, c]);
        }
        for scope in ["gateway", "target", "tool"] {
            for limit in ["requests_per_second", "concurrent"] {
                let _ = self
                    .rate_limited
                    .remove_label_values(&[target, tool, scope, limit]);
            }
        }
        let _ = self.duration.remove_label_values(&labels);
        let _ = self.upstream_duration.remove_label_values(&labels);
        let _ = self.in_flight.remove_label_values(&labels);
        let _ = self.request_bytes.remove_label_values(&labels);
        let _ = self.response_bytes.remove_label_values(&labels);
    }

    /// Handles bound to one tool's labels.
    pub fn for_tool(&self, target: &str, tool: &str) -> ToolMetrics {
        let labels = [target, tool];
        ToolMetrics {
            calls: Outcome::ALL.map(|o| self.calls.with_label_values(&[target, tool, o.as_str()])),
            duration: self.duration.with_label_values(&labels),
            upstream_duration: self.upstream_duration.with_label_values(&labels),
            in_flight: self.in_flight.with_label_values(&labels),
            status: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|c| self.upstream_status.with_label_values(&[target, tool, c])),
            cache_hit: self.cache.with_label_values(&[target, tool, "hit"]),
            cache_miss: self.cache.with_label_values(&[target, tool, "miss"]),
            request_bytes: self.request_bytes.with_label_values(&labels),
            response_bytes: self.response_bytes.with_label_values(&labels),
        }
    }

    /// Counts a call refused by a rate limit. Series are made on a tool's first refusal
    /// (admitted calls never touch this family).
    pub fn rate_limited(&self, target: &str, tool: &str, scope: &str, limit: &str) {
        self.rate_limited
            .with_label_values(&[target, tool, scope, limit])
            .inc();
    }

    /// Counts one call of an interceptor (series are made on first use; no interceptor
    /// configured, no series).
    pub fn interceptor_call(&self, interceptor: &str, phase: &str, outcome: &str) {
        self.interceptor_calls
            .with_label_values(&[interceptor, phase, outcome])
            .inc();
    }

    /// The eviction counter of one target's cache, by cause.
    pub fn cache_evictions(&self, target: &str, cause: &str) -> IntCounter {
        self.cache_evictions.with_label_values(&[target, cause])
    }

    /// The counter of rate-limit decisions of the shared store with `outcome` (`shared`,
    /// `fallback`).
    pub fn rate_limit_store(&self, outcome: &str) -> IntCounter {
        self.rate_limit_store.with_label_values(&[outcome])
    }

    /// A counter of one target's use of the shared cache tier, by outcome.
    pub fn cache_shared(&self, target: &str, outcome: &str) -> IntCounter {
        self.cache_shared.with_label_values(&[target, outcome])
    }

    /// Counts one MCP request. `method` is mapped onto a fixed set; the counters are bound
    /// at start, so this is an index and an atomic add.
    pub fn mcp_request(&self, method: &str, revision: &'static str) {
        let m = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len() - 1);
        let r = REVISIONS
            .iter()
            .position(|r| *r == revision)
            .unwrap_or(REVISIONS.len() - 1);
        self.mcp_request_counters[m * REVISIONS.len() + r].inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on invalid metric families, which registration rules out.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One tool's metric handles, bound at load.
#[derive(Clone)]
pub struct ToolMetrics {
    calls: [IntCounter; 9],
    /// Gateway duration of a call.
    pub duration: Histogram,
    /// Upstream part of a call.
    pub upstream_duration: Histogram,
    /// Calls in progress.
    pub in_flight: IntGauge,
    status: [IntCounter; 5],
    /// Cache hits.
    pub cache_hit: IntCounter,
    /// Cache misses.
    pub cache_miss: IntCounter,
    /// Arguments size.
    pub request_bytes: Histogram,
    /// Upstream answer size.
    pub response_bytes: Histogram,
}

impl ToolMetrics {
    /// Counts a finished call.
    #[inline]
    pub fn outcome(&self, outcome: Outcome) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.calls[i].inc();
    }

    /// Counts an upstream status.
    #[inline]
    pub fn status(&self, status: u16) {
        if let Some(c) = self.status.get(usize::from(status / 100).wrapping_sub(1)) {
            c.inc();
        }
    }
}

impl std::fmt::Debug for ToolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ToolMetrics")
    }
}
