//! Rate limits of `tools/call` (`gateway.rate_limit`, `targets[].rate_limit`,
//! `operations.<id>.rate_limit`), proven by what the upstream receives. Rates are tiny
//! (one request per 1000 s), so no budget refills during a test: nothing depends on timing.

use std::sync::Arc;

use crate::auth::indent;
use crate::support::idp::Idp;
use crate::support::redis::Redis;
use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};
use http::HeaderMap;
use serde_json::{Value, json};

const RESOURCE: &str = "https://gateway.test/mcp";

fn pets(release: Option<Arc<tokio::sync::Notify>>) -> impl Fn(&Recorded) -> Answer + Send + Sync {
    move |r: &Recorded| match (r.method.as_str(), r.path()) {
        (_, p) if p.ends_with("/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        (_, p) if p.contains("/pets/") => match &release {
            Some(n) => Answer::After(n.clone(), json!({"id": 1, "name": "Rex"})),
            None => Answer::Json(200, json!({"id": 1, "name": "Rex"})),
        },
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

/// A gateway with `targets` (YAML list items, `{base}` replaced by the upstream URL) and
/// `top` (top-level YAML).
async fn gateway(upstream: &Upstream, top: &str, targets: &str) -> Gateway {
    let yaml = format!(
        "{top}\ntargets:\n{}\n",
        indent(&targets.replace("{base}", &upstream.url()), 2)
    );
    Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await
}

fn arguments(tool: &str) -> Value {
    if tool.ends_with("getPet") {
        json!({"petId": "1"})
    } else if tool.ends_with("createPet") {
        json!({"name": "Bo"})
    } else {
        json!({})
    }
}

/// One 2026-07-28 `tools/call`, optionally with a bearer token.
async fn call(gateway: &Gateway, token: Option<&str>, tool: &str) -> (u16, HeaderMap, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments(tool), "_meta": modern_meta()}});
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = modern_headers("tools/call", Some(tool));
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    post_raw(&gateway.url(), &headers, body.to_string()).await
}

/// One handshake-era `tools/call` (no session: the gateway is stateless).
async fn legacy_call(gateway: &Gateway, tool: &str) -> (u16, HeaderMap, Value) {
    legacy(
        gateway,
        None,
        json!({"jsonrpc": "2.0", "id": "legacy-1", "method": "tools/call",
            "params": {"name": tool, "arguments": arguments(tool)}}),
    )
    .await
}

/// One handshake-era message, optionally with a bearer token.
async fn legacy(gateway: &Gateway, token: Option<&str>, body: Value) -> (u16, HeaderMap, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    post_raw(&gateway.url(), &headers, body.to_string()).await
}

fn retry_after(headers: &HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts a 429 refusal by `scope`'s `limit` and returns its `Retry-After` (seconds).
fn assert_refused(reply: &(u16, HeaderMap, Value), scope: &str, limit: &str) -> u64 {
    let (status, headers, body) = reply;
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["error"]["code"], -32029, "{body}");
    assert_eq!(body["error"]["data"]["scope"], scope, "{body}");
    assert_eq!(body["error"]["data"]["limit"], limit, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("rate limit exceeded for tool `"),
        "{message}"
    );
    let secs = retry_after(headers);
    assert!(secs >= 1);
    assert!(
        message.ends_with(&format!("retry after {secs} s")),
        "{message}"
    );
    let ms = body["error"]["data"]["retryAfterMs"].as_u64().unwrap();
    assert!(
        ms <= secs * 1000 && ms + 1000 > secs * 1000,
        "{ms} ms vs {secs} s"
    );
    secs
}

fn ok(reply: &(u16, HeaderMap, Value)) {
    assert_eq!(reply.0, 200, "{}", reply.2);
    assert_eq!(reply.2["result"]["isError"], false, "{}", reply.2);
}

