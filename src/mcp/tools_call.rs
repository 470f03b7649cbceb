//! `tools/call`: look the tool up, validate the arguments with its compiled validator, run
//! its binding, and map the answer to MCP content. Tool failures (bad arguments, upstream
//! errors, timeouts) are results with `isError: true`; only protocol problems (unknown
//! tool, malformed params) are JSON-RPC errors.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::jsonrpc::{self, ErrorKind, RpcError};
use super::{Call, Era, McpEndpoint, header_str, write_result_type};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::auth::user_oauth::UserCall;
use crate::cache::{CacheKey, CacheScope, CachedAnswer, Lookup};
use crate::catalog::{OutputMapping, Tool};
use crate::json_doc::{Doc, DocValue};
use crate::metrics::Outcome;
use crate::targets::{Answer, CacheDirectives, CallContext, UpstreamAnswer};

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<Value>,
    /// 2026-07-28 retries of an `input_required` result carry the client's answers.
    #[serde(default, rename = "inputResponses", borrow)]
    input_responses: Option<&'a RawValue>,
    #[serde(default, rename = "_meta", borrow)]
    meta: Option<&'a RawValue>,
}

/// Most validation problems listed in one result; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// Answers `tools/call`.
pub(super) async fn handle(
    endpoint: &McpEndpoint,
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let Some(params) = params else {
        return Err(RpcError::invalid_params(
            "tools/call requires params with the tool `name`",
        ));
    };
    let params_len = params.get().len();
    let params: CallParams = serde_json::from_str(params.get())
        .map_err(|e| RpcError::invalid_params(format!("invalid tools/call params: {e}")))?;
    if call.era == Era::Modern {
        check_name_header(call, &params.name)?;
    }
    if let Some(search) = call.snap.catalog().search()
        && *params.name == *search.name()
    {
        super::tool_search::answer(
            call,
            search,
            params.arguments.as_ref(),
            endpoint.metrics(),
            out,
        );
        return Ok(());
    }
    let Some(tool) = call.snap.catalog().get(&params.name) else {
        return Err(
            RpcError::invalid_params(format!("Unknown tool: {}", params.name))
                .with_data(serde_json::json!({ "name": params.name })),
        );
    };
    if crate::telemetry::enabled() {
        call.span.set("tool.name", tool.name.to_string());
        call.span.set("gen_ai.tool.name", tool.name.to_string());
    }
    if let Some(needed) = tool.policy.missing(call.caller) {
        return Err(deny(call, tool, needed));
    }
    let started = Instant::now();
    let metrics = &tool.metrics;
    metrics.request_bytes.observe(params_len as f64);
    let mut arguments = match params.arguments {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    // `null` for an optional argument whose schema has no null means "not given" (what
    // frameworks such as CrewAI send for every argument they leave out); it is never
    // forwarded.
    if !tool.null_is_absent.is_empty()
        && let Value::Object(map) = &mut arguments
        && map.values().any(Value::is_null)
    {
        map.retain(|name, value| {
            !(value.is_null()
                && tool
                    .null_is_absent
                    .binary_search_by(|n| (**n).cmp(name.as_str()))
                    .is_ok())
        });
    }
    if !tool.validator.is_valid(&arguments) || !arguments.is_object() {
        let fragment = error_fragment(&validation_report(tool, &arguments));
        write_result(out, call.id, call.era, &fragment);
        finish(
            call,
            tool,
            &Rendered::new(fragment, Outcome::InvalidArguments),
            CacheUse::Off,
            started,
        );
        return Ok(());
    }
    if let Some(policies) = call.snap.settings().policy.as_deref() {
        policy_check(call, tool, policies, &arguments, endpoint.metrics())?;
    }
    // Rate limits come after the caller's scopes and arguments, before the cache: a cache
    // hit counts against a rate too. The admission's concurrency slots are released when
    // it is dropped (the call ends, or its future is dropped on cancellation).
    let limits = &tool.rate_limits;
    let limiters = [
        call.snap.settings().rate_limit.as_deref(),
        limits.target.as_deref(),
        limits.tool.as_deref(),
    ];
    let caller_key = call.caller.map(|c| &c.cache_key);
    // Only a shared store (Redis) makes admission wait.
    let admitted = match call.snap.settings().rate_limit_store.as_deref() {
        None => crate::ratelimit::admit(limiters, caller_key),
        Some(store) => crate::ratelimit::admit_shared(store, limiters, caller_key).await,
    };
    let _admission = match admitted {
        Ok(admission) => admission,
        Err(refusal) => {
            return Err(rate_limited(
                call,
                tool,
                &refusal,
                endpoint.metrics(),
                started,
            ));
        }
    };
    // Per-user OAuth: the user's token before anything is sent; without one the call is
    // answered with a URL elicitation.
    let user_call;
    let user = match tool.binding.user_oauth() {
        None => None,
        Some(oauth) => match user_credential(
            endpoint,
            call,
            tool,
            oauth,
            (params.input_responses, params.meta),
        )
        .await
        {
            Ok(c) => {
                user_call = c;
                Some(&user_call)
            }
            Err(early) => {
                // Answered without calling the upstream: counted and logged like any call.
                let (answer, rendered) = match early {
                    Early::Error(error) => (
                        Err(error),
                        Rendered::new(Bytes::new(), Outcome::AuthorizationRequired),
                    ),
                    Early::Result(fragment, outcome) => {
                        write_result(out, call.id, call.era, &fragment);
                        (Ok(()), Rendered::new(fragment, outcome))
                    }
                    Early::InputRequired(body) => {
                        jsonrpc::begin_result(out, call.id);
                        out.extend_from_slice(&body);
                        jsonrpc::end_result(out);
                        (
                            Ok(()),
                            Rendered::new(Bytes::new(), Outcome::AuthorizationRequired),
                        )
                    }
                };
                finish(call, tool, &rendered, CacheUse::Off, started);
                return answer;
            }
        },
    };
    let _in_flight = InFlight::enter(&metrics.in_flight);
    let (rendered, cache_use) = match &tool.cache {
        None => (
            execute(endpoint, call, tool, &arguments, user).await,
            CacheUse::Off,
        ),
        Some(policy) => {
            // Without inbound authentication every caller is anonymous, so `caller` scope
            // and `shared` scope key alike.
            let caller: Option<&Arc<str>> = match policy.scope {
                CacheScope::Caller => call.caller.map(|c| &c.cache_key),
                CacheScope::Shared => None,
            };
            let key = CacheKey::new(&tool.name, &arguments, caller);
            let fill = async {
                let rendered = execute(endpoint, call, tool, &arguments, user).await;
                match rendered.keep_for(policy.ttl, policy.scope) {
                    Some(ttl) => Ok(Arc::new(CachedAnswer {
                        fragment: rendered.fragment.clone(),
                        ttl,
                    })),
                    None => Err(rendered),
                }
            };
            match policy.cache.lookup(key, policy.ttl, fill).await {
                (Ok(entry), lookup) => {
                    let rendered = Rendered::new(entry.fragment.clone(), Outcome::Ok);
                    let used = match lookup {
                        Lookup::Hit => CacheUse::Hit,
                        Lookup::SharedHit => CacheUse::SharedHit,
                        Lookup::Miss => CacheUse::Miss,
                    };
                    (rendered, used)
                }
                (Err(shared), _) => (Rendered::clone(&shared), CacheUse::Miss),
            }
        }
    };
    write_result(out, call.id, call.era, &rendered.fragment);
    finish(call, tool, &rendered, cache_use, started);
    Ok(())
}

/// Refuses a call the tool's policy does not allow: 403 with an `insufficient_scope`
/// challenge (MCP authorization, "Runtime Insufficient Scope Errors"), counted and logged.
fn deny(call: &Call<'_>, tool: &Tool, needed: &[String]) -> RpcError {
    tool.metrics.outcome(Outcome::Denied);
    tracing::info!(
        target: "toolgate::call",
        id = call.id.get(),
        tool = %tool.name,
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        client = call.caller.and_then(|c| c.client.as_deref()),
        outcome = Outcome::Denied.as_str(),
        "tool call"
    );
    let message = format!(
        "insufficient scope: tool {} needs the scopes `{}`",
        tool.name,
        needed.join(" ")
    );
    match call.snap.settings().inbound.as_deref() {
        Some(auth) => {
            auth.count_failure(&crate::auth::inbound::AuthError::InsufficientScope(
                needed.to_vec(),
            ));
            let challenge = auth.insufficient_scope_challenge(needed);
            RpcError::new(ErrorKind::InsufficientScope(Box::new(challenge)), message)
        }
        // Scopes need inbound authentication (checked by the config); without it nobody
        // holds any.
        None => RpcError::new(ErrorKind::Refused(http::StatusCode::FORBIDDEN), message),
    }
}

/// The Cedar decision on a call with validated arguments (`policy:`): counted and logged
/// with the deciding policies; in `enforce` mode a deny is a 403 naming them.
fn policy_check(
    call: &Call<'_>,
    tool: &Tool,
    policies: &crate::policy::Policies,
    arguments: &Value,
    registry: &crate::metrics::Metrics,
) -> Result<(), RpcError> {
    use crate::policy::PolicyMode;
    let verdict = policies.decide(call.caller, &tool.name, &tool.target, arguments);
    let decision = if verdict.allowed { "allow" } else { "deny" };
    let mode = policies.mode;
    registry
        .policy_decisions
        .with_label_values(&[decision, mode.as_str()])
        .inc();
    let policy_ids = verdict.describe();
    tracing::info!(
        target: "toolgate::policy",
        id = call.id.get(),
        tool = %tool.name,
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        decision,
        mode = mode.as_str(),
        policies = %policy_ids,
        "{}",
        match (verdict.allowed, mode) {
            (true, _) => "policy allows",
            (false, PolicyMode::Enforce) => "policy denies",
            (false, PolicyMode::LogOnly) => "policy would deny (log_only: the call proceeds)",
        }
    );
    if verdict.allowed || mode == PolicyMode::LogOnly {
        return Ok(());
    }
    tool.metrics.outcome(Outcome::Denied);
    Err(RpcError::new(
        ErrorKind::Refused(http::StatusCode::FORBIDDEN),
        format!("denied by policy: {policy_ids}"),
    )
    .with_data(serde_json::json!({ "tool": &*tool.name, "policies": verdict.policies })))
}

/// Refuses a call a rate limit does not admit: 429 with `Retry-After` and a JSON-RPC error
/// saying which budget and limit, counted and logged.
fn rate_limited(
    call: &Call<'_>,
    tool: &Tool,
    refusal: &crate::ratelimit::Refusal,
    registry: &crate::metrics::Metrics,
    started: Instant,
) -> RpcError {
    use crate::ratelimit::Scope;
    let (scope, limit) = (refusal.scope.as_str(), refusal.limit.as_str());
    tool.metrics.outcome(Outcome::RateLimited);
    tool.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    registry.rate_limited(&tool.target, &tool.name, scope, limit);
    tracing::info!(
        target: "toolgate::call",
        id = call.id.get(),
        tool = %tool.name,
        target_name = %tool.target,
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        client = call.caller.and_then(|c| c.client.as_deref()),
        outcome = Outcome::RateLimited.as_str(),
        scope,
        limit,
        retry_after_ms = refusal.retry_after_ms(),
        "tool call"
    );
    let budget = match refusal.scope {
        Scope::Gateway => "gateway".to_string(),
        Scope::Target => format!("target `{}`", tool.target),
        Scope::Tool => format!("tool `{}`", tool.name),
    };
    let per = if refusal.per_caller {
        "per caller"
    } else {
        "shared by all callers"
    };
    let secs = refusal.retry_after_secs();
    let message = format!(
        "rate limit exceeded for tool `{}` ({budget}, {per}: {}); retry after {secs} s",
        tool.name,
        refusal.describe_limit()
    );
    RpcError::new(ErrorKind::RateLimited { retry_after: secs }, message).with_data(
        serde_json::json!({
            "retryAfterMs": refusal.retry_after_ms(),
            "limit": limit,
            "scope": scope,
        }),
    )
}

/// How a per-user OAuth call ends early.
enum Early {
    /// A JSON-RPC error (the 2025-11-25 URL elicitation).
    Error(RpcError),
    /// A tool result (`isError`), written as usual.
    Result(Bytes, Outcome),
    /// A complete 2026-07-28 `input_required` result object.
    InputRequired(Vec<u8>),
}

/// The key of the gateway's URL elicitation in `inputRequests` / `inputResponses`.
const AUTHORIZE_KEY: &str = "authorize";

/// The user's token for a call to a per-user OAuth target, or how to answer without one:
/// a URL elicitation as the call's revision defines it (2025-11-25: error -32042;
/// 2026-07-28: an `input_required` result, when the client declared URL elicitation), else
/// a tool error carrying the link.
async fn user_credential<'a>(
    endpoint: &McpEndpoint,
    call: &'a Call<'a>,
    tool: &Tool,
    oauth: &'a crate::auth::user_oauth::UserOAuth,
    (input_responses, meta): (Option<&RawValue>, Option<&RawValue>),
) -> Result<UserCall<'a>, Early> {
    use crate::auth::user_oauth::UserTokenError;
    let fail = |m: String| {
        Early::Result(
            error_fragment(&format!("Tool {} failed: {m}", tool.name)),
            Outcome::UpstreamError,
        )
    };
    let Some(auth) = call.snap.settings().user_auth.as_deref() else {
        return Err(fail("per-user OAuth is not set up".into()));
    };
    let Some(user) = call.caller.and_then(crate::auth::user_oauth::user_of) else {
        return Err(fail(format!(
            "target `{}` acts for the signed-in user, and the caller's token names none (no `iss` and `sub`)",
            tool.target
        )));
    };
    match oauth.access_for(&endpoint.http, &auth.vault, &user).await {
        Ok(access) => {
            return Ok(UserCall {
                oauth,
                vault: &auth.vault,
                user,
                access,
            });
        }
        Err(UserTokenError::Failed(m)) => return Err(fail(m)),
        Err(UserTokenError::NotConnected) => {}
    }
    if call.era == Era::Modern && declined(input_responses) {
        return Err(Early::Result(
            error_fragment(&format!(
                "Tool {} was not called: the user declined to authorize `{}`",
                tool.name, tool.target
            )),
            Outcome::AuthorizationRequired,
        ));
    }
    let elicitation = auth.elicitation(oauth, &user, &call.snap.settings().public_base);
    tracing::info!(
        target: "toolgate::call",
        id = call.id.get(),
        tool = %tool.name,
        target_name = %tool.target,
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        elicitation = %elicitation.id,
        "authorization required: URL elicitation sent"
    );
    let fallback = || {
        Early::Result(
            error_fragment(&format!(
                "Tool {} needs your authorization first: {} Open {} in a browser, then call the tool again.",
                tool.name, elicitation.message, elicitation.url
            )),
            Outcome::AuthorizationRequired,
        )
    };
    match call.era {
        Era::Modern => {
            // 2026-07-28: a request that needs a capability its client did not declare gets
            // -32021 (HTTP 400). The message still gives the link, for a person reading it.
            if !supports_url_elicitation(meta) {
                return Err(Early::Error(
                    RpcError::new(
                        ErrorKind::MissingCapability,
                        format!(
                            "Tool {} needs the user to authorize `{}` through URL elicitation, which this client did not declare (clientCapabilities.elicitation.url). {} Open {} in a browser, then call the tool again.",
                            tool.name, tool.target, elicitation.message, elicitation.url
                        ),
                    )
                    .with_data(serde_json::json!({
                        "requiredCapabilities": {"elicitation": {"url": {}}}
                    })),
                ));
            }
            let body = serde_json::json!({
                "resultType": "input_required",
                "inputRequests": {
                    AUTHORIZE_KEY: {
                        "method": "elicitation/create",
                        "params": {
                            "mode": "url",
                            "elicitationId": elicitation.id,
                            "message": elicitation.message,
                            "url": elicitation.url,
                        }
                    }
                }
            });
            Err(Early::InputRequired(
                serde_json::to_vec(&body).unwrap_or_default(),
            ))
        }
        Era::Legacy => {
            // URL elicitation came with 2025-11-25; older revisions have no way to ask. A
            // request without the header (and no session to supply it) is 2025-03-26.
            if header_str(call.headers, "mcp-protocol-version") != Some("2025-11-25") {
                return Err(fallback());
            }
            Err(Early::Error(
                RpcError::new(
                    ErrorKind::UrlElicitationRequired,
                    format!(
                        "This request requires more information: the user must authorize `{}` (open the URL in data.elicitations, then call again).",
                        tool.target
                    ),
                )
                .with_data(serde_json::json!({
                    "elicitations": [{
                        "mode": "url",
                        "elicitationId": elicitation.id,
                        "url": elicitation.url,
                        "message": elicitation.message,
                    }]
                })),
            ))
        }
    }
}

