//! The response cache and the metrics, proven by what the upstream receives and by parsing
//! `/metrics` with a Prometheus text-format parser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};
use serde_json::{Value, json};

fn api(
    release: Option<Arc<tokio::sync::Notify>>,
) -> impl Fn(&Recorded) -> Answer + Send + Sync + 'static {
    move |r: &Recorded| {
        let path = r.path().to_string();
        match (r.method.as_str(), path.as_str()) {
            ("GET", "/api/pets") if r.query().contains("limit=9") => {
                Answer::JsonWith(200, json!([]), vec![("cache-control", "no-store")])
            }
            ("GET", "/api/pets") if r.query().contains("limit=8") => {
                Answer::JsonWith(200, json!([]), vec![("cache-control", "max-age=0")])
            }
            ("GET", "/api/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
            ("GET", p) if p.starts_with("/api/fail/") => {
                Answer::Json(500, json!({"error": "boom"}))
            }
            ("GET", p) if p.starts_with("/api/pets/") => match &release {
                Some(n) => Answer::After(n.clone(), json!({"id": 1, "name": "Rex"})),
                None => Answer::Json(200, json!({"id": 1, "name": "Rex"})),
            },
            ("POST", "/api/pets") => Answer::Json(201, json!({"id": 2, "name": "Bo"})),
            ("GET", "/api/text") => Answer::Raw(200, "text/plain", b"hi".to_vec()),
            _ => Answer::Json(404, json!({"error": "no route"})),
        }
    }
}

async fn start(release: Option<Arc<tokio::sync::Notify>>) -> (Upstream, Gateway) {
    let upstream = Upstream::start(api(release)).await;
    let yaml = format!(
        r#"
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
    cache: {{ ttl: 10m, max_entries: 1000 }}
    operations:
      getText: {{ cache: {{ ttl: 150ms }} }}
      createPet: {{ cache: false }}
"#,
        base = upstream.url()
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
    (upstream, gateway)
}

async fn call(gateway: &Gateway, id: u64, tool: &str, arguments_json: &str) -> Value {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments_json},"_meta":{}}}}}"#,
        modern_meta()
    );
    let (status, _, reply) = post_raw(
        &gateway.url(),
        &modern_headers("tools/call", Some(tool)),
        body,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    reply
}