/// The value of one sample line of `/metrics` (0 when absent).
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_tool_budget_passes_its_burst_then_refuses_in_both_eras() {
    let upstream = Upstream::start(pets(None)).await;
    let gateway = gateway(
        &upstream,
        "",
        r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  operations:
    listPets: { rate_limit: { requests_per_second: 0.001, burst: 3 } }
- name: other
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }"#,
    )
    .await;
    for _ in 0..3 {
        ok(&call(&gateway, None, "api___listPets").await);
    }
    let refused = call(&gateway, None, "api___listPets").await;
    let secs = assert_refused(&refused, "tool", "requests_per_second");
    // One request per 1000 s: the next one is about 1000 s away.
    assert!((990..=1000).contains(&secs), "{secs}");
    let message = refused.2["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "(tool `api___listPets`, shared by all callers: 0.001 requests per second, burst 3)"
        ),
        "{message}"
    );
    assert_eq!(refused.2["id"], 7);
    // The handshake era gets the same refusal, with its own id.
    let legacy = legacy_call(&gateway, "api___listPets").await;
    assert_refused(&legacy, "tool", "requests_per_second");
    assert_eq!(legacy.2["id"], "legacy-1");
    assert_eq!(
        upstream.count(),
        3,
        "refused calls never reach the upstream"
    );

    // Other tools of the target, and the same tool of another target, have no budget.
    ok(&call(&gateway, None, "api___getPet").await);
    ok(&call(&gateway, None, "other___listPets").await);
    ok(&legacy_call(&gateway, "other___listPets").await);
    assert_eq!(upstream.count(), 6);

    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_rate_limited_total{limit="requests_per_second",scope="tool",target="api",tool="api___listPets"}"#
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_tool_calls_total{outcome="rate_limited",target="api",tool="api___listPets"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_tool_calls_total{outcome="ok",target="api",tool="api___listPets"}"#
        ),
        3.0
    );
    assert!(!metrics.contains(
        r#"toolgate_rate_limited_total{limit="requests_per_second",scope="tool",target="other""#
    ));
}