/// Whether the client's `inputResponses` answer the gateway's elicitation with `decline` or
/// `cancel`.
fn declined(responses: Option<&RawValue>) -> bool {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        action: Option<String>,
    }
    responses
        .and_then(|r| {
            serde_json::from_str::<std::collections::HashMap<String, Answer>>(r.get()).ok()
        })
        .and_then(|mut m| m.remove(AUTHORIZE_KEY))
        .and_then(|a| a.action)
        .is_some_and(|a| a == "decline" || a == "cancel")
}

/// Whether a 2026-07-28 request's client capabilities include URL mode elicitation.
fn supports_url_elicitation(meta: Option<&RawValue>) -> bool {
    meta.and_then(|m| serde_json::from_str::<Value>(m.get()).ok())
        .and_then(|m| {
            m.get("io.modelcontextprotocol/clientCapabilities")?
                .get("elicitation")?
                .get("url")
                .map(Value::is_object)
        })
        .unwrap_or(false)
}

/// Calls the tool's upstream through its binding and renders the result content; the
/// upstream's time and status are counted here, the same for every target kind.
async fn execute(
    endpoint: &McpEndpoint,
    call: &Call<'_>,
    tool: &Tool,
    arguments: &Value,
    user: Option<&UserCall<'_>>,
) -> Rendered {
    let Value::Object(arguments) = arguments else {
        return Rendered::new(
            error_fragment("arguments must be an object"),
            Outcome::InvalidArguments,
        );
    };
    let ctx = CallContext {
        request_id: call.id,
        tool: &tool.name,
        session_id: header_str(call.headers, "mcp-session-id"),
        caller: call.caller,
        span: call.span,
        http: &endpoint.http,
        wraps: tool.output.wrap.is_some(),
        progress: call.progress,
        user,
    };
    let sent = Instant::now();
    let result = tool.binding.execute(&ctx, arguments).await;
    let upstream = sent.elapsed();
    tool.metrics
        .upstream_duration
        .observe(upstream.as_secs_f64());
    let mut rendered = match result {
        Ok(Answer::Http(answer)) => rendered_answer(tool, &answer),
        Ok(Answer::Mcp(result)) => rendered_result(tool, &result),
        Err(failure) => {
            if let Some(status) = failure.status {
                tool.metrics.status(status);
            }
            let mut r = Rendered::new(
                error_fragment(&format!("Tool {} failed: {}", tool.name, failure.message)),
                failure.outcome,
            );
            r.status = failure.status;
            r
        }
    };
    rendered.upstream = Some(upstream);
    rendered
}