#[tokio::test]
async fn cache_hits_misses_and_what_is_never_cached() {
    let (upstream, gateway) = start(None).await;
    let first = call(&gateway, 1, "api___listPets", r#"{"limit": 2}"#).await;
    assert_eq!(upstream.count(), 1);
    // Same arguments, other spelling: a hit; the answer is the same, the id is this call's.
    let again = call(&gateway, 2, "api___listPets", r#"{ "limit" : 2.0 }"#).await;
    assert_eq!(upstream.count(), 1);
    assert_eq!(again["id"], 2);
    assert_eq!(again["result"], first["result"]);
    // Other arguments: a miss.
    call(&gateway, 3, "api___listPets", r#"{"limit": 3}"#).await;
    assert_eq!(upstream.count(), 2);
    // Cache-Control: no-store and max-age=0 are obeyed.
    for args in [r#"{"limit": 9}"#, r#"{"limit": 8}"#] {
        call(&gateway, 4, "api___listPets", args).await;
        call(&gateway, 5, "api___listPets", args).await;
    }
    assert_eq!(upstream.count(), 6);
    // Errors are never cached.
    let failed = call(&gateway, 6, "api___failWith", r#"{"code": 500}"#).await;
    assert_eq!(failed["result"]["isError"], true);
    call(&gateway, 7, "api___failWith", r#"{"code": 500}"#).await;
    assert_eq!(upstream.count(), 8);
    // POST is not cached by default, and this one is switched off explicitly too.
    call(&gateway, 8, "api___createPet", r#"{"name": "Bo"}"#).await;
    call(&gateway, 9, "api___createPet", r#"{"name": "Bo"}"#).await;
    assert_eq!(upstream.count(), 10);
    // Invalid arguments never reach the cache or the upstream.
    let invalid = call(&gateway, 10, "api___listPets", r#"{"limit": "many"}"#).await;
    assert_eq!(invalid["result"]["isError"], true);
    assert_eq!(upstream.count(), 10);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (upstream, gateway) = start(None).await;
    call(&gateway, 1, "api___getText", "{}").await;
    assert_eq!(upstream.count(), 1);
    // getText's TTL is 150ms: within a bounded wait, a call goes upstream again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.count() < 2 {
        assert!(Instant::now() < deadline, "the entry never expired");
        let reply = call(&gateway, 2, "api___getText", "{}").await;
        assert_eq!(reply["result"]["content"][0]["text"], "hi");
        tokio::task::yield_now().await;
    }
}

fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match &sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => {
            buckets.iter().map(|b| b.count).fold(0.0, f64::max)
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn scrape(gateway: &Gateway) -> prometheus_parse::Scrape {
    let text = gateway.metrics_text().await;
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_call_and_metrics_add_up() {
    let release = Arc::new(tokio::sync::Notify::new());
    let (upstream, gateway) = start(Some(release.clone())).await;
    let gateway = Arc::new(gateway);
    let mut calls = Vec::new();
    for i in 0..8 {
        let gateway = gateway.clone();
        calls.push(tokio::spawn(async move {
            call(&gateway, i, "api___getPet", r#"{"petId": "1"}"#).await
        }));
    }
    // Wait until all eight are inside the gateway (the in-flight gauge), then let the
    // upstream answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(&gateway).await;
        if metric(
            &s,
            "toolgate_tool_calls_in_flight",
            &[("tool", "api___getPet")],
        ) == 8.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "calls never arrived");
        tokio::task::yield_now().await;
    }
    release.notify_one();
    for c in calls {
        let reply = c.await.unwrap();
        assert_eq!(reply["result"]["structuredContent"]["name"], "Rex");
    }
    assert_eq!(
        upstream.count(),
        1,
        "single flight: one upstream call for eight concurrent misses"
    );

    // A known sequence on top: one invalid call, one upstream 500, one 404 route.
    call(&gateway, 20, "api___getPet", r#"{}"#).await;
    call(&gateway, 21, "api___failWith", r#"{"code": 500}"#).await;
    let s = scrape(&gateway).await;
    let calls = |tool: &str, outcome: &str| {
        metric(
            &s,
            "toolgate_tool_calls_total",
            &[("tool", tool), ("outcome", outcome)],
        )
    };
    assert_eq!(calls("api___getPet", "ok"), 8.0);
    assert_eq!(calls("api___getPet", "invalid_arguments"), 1.0);
    assert_eq!(calls("api___failWith", "upstream_error"), 1.0);
    assert_eq!(calls("api___failWith", "ok"), 0.0);
    let cache = |result: &str| {
        metric(
            &s,
            "toolgate_cache_requests_total",
            &[("tool", "api___getPet"), ("result", result)],
        )
    };
    assert_eq!(cache("miss") + cache("hit"), 8.0);
    assert!(
        cache("hit") >= 1.0,
        "concurrent waiters are served from the one fill"
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_upstream_responses_total",
            &[("tool", "api___failWith"), ("class", "5xx")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_upstream_responses_total",
            &[("tool", "api___getPet"), ("class", "2xx")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_tool_calls_in_flight",
            &[("tool", "api___getPet")]
        ),
        0.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_tool_call_duration_seconds_count",
            &[("tool", "api___getPet")]
        ),
        9.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_upstream_duration_seconds_count",
            &[("tool", "api___getPet")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_mcp_requests_total",
            &[("method", "tools/call"), ("revision", "2026-07-28")]
        ),
        10.0
    );
    assert_eq!(
        metric(
            &s,
            "toolgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Label values come from the catalog only: an unknown tool adds no series.
    call(&gateway, 22, "api___noSuchTool", "{}").await;
    let text = gateway.metrics_text().await;
    assert!(!text.contains("noSuchTool"));
}

/// The shipped Grafana dashboard only queries metric families the gateway registers, and
/// the registry exports only families listed in `metrics::FAMILIES`.
#[tokio::test]
async fn the_grafana_dashboard_queries_exported_metrics() {
    use toolgate::metrics::FAMILIES;
    let (_upstream, gateway) = start(None).await;
    call(&gateway, 1, "api___listPets", "{}").await;
    let text = gateway.metrics_text().await;
    let family = |name: &str| {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .fold(name, |n, suffix| n.strip_suffix(suffix).unwrap_or(n));
        if FAMILIES.contains(&name) {
            name.to_string()
        } else {
            base.to_string()
        }
    };
    for line in text.lines().filter(|l| l.starts_with("toolgate_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            FAMILIES.contains(&family(name).as_str()),
            "{name} is exported but not listed in FAMILIES"
        );
    }
    for expected in [
        "toolgate_auth_failures_total",
        "toolgate_jwks_refreshes_total",
        "toolgate_config_loads_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {expected} counter")),
            "{expected} is declared before any event"
        );
    }
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/toolgate.json"
    ))
    .unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("toolgate_") {
                    assert!(
                        FAMILIES.contains(&family(word).as_str()),
                        "the dashboard queries {word}, which toolgate does not register"
                    );
                    checked += 1;
                } else if word.starts_with("process_") {
                    assert!(
                        text.contains(word),
                        "the dashboard queries {word}, which is not exported"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 15, "{checked}");
}