#[tokio::test]
async fn a_target_budget_is_shared_by_its_tools_and_a_refusal_takes_nothing() {
    let upstream = Upstream::start(pets(None)).await;
    let gateway = gateway(
        &upstream,
        "",
        r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  rate_limit: { requests_per_second: 0.001, burst: 3 }
  operations:
    listPets: { rate_limit: { requests_per_second: 0.001, burst: 1 } }
- name: spare
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }"#,
    )
    .await;
    ok(&call(&gateway, None, "api___listPets").await);
    // Refused by the tool's budget, after the target's was checked: given back each time.
    for _ in 0..4 {
        assert_refused(
            &call(&gateway, None, "api___listPets").await,
            "tool",
            "requests_per_second",
        );
    }
    // So the target still has two of its three requests, for any of its tools.
    ok(&call(&gateway, None, "api___getPet").await);
    ok(&call(&gateway, None, "api___getPet").await);
    let refused = call(&gateway, None, "api___getPet").await;
    assert_refused(&refused, "target", "requests_per_second");
    let message = refused.2["error"]["message"].as_str().unwrap();
    assert!(
        message
            .contains("(target `api`, shared by all callers: 0.001 requests per second, burst 3)"),
        "{message}"
    );
    assert_refused(
        &call(&gateway, None, "api___createPet").await,
        "target",
        "requests_per_second",
    );
    assert_eq!(upstream.count(), 3);
    ok(&call(&gateway, None, "spare___getPet").await);
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn per_caller_budgets_are_separate_and_per_target_ones_shared() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets(None)).await;
    let inbound = format!(
        "inbound:\n  resource: {RESOURCE}\n  jwt:\n    discovery_url: {}\n",
        idp.discovery_url()
    );
    let gateway = gateway(
        &upstream,
        &inbound,
        r#"- name: mine
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  rate_limit: { requests_per_second: 0.001, burst: 2, per: caller }
- name: ours
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  rate_limit: { requests_per_second: 0.001, burst: 2 }"#,
    )
    .await;
    let one = idp.token("agent-1", RESOURCE, "").await;
    let two = idp.token("agent-2", RESOURCE, "").await;
    for token in [&one, &two] {
        ok(&call(&gateway, Some(token), "mine___listPets").await);
        ok(&call(&gateway, Some(token), "mine___getPet").await);
        let refused = call(&gateway, Some(token), "mine___listPets").await;
        assert_refused(&refused, "target", "requests_per_second");
        let message = refused.2["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("(target `mine`, per caller: "),
            "{message}"
        );
    }
    ok(&call(&gateway, Some(&one), "ours___listPets").await);
    ok(&call(&gateway, Some(&two), "ours___listPets").await);
    for token in [&one, &two] {
        assert_refused(
            &call(&gateway, Some(token), "ours___getPet").await,
            "target",
            "requests_per_second",
        );
    }
    assert_eq!(upstream.count(), 6);

    // `gateway.rate_limit`: each caller's budget across every tool.
    let upstream = Upstream::start(pets(None)).await;
    let gateway = crate::rate_limits::gateway(
        &upstream,
        &format!("{inbound}gateway:\n  rate_limit: {{ requests_per_second: 0.001, burst: 2 }}\n"),
        r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
- name: spare
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }"#,
    )
    .await;
    ok(&call(&gateway, Some(&one), "api___listPets").await);
    ok(&call(&gateway, Some(&one), "spare___getPet").await);
    let refused = call(&gateway, Some(&one), "spare___listPets").await;
    assert_refused(&refused, "gateway", "requests_per_second");
    let message = refused.2["error"]["message"].as_str().unwrap();
    assert!(message.contains("(gateway, per caller: "), "{message}");
    ok(&call(&gateway, Some(&two), "spare___listPets").await);
    assert_eq!(upstream.count(), 3);
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_rate_limited_total{limit="requests_per_second",scope="gateway",target="spare",tool="spare___listPets"}"#
        ),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn concurrent_calls_past_the_limit_are_refused_at_once_and_slots_come_back() {
    let release = Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::start(pets(Some(release.clone()))).await;
    let gateway = Arc::new(
        gateway(
            &upstream,
            "",
            r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  rate_limit: { concurrent: 2 }"#,
        )
        .await,
    );
    let held: Vec<_> = (0..2)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move { call(&gateway, None, "api___getPet").await })
        })
        .collect();
    upstream.wait_for(2).await;
    // Both slots are taken: a third call is refused now, not queued.
    let refused = call(&gateway, None, "api___listPets").await;
    assert_eq!(assert_refused(&refused, "target", "concurrent"), 1);
    let message = refused.2["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("shared by all callers: 2 concurrent calls"),
        "{message}"
    );
    assert_refused(
        &legacy_call(&gateway, "api___listPets").await,
        "target",
        "concurrent",
    );
    assert_eq!(upstream.count(), 2);
    release.notify_waiters();
    for call in held {
        ok(&call.await.unwrap());
    }
    // The finished calls gave their slots back.
    ok(&call(&gateway, None, "api___listPets").await);
    ok(&call(&gateway, None, "api___listPets").await);
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            r#"toolgate_rate_limited_total{limit="concurrent",scope="target",target="api",tool="api___listPets"}"#
        ),
        2.0,
        "{metrics}"
    );
}