/// Counts a successful upstream answer in the tool's metrics and renders it, keeping what
/// the cache needs to know (`Cache-Control`, truncation).
fn rendered_answer(tool: &Tool, answer: &UpstreamAnswer) -> Rendered {
    tool.metrics.status(answer.status);
    tool.metrics
        .response_bytes
        .observe(answer.body.len() as f64);
    let (fragment, outcome) = answer_fragment(tool, answer);
    let mut r = Rendered::new(fragment, outcome);
    r.status = Some(answer.status);
    r.directives = answer.cache;
    r.truncated = answer.truncated;
    r
}

/// Renders the `CallToolResult` of an upstream MCP server as it is (its content,
/// `structuredContent`, `isError`, `_meta`), without its `resultType` (the gateway writes its
/// own, in the client's revision). A tool with an `outputSchema` still gets conforming
/// `structuredContent` or `isError`, as every tool does.
fn rendered_result(tool: &Tool, result: &RawValue) -> Rendered {
    tool.metrics
        .response_bytes
        .observe(result.get().len() as f64);
    let members: indexmap::IndexMap<Cow<'_, str>, &RawValue> = match serde_json::from_str(
        result.get(),
    ) {
        Ok(m) => m,
        Err(e) => {
            return Rendered::new(
                error_fragment(&format!(
                    "Tool {} failed: the upstream MCP server answered a result that is not a JSON object: {e}",
                    tool.name
                )),
                Outcome::UpstreamError,
            );
        }
    };
    let is_error = members.get("isError").is_some_and(|v| v.get() == "true");
    if !is_error && let Some(schema) = tool.output_schema() {
        let problem = match members.get("structuredContent") {
            None => Some("its result has no structuredContent".to_string()),
            Some(raw) => match DocValue::parse_str(raw.get()) {
                Ok(value) if schema.is_valid(&value) => None,
                Ok(value) => Some(format!(
                    "its structuredContent does not match the tool's outputSchema ({})",
                    schema
                        .iter_errors(&value)
                        .next()
                        .map(|e| format!("at {}: {e}", e.instance_path()))
                        .unwrap_or_default()
                )),
                Err(e) => Some(format!("its structuredContent is not JSON: {e}")),
            },
        };
        if let Some(problem) = problem {
            let mut out = Vec::with_capacity(result.get().len() + 128);
            out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
            jsonrpc::write_json_str(
                &mut out,
                &format!(
                    "Tool {} answered, but {problem}. Its content follows.",
                    tool.name
                ),
            );
            out.push(b'}');
            if let Some(content) = members.get("content") {
                let inner = content.get().trim();
                let inner = inner
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or("")
                    .trim();
                if !inner.is_empty() {
                    out.push(b',');
                    out.extend_from_slice(inner.as_bytes());
                }
            }
            out.extend_from_slice(b"],\"isError\":true}");
            return Rendered::new(Bytes::from(out), Outcome::InvalidAnswer);
        }
    }
    let mut out = Vec::with_capacity(result.get().len() + 32);
    if !members.contains_key("content") {
        out.extend_from_slice(b"\"content\":[],");
    }
    for (name, value) in &members {
        if name == "resultType" {
            continue;
        }
        jsonrpc::write_json_str(&mut out, name);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    if out.last() == Some(&b',') {
        out.pop();
    }
    out.push(b'}');
    let outcome = if is_error {
        Outcome::ToolError
    } else {
        Outcome::Ok
    };
    Rendered::new(Bytes::from(out), outcome)
}

/// A rendered tool result: the members of the result object after `resultType`.
#[derive(Clone)]
struct Rendered {
    fragment: Bytes,
    outcome: Outcome,
    status: Option<u16>,
    upstream: Option<std::time::Duration>,
    directives: CacheDirectives,
    truncated: bool,
}

impl Rendered {
    fn new(fragment: Bytes, outcome: Outcome) -> Self {
        Self {
            fragment,
            outcome,
            status: None,
            upstream: None,
            directives: CacheDirectives::default(),
            truncated: false,
        }
    }

    /// How long this answer may be cached, if at all: only complete successful answers
    /// the upstream did not mark `no-store` (or `private` for a shared cache), for the
    /// configured TTL or the upstream's shorter `max-age`.
    fn keep_for(&self, ttl: std::time::Duration, scope: CacheScope) -> Option<std::time::Duration> {
        if self.outcome != Outcome::Ok || self.truncated || self.directives.no_store {
            return None;
        }
        if self.directives.private && scope == CacheScope::Shared {
            return None;
        }
        let ttl = self.directives.max_age.map_or(ttl, |m| m.min(ttl));
        (!ttl.is_zero()).then_some(ttl)
    }
}

/// Whether and how the cache took part in a call (for logs and metrics).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CacheUse {
    Off,
    Hit,
    /// Served from the shared tier (Redis): a hit for the caller.
    SharedHit,
    Miss,
}