/// A call cancelled by its client (`notifications/cancelled`, handshake era) gives its
/// concurrency slot back at once, while its upstream request is still held.
#[tokio::test]
async fn a_cancelled_call_gives_its_concurrency_slot_back() {
    let idp = Idp::start().await;
    let release = Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::start(pets(Some(release.clone()))).await;
    let inbound = format!(
        "inbound:\n  resource: {RESOURCE}\n  jwt:\n    discovery_url: {}\n",
        idp.discovery_url()
    );
    let gateway = Arc::new(
        gateway(
            &upstream,
            &inbound,
            r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  rate_limit: { concurrent: 1, per: caller }"#,
        )
        .await,
    );
    let token = idp.token("agent-1", RESOURCE, "").await;
    let other = idp.token("agent-2", RESOURCE, "").await;
    let held = {
        let (gateway, token) = (gateway.clone(), token.clone());
        tokio::spawn(async move {
            legacy(
                &gateway,
                Some(&token),
                json!({"jsonrpc": "2.0", "id": "held", "method": "tools/call",
                    "params": {"name": "api___getPet", "arguments": {"petId": "1"}}}),
            )
            .await
        })
    };
    upstream.wait_for(1).await;
    assert_refused(
        &call(&gateway, Some(&token), "api___listPets").await,
        "target",
        "concurrent",
    );
    // Another caller has its own slot.
    ok(&call(&gateway, Some(&other), "api___listPets").await);
    let (status, _, _) = legacy(
        &gateway,
        Some(&token),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": "held", "reason": "test"}}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, body) = held.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["isError"], true, "{body}");
    // The upstream request is still held, but the cancelled call's slot is free again.
    ok(&call(&gateway, Some(&token), "api___listPets").await);
    assert_eq!(upstream.count(), 3);
    release.notify_waiters();
}

/// A reload keeps the budgets of an unchanged target (its tools are reused) and starts a
/// changed one full.
#[tokio::test]
async fn a_reload_keeps_the_budgets_of_unchanged_targets() {
    let upstream = Upstream::start(pets(None)).await;
    let api = |burst: u32| {
        format!(
            "- name: api\n  openapi: {{ spec: testapi.yaml, base_url: \"{base}/api\" }}\n  rate_limit: {{ requests_per_second: 0.001, burst: {burst} }}\n",
            base = upstream.url()
        )
    };
    let gateway = gateway(&upstream, "", &api(1)).await;
    ok(&call(&gateway, None, "api___listPets").await);
    assert_refused(
        &call(&gateway, None, "api___listPets").await,
        "target",
        "requests_per_second",
    );
    // Another target added: `api` is reused, with its spent budget.
    let spare = format!(
        "- name: spare\n  openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
        upstream.url()
    );
    gateway.write(
        "gateway.yaml",
        &format!("targets:\n{}", indent(&format!("{}{spare}", api(1)), 2)),
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["targets_reused"], json!(["api"]), "{report}");
    assert_refused(
        &call(&gateway, None, "api___listPets").await,
        "target",
        "requests_per_second",
    );
    ok(&call(&gateway, None, "spare___listPets").await);
    // Its limit changed: a new, full budget.
    gateway.write(
        "gateway.yaml",
        &format!("targets:\n{}", indent(&format!("{}{spare}", api(2)), 2)),
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    ok(&call(&gateway, None, "api___listPets").await);
    ok(&call(&gateway, None, "api___listPets").await);
    assert_refused(
        &call(&gateway, None, "api___listPets").await,
        "target",
        "requests_per_second",
    );
}

#[tokio::test]
async fn rate_limit_mistakes_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let path = dir.path().join("gateway.yaml");
    let load = |yaml: &str| {
        std::fs::write(&path, yaml).unwrap();
        toolgate::gateway::load(&path).unwrap_err().to_string()
    };
    let error = load(
        "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n    operations:\n      listPets:\n        rate_limit: { requests_per_second: 0 }\n",
    );
    assert!(error.contains("gateway.yaml:6:"), "{error}");
    assert!(
        error.contains(
            "target `api`: operations.listPets.rate_limit.requests_per_second must be a number above 0"
        ),
        "{error}"
    );
    let error = load(
        "gateway:\n  rate_limit: { concurrent: 3, per: target }\ntargets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n",
    );
    assert!(error.contains("gateway.yaml:2:"), "{error}");
    assert!(
        error.contains("gateway.rate_limit is always per caller"),
        "{error}"
    );
    let error = load(
        "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n    rate_limit: { concurrent: 2, queue: 5 }\n",
    );
    assert!(error.contains("gateway.yaml:4:"), "{error}");
    assert!(error.contains("unknown field `queue`"), "{error}");
    // An operation key that matches no tool is a warning, as for every operations setting.
    std::fs::write(
        &path,
        "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n    operations:\n      listPet: { rate_limit: { concurrent: 1 } }\n",
    )
    .unwrap();
    let loaded = toolgate::gateway::load(&path).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("operations.listPet matches no operation")),
        "{:?}",
        loaded.warnings
    );
}