/// Counts a call in progress for as long as it lives (also when the client goes away and
/// the call's future is dropped).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Records a finished call: metrics and one log line.
fn finish(call: &Call<'_>, tool: &Tool, rendered: &Rendered, cache: CacheUse, started: Instant) {
    let m = &tool.metrics;
    let elapsed = started.elapsed();
    m.duration.observe(elapsed.as_secs_f64());
    m.outcome(rendered.outcome);
    match cache {
        CacheUse::Hit | CacheUse::SharedHit => m.cache_hit.inc(),
        CacheUse::Miss => m.cache_miss.inc(),
        CacheUse::Off => {}
    }
    tracing::info!(
        target: "toolgate::call",
        id = call.id.get(),
        tool = %tool.name,
        target_name = %tool.target,
        sub = call.caller.and_then(|c| c.subject.as_deref()),
        client = call.caller.and_then(|c| c.client.as_deref()),
        outcome = rendered.outcome.as_str(),
        status = rendered.status,
        duration_us = elapsed.as_micros() as u64,
        upstream_us = rendered.upstream.map(|d| d.as_micros() as u64),
        cache = match cache {
            CacheUse::Off => "off",
            CacheUse::Hit => "hit",
            CacheUse::SharedHit => "shared_hit",
            CacheUse::Miss => "miss",
        },
        "tool call"
    );
}

/// Writes a complete `tools/call` response around a rendered fragment.
/// The answer to a call its client cancelled (which the client ignores, but the POST needs
/// one).
pub(super) fn write_cancelled(out: &mut Vec<u8>, id: &RawValue, era: Era) {
    let fragment = error_fragment("the call was cancelled by its client (notifications/cancelled)");
    write_result(out, id, era, &fragment);
}

fn write_result(out: &mut Vec<u8>, id: &RawValue, era: Era, fragment: &[u8]) {
    out.reserve(fragment.len() + 64);
    jsonrpc::begin_result(out, id);
    out.push(b'{');
    write_result_type(out, era);
    out.extend_from_slice(fragment);
    jsonrpc::end_result(out);
}

/// Checks `Mcp-Name` against `params.name` (2026-07-28), decoding the base64 sentinel form.
fn check_name_header(call: &Call<'_>, name: &str) -> Result<(), RpcError> {
    let Some(header) = header_str(call.headers, "mcp-name") else {
        return Err(RpcError::header_mismatch(
            "the Mcp-Name header is required for tools/call",
        ));
    };
    let decoded: Cow<str> = match header
        .strip_prefix("=?base64?")
        .and_then(|h| h.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = STANDARD
                .decode(encoded)
                .map_err(|_| RpcError::header_mismatch("the Mcp-Name header has invalid base64"))?;
            Cow::Owned(
                String::from_utf8(bytes)
                    .map_err(|_| RpcError::header_mismatch("the Mcp-Name header is not UTF-8"))?,
            )
        }
        None => Cow::Borrowed(header),
    };
    if decoded != name {
        return Err(RpcError::header_mismatch(format!(
            "Header mismatch: Mcp-Name header value '{decoded}' does not match body value '{name}'"
        )));
    }
    Ok(())
}