/// A gateway with a tool budget of `requests_per_second: 0.001, burst: 3` on
/// `api___listPets`, the shared cache tier in `redis` and `gateway.rate_limit_store: store`.
async fn replica(upstream: &Upstream, redis: &Redis, store: &str) -> Gateway {
    gateway(
        upstream,
        &format!(
            "gateway:\n  rate_limit_store: {store}\ncache:\n  shared: \"{}\"",
            redis.url()
        ),
        r#"- name: api
  openapi: { spec: testapi.yaml, base_url: "{base}/api" }
  operations:
    listPets: { rate_limit: { requests_per_second: 0.001, burst: 3 } }"#,
    )
    .await
}

async fn store_outcome(gateway: &Gateway, outcome: &str) -> f64 {
    sample(
        &gateway.metrics_text().await,
        &format!("toolgate_rate_limit_store_total{{outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test]
async fn a_shared_store_gives_replicas_one_budget() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(pets(None)).await;
    let a = replica(&upstream, &redis, "shared").await;
    let b = replica(&upstream, &redis, "shared").await;
    ok(&call(&a, None, "api___listPets").await);
    ok(&call(&a, None, "api___listPets").await);
    ok(&call(&b, None, "api___listPets").await);
    for gateway in [&a, &b] {
        let secs = assert_refused(
            &call(gateway, None, "api___listPets").await,
            "tool",
            "requests_per_second",
        );
        assert!((990..=1000).contains(&secs), "{secs}");
    }
    assert_eq!(upstream.count(), 3, "one burst of 3 for both replicas");
    assert_eq!(store_outcome(&a, "shared").await, 3.0);
    assert_eq!(store_outcome(&b, "shared").await, 2.0);
    assert_eq!(store_outcome(&a, "fallback").await, 0.0);

    // One key, hashed, that expires.
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("toolgate:rl:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let hex = keys[0].strip_prefix("toolgate:rl:").unwrap();
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0, "{pttl}");
}

#[tokio::test]
async fn a_local_store_gives_each_replica_its_own_budget() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(pets(None)).await;
    let a = replica(&upstream, &redis, "local").await;
    let b = replica(&upstream, &redis, "local").await;
    ok(&call(&a, None, "api___listPets").await);
    ok(&call(&a, None, "api___listPets").await);
    ok(&call(&b, None, "api___listPets").await);
    // The same sequence as with the shared store, and then each replica has more left.
    ok(&call(&a, None, "api___listPets").await);
    ok(&call(&b, None, "api___listPets").await);
    ok(&call(&b, None, "api___listPets").await);
    for gateway in [&a, &b] {
        assert_refused(
            &call(gateway, None, "api___listPets").await,
            "tool",
            "requests_per_second",
        );
    }
    assert_eq!(upstream.count(), 6, "a burst of 3 per replica");
    assert_eq!(store_outcome(&a, "shared").await, 0.0);
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("toolgate:rl:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_shared_store_that_is_down_falls_back_to_the_local_budget() {
    let mut redis = Redis::start().await;
    let upstream = Upstream::start(pets(None)).await;
    let a = replica(&upstream, &redis, "shared").await;
    ok(&call(&a, None, "api___listPets").await);
    assert_eq!(store_outcome(&a, "shared").await, 1.0);
    redis.stop();
    // The local budget of this replica decides: its own full burst, then the local 429;
    // never another error.
    for _ in 0..3 {
        ok(&call(&a, None, "api___listPets").await);
    }
    for _ in 0..2 {
        assert_refused(
            &call(&a, None, "api___listPets").await,
            "tool",
            "requests_per_second",
        );
    }
    assert_eq!(upstream.count(), 4);
    assert_eq!(store_outcome(&a, "fallback").await, 5.0);
    assert_eq!(store_outcome(&a, "shared").await, 1.0);
}

#[tokio::test]
async fn a_shared_rate_limit_store_needs_cache_shared() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        "gateway:\n  rate_limit_store: shared\ntargets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n",
    )
    .unwrap();
    let error = toolgate::gateway::load(&path).unwrap_err().to_string();
    assert!(error.contains("gateway.yaml"), "{error}");
    assert!(
        error.contains("gateway.rate_limit_store: shared needs cache.shared"),
        "{error}"
    );
    // `local` (the default) needs nothing.
    std::fs::write(
        &path,
        "gateway:\n  rate_limit_store: local\ntargets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n",
    )
    .unwrap();
    toolgate::gateway::load(&path).unwrap();
}