/// Lists each schema violation with its JSON pointer, for the model to correct its call.
fn validation_report(tool: &Tool, arguments: &Value) -> String {
    let mut text = format!("Invalid arguments for tool {}:", tool.name);
    let mut count = 0;
    for error in tool.validator.iter_errors(arguments) {
        count += 1;
        if count <= MAX_LISTED_PROBLEMS {
            let pointer = error.instance_path().to_string();
            let at = if pointer.is_empty() {
                "(root)".to_string()
            } else {
                pointer
            };
            text.push_str(&format!("\n- at {at}: {error}"));
        }
    }
    if count > MAX_LISTED_PROBLEMS {
        text.push_str(&format!("\n- ... and {} more", count - MAX_LISTED_PROBLEMS));
    }
    text.push_str("\nThe upstream was not called. Fix the arguments to match the tool's inputSchema and call again.");
    text
}

/// Writes the complete response of a `tools/call` whose upstream answered `answer`.
pub(super) fn write_answer(
    out: &mut Vec<u8>,
    id: &RawValue,
    era: Era,
    tool: &Tool,
    answer: &UpstreamAnswer,
) {
    write_result(out, id, era, &answer_fragment(tool, answer).0);
}

/// The fragment of an `isError` result with one text block.
fn error_fragment(text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 64);
    out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
    jsonrpc::write_json_str(&mut out, text);
    out.extend_from_slice(b"}],\"isError\":true}");
    Bytes::from(out)
}

/// Maps a successful upstream answer to the fragment of a result: JSON gives
/// `structuredContent` plus a text block with the same JSON; images and audio give their
/// content types; other binary gives an embedded resource; anything else is text. For a
/// tool with an `outputSchema`, the result carries `structuredContent` that conforms to it,
/// or is `isError` with the reason and the answer as text (never neither: strict clients
/// refuse a result without the structured content their schema promises).
fn answer_fragment(tool: &Tool, answer: &UpstreamAnswer) -> (Bytes, Outcome) {
    if let Some(schema) = tool.output_schema() {
        return match structured(tool, schema, answer) {
            Ok(()) => (content_fragment(tool, answer, true), Outcome::Ok),
            Err(reason) => (
                invalid_answer_fragment(tool, answer, &reason),
                Outcome::InvalidAnswer,
            ),
        };
    }
    let json = answer.is_json && crate::targets::valid_json(&answer.body);
    (content_fragment(tool, answer, json), Outcome::Ok)
}

/// Checks that the answer gives `structuredContent` conforming to the tool's output
/// schema; the reason when it does not.
fn structured(
    tool: &Tool,
    schema: &jsonschema::Validator<Doc>,
    answer: &UpstreamAnswer,
) -> Result<(), String> {
    if answer.truncated {
        return Err(format!(
            "the answer was cut at {} bytes (the gateway's response size limit), so it is not the complete JSON the tool's outputSchema describes",
            answer.body.len()
        ));
    }
    if answer.body.is_empty() {
        return Err(format!(
            "the upstream answered HTTP {} with no content",
            answer.status
        ));
    }
    if !answer.is_json {
        let media = if answer.media_type.is_empty() {
            "an untyped body"
        } else {
            &answer.media_type
        };
        return Err(format!("the upstream answered {media} instead of JSON"));
    }
    // Read in place (borrowed strings, members in vectors): the validator does not need a
    // `Value`, whose maps would allocate and hash every key.
    let value = DocValue::parse(&answer.body).map_err(|e| {
        format!(
            "the upstream answered {} that is not valid JSON ({e})",
            answer.media_type
        )
    })?;
    let value = match &tool.output.wrap {
        Some(key) => DocValue::wrapped(key, value),
        None => value,
    };
    if schema.is_valid(&value) {
        return Ok(());
    }
    let mut problems = schema.iter_errors(&value).map(|e| {
        let at = e.instance_path().to_string();
        format!(
            "at {}: {e}",
            if at.is_empty() { "(root)".into() } else { at }
        )
    });
    let first = problems.next().unwrap_or_default();
    let more = problems.count();
    Err(if more == 0 {
        format!("the answer does not match the tool's outputSchema ({first})")
    } else {
        format!("the answer does not match the tool's outputSchema ({first}; and {more} more)")
    })
}

/// The `isError` result of an answer that cannot give conforming `structuredContent`: the
/// reason, then the answer itself as text, so that the model still sees what came back.
fn invalid_answer_fragment(tool: &Tool, answer: &UpstreamAnswer, reason: &str) -> Bytes {
    let mut out = Vec::with_capacity(answer.body.len() + reason.len() + 128);
    out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
    jsonrpc::write_json_str(
        &mut out,
        &format!(
            "Tool {} answered, but {reason}. The answer follows as text.",
            tool.name
        ),
    );
    out.push(b'}');
    if !answer.body.is_empty() && binary_kind(&answer.media_type).is_none() {
        out.extend_from_slice(b",{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(&mut out, &String::from_utf8_lossy(&answer.body));
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"isError\":true}");
    Bytes::from(out)
}

/// The content of a successful answer; `json`: the body is valid JSON, given as a text
/// block and as `structuredContent`.
fn content_fragment(tool: &Tool, answer: &UpstreamAnswer, json: bool) -> Bytes {
    let mut out = Vec::with_capacity(answer.body.len() * 2 + 128);
    out.extend_from_slice(b"\"content\":[");
    let media = &*answer.media_type;
    if answer.body.is_empty() {
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(&mut out, &format!("HTTP {} (no content)", answer.status));
        out.push(b'}');
    } else if json {
        // Valid JSON, so valid UTF-8.
        let text = std::str::from_utf8(&answer.body).unwrap_or_default();
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(&mut out, text);
        out.extend_from_slice(b"}]");
        write_structured(&mut out, &tool.output, text);
        out.extend_from_slice(b",\"isError\":false}");
        return Bytes::from(out);
    } else if let Some(kind) = binary_kind(media) {
        let data = STANDARD.encode(&answer.body);
        match kind {
            BinaryKind::Image | BinaryKind::Audio => {
                out.extend_from_slice(if kind == BinaryKind::Image {
                    b"{\"type\":\"image\",\"data\":"
                } else {
                    b"{\"type\":\"audio\",\"data\":"
                });
                jsonrpc::write_json_str(&mut out, &data);
                out.extend_from_slice(b",\"mimeType\":");
                jsonrpc::write_json_str(&mut out, media);
                out.push(b'}');
            }
            BinaryKind::Other => {
                out.extend_from_slice(b"{\"type\":\"resource\",\"resource\":{\"uri\":");
                jsonrpc::write_json_str(&mut out, &format!("toolgate://{}/answer", tool.name));
                out.extend_from_slice(b",\"mimeType\":");
                jsonrpc::write_json_str(&mut out, media);
                out.extend_from_slice(b",\"blob\":");
                jsonrpc::write_json_str(&mut out, &data);
                out.extend_from_slice(b"}}");
            }
        }
    } else {
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(&mut out, &String::from_utf8_lossy(&answer.body));
        out.push(b'}');
    }
    if answer.truncated {
        out.extend_from_slice(b",{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(
            &mut out,
            &format!(
                "[The answer was cut at {} bytes: it exceeded the gateway's response size limit.]",
                answer.body.len()
            ),
        );
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"isError\":false}");
    Bytes::from(out)
}

/// Writes `,"structuredContent":...` for a JSON answer when it can conform: wrapped when
/// the tool wraps, as is when it is an object.
fn write_structured(out: &mut Vec<u8>, output: &OutputMapping, json: &str) {
    if let Some(key) = &output.wrap {
        out.extend_from_slice(b",\"structuredContent\":{");
        jsonrpc::write_json_str(out, key);
        out.push(b':');
        out.extend_from_slice(json.as_bytes());
        out.push(b'}');
    } else if json.trim_start().starts_with('{') {
        out.extend_from_slice(b",\"structuredContent\":");
        out.extend_from_slice(json.as_bytes());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BinaryKind {
    Image,
    Audio,
    Other,
}

/// Whether a media type is binary (not text-like), and which MCP content it becomes.
fn binary_kind(media: &str) -> Option<BinaryKind> {
    if media.starts_with("image/") && media != "image/svg+xml" {
        return Some(BinaryKind::Image);
    }
    if media.starts_with("audio/") {
        return Some(BinaryKind::Audio);
    }
    let textual = media.is_empty()
        || media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/yaml"
                | "application/x-yaml"
                | "application/x-www-form-urlencoded"
                | "application/problem+json"
                | "application/graphql"
                | "image/svg+xml"
        );
    (!textual).then_some(BinaryKind::Other)
}
