//! The response cache's shared tier (`cache.shared`) against a real `redis-server`: two
//! gateways sharing one Redis serve each other's answers, callers stay apart, large answers
//! stay in-process, and an outage or a hang of Redis costs hit rate, never a call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::auth::{indent, rpc};
use crate::support::idp::Idp;
use crate::support::process::{BIN, GatewayProcess};
use crate::support::redis::Redis;
use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};

const RESOURCE: &str = "https://gateway.test/mcp";

fn api(r: &Recorded) -> Answer {
    match (r.method.as_str(), r.path()) {
        // A large answer: 100 pets (some 6 KiB once rendered).
        ("GET", "/api/pets") if r.query().contains("limit=100") => Answer::Json(
            200,
            Value::Array(
                (0..100)
                    .map(|i| json!({"id": i, "name": format!("pet number {i}")}))
                    .collect(),
            ),
        ),
        ("GET", "/api/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        ("GET", p) if p.starts_with("/api/pets/") => {
            Answer::Json(200, json!({"id": 7, "name": "Rex"}))
        }
        ("GET", "/api/text") => Answer::Raw(200, "text/plain", b"hi".to_vec()),
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

/// A gateway.yaml with one cached target in front of `upstream` and `cache.shared` on
/// `redis`; `shared` and `top` are YAML lines added to `cache.shared` and at the top.
fn config(redis: &Redis, upstream: &Upstream, shared: &str, top: &str) -> String {
    format!(
        r#"{top}
cache:
  shared:
    url: "{url}"
{shared}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
    cache: {{ ttl: 10m }}
"#,
        url = redis.url(),
        shared = indent(shared, 4),
        base = upstream.url(),
    )
}

async fn gateway(yaml: &str) -> Gateway {
    Gateway::start(yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await
}

/// A `tools/call` that must succeed (HTTP 200, a result that is not `isError`).
async fn call(gateway: &Gateway, token: Option<&str>, tool: &str, args: Value) -> Value {
    let (status, _, reply) = tokio::time::timeout(
        Duration::from_secs(10),
        rpc(
            gateway,
            token,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        ),
    )
    .await
    .expect("the call answers within 10s");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["isError"], false, "{reply}");
    reply
}

/// A sample of the gateway's `/metrics` (0 when the series does not exist yet).
async fn metric(gateway: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = gateway.metrics_text().await;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("unexpected {other:?}"),
        })
}

/// `toolgate_cache_shared_total{target="api", outcome}`.
async fn shared(gateway: &Gateway, outcome: &str) -> f64 {
    metric(
        gateway,
        "toolgate_cache_shared_total",
        &[("target", "api"), ("outcome", outcome)],
    )
    .await
}

/// Waits (at most 10 s) until `outcome` of the shared tier reaches `at_least`: a store runs
/// in the background, after the call has answered.
async fn wait_for(gateway: &Gateway, outcome: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared(gateway, outcome).await < at_least {
        assert!(
            Instant::now() < deadline,
            "shared outcome {outcome} never reached {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Calls through `a` and then `b` with fresh arguments until `b` is served from Redis what
/// `a` stored (at most 20 s): sharing works again. `n` numbers the arguments.
async fn until_shared(a: &Gateway, b: &Gateway, upstream: &Upstream, n: &mut u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "sharing never resumed once Redis was back"
        );
        *n += 1;
        let args = json!({"petId": format!("p{n}")});
        let stored = shared(a, "stored").await;
        call(a, None, "api___getPet", args.clone()).await;
        // Whether a's background store landed (it does not while a's tier backs off).
        let landed = Instant::now() + Duration::from_secs(1);
        while shared(a, "stored").await == stored && Instant::now() < landed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if shared(a, "stored").await > stored {
            let (hits, before) = (shared(b, "hit").await, upstream.count());
            call(b, None, "api___getPet", args).await;
            if shared(b, "hit").await > hits {
                assert_eq!(upstream.count(), before, "a shared hit calls no upstream");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The keys under `pattern`, sorted.
async fn keys(redis: &Redis, pattern: &str) -> Vec<String> {
    let mut conn = redis.connection().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_second_gateway_is_served_from_redis_for_what_remains_of_the_ttl() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(api).await;
    let yaml = config(&redis, &upstream, "key_prefix: \"t1:\"", "");
    let (a, b) = (gateway(&yaml).await, gateway(&yaml).await);

    let first = call(&a, None, "api___listPets", json!({"limit": 2})).await;
    assert_eq!(upstream.count(), 1);
    assert_eq!(shared(&a, "miss").await, 1.0);
    wait_for(&a, "stored", 1.0).await;
    // The same call through the other gateway (arguments spelled otherwise): from Redis.
    let again = call(&b, None, "api___listPets", json!({"limit": 2.0})).await;
    assert_eq!(upstream.count(), 1, "b was served what a stored");
    assert_eq!(again["result"], first["result"]);
    assert_eq!(shared(&b, "hit").await, 1.0);
    let hits = |g| {
        metric(
            g,
            "toolgate_cache_requests_total",
            &[("tool", "api___listPets"), ("result", "hit")],
        )
    };
    assert_eq!(hits(&b).await, 1.0, "a shared hit is a cache hit");
    // Now in b's own cache: no second trip to Redis.
    call(&b, None, "api___listPets", json!({"limit": 2})).await;
    assert_eq!(upstream.count(), 1);
    assert_eq!(hits(&b).await, 2.0);
    assert_eq!(shared(&b, "hit").await + shared(&b, "miss").await, 1.0);

    // One key, named by a hash only, expiring with the configured TTL.
    let stored = keys(&redis, "t1:*").await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let hex = stored[0].strip_prefix("t1:c:").unwrap();
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{hex}"
    );
    let mut conn = redis.connection().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&stored[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(0 < pttl && pttl <= 600_000, "{pttl}");

    // Freshness is never extended: with 1.5 s left in Redis, b's copy expires with it
    // (far before the configured 10 minutes) and b asks the upstream again.
    call(&a, None, "api___getPet", json!({"petId": "7"})).await;
    assert_eq!(upstream.count(), 2);
    wait_for(&a, "stored", 2.0).await;
    let new_key = keys(&redis, "t1:*")
        .await
        .into_iter()
        .find(|k| *k != stored[0])
        .unwrap();
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(&new_key)
        .arg(1500)
        .query_async(&mut conn)
        .await
        .unwrap();
    call(&b, None, "api___getPet", json!({"petId": "7"})).await;
    assert_eq!(shared(&b, "hit").await, 2.0);
    assert_eq!(upstream.count(), 2);
    let deadline = Instant::now() + Duration::from_secs(15);
    while upstream.count() == 2 {
        assert!(
            Instant::now() < deadline,
            "b kept the entry past its time in Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        call(&b, None, "api___getPet", json!({"petId": "7"})).await;
    }
}

#[tokio::test]
async fn caller_scoped_entries_are_shared_only_with_the_same_caller() {
    let idp = Idp::start().await;
    let redis = Redis::start().await;
    let upstream = Upstream::start(api).await;
    let inbound = format!(
        "inbound:\n  resource: {RESOURCE}\n  jwt:\n    discovery_url: {}\n    audiences: [{RESOURCE}]",
        idp.discovery_url()
    );
    // `scope: caller` is the default with inbound authentication.
    let yaml = config(&redis, &upstream, "", &inbound);
    let (a, b) = (gateway(&yaml).await, gateway(&yaml).await);
    let alice = idp.token("agent-1", RESOURCE, "").await;
    let alice_again = idp.token("agent-1", RESOURCE, "").await;
    let bob = idp.token("agent-2", RESOURCE, "").await;

    call(&a, Some(&alice), "api___listPets", json!({})).await;
    wait_for(&a, "stored", 1.0).await;
    call(&b, Some(&alice_again), "api___listPets", json!({})).await;
    assert_eq!(
        upstream.count(),
        1,
        "the same caller, another token: shared"
    );
    assert_eq!(shared(&b, "hit").await, 1.0);
    call(&b, Some(&bob), "api___listPets", json!({})).await;
    assert_eq!(upstream.count(), 2, "another caller: never alice's entry");
    assert_eq!(shared(&b, "miss").await, 1.0);
    wait_for(&b, "stored", 1.0).await;
    call(&a, Some(&bob), "api___listPets", json!({})).await;
    assert_eq!(upstream.count(), 2, "bob's own entry is shared with bob");
    assert_eq!(shared(&a, "hit").await, 1.0);

    // One key per caller, and nothing in Redis names them.
    let stored = keys(&redis, "*").await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    let mut conn = redis.connection().await;
    for key in &stored {
        assert!(key.starts_with("toolgate:c:"), "{key}");
        let value: Vec<u8> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let text = format!("{key} {}", String::from_utf8_lossy(&value));
        let issuer = idp.issuer();
        for identity in ["agent-1", "agent-2", issuer.as_str()] {
            assert!(!text.contains(identity), "{identity} in {text}");
        }
    }
}

#[tokio::test]
async fn answers_above_max_value_bytes_stay_in_process() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(api).await;
    let yaml = config(&redis, &upstream, "max_value_bytes: 1KiB", "");
    let (a, b) = (gateway(&yaml).await, gateway(&yaml).await);

    call(&a, None, "api___listPets", json!({"limit": 100})).await;
    assert_eq!(shared(&a, "too_large").await, 1.0);
    call(&b, None, "api___listPets", json!({"limit": 100})).await;
    assert_eq!(upstream.count(), 2, "too large to share");
    assert_eq!(shared(&b, "hit").await, 0.0);
    // Still kept in-process.
    call(&a, None, "api___listPets", json!({"limit": 100})).await;
    assert_eq!(upstream.count(), 2);
    // A small answer is shared.
    call(&a, None, "api___getText", json!({})).await;
    wait_for(&a, "stored", 1.0).await;
    call(&b, None, "api___getText", json!({})).await;
    assert_eq!(upstream.count(), 3);
    assert_eq!(shared(&b, "hit").await, 1.0);
    assert_eq!(keys(&redis, "*").await.len(), 1, "only the small answer");
}

#[tokio::test]
async fn gateways_start_while_redis_is_down_and_share_once_it_is_up() {
    let mut redis = Redis::start().await;
    redis.stop();
    let upstream = Upstream::start(api).await;
    let yaml = config(&redis, &upstream, "", "");
    let (a, b) = (gateway(&yaml).await, gateway(&yaml).await);
    call(&a, None, "api___listPets", json!({"limit": 1})).await;
    call(&b, None, "api___listPets", json!({"limit": 1})).await;
    assert_eq!(upstream.count(), 2, "nothing to share through");
    for g in [&a, &b] {
        assert!(shared(g, "error").await + shared(g, "skipped").await >= 1.0);
        assert_eq!(shared(g, "hit").await + shared(g, "stored").await, 0.0);
    }
    redis.restart().await;
    until_shared(&a, &b, &upstream, &mut 0).await;
}

#[tokio::test]
async fn a_redis_outage_or_hang_costs_hit_rate_never_a_call() {
    let mut redis = Redis::start().await;
    let upstream = Upstream::start(api).await;
    let yaml = config(&redis, &upstream, "timeout: 100ms", "");
    let (a, b) = (gateway(&yaml).await, gateway(&yaml).await);
    let mut n = 0;
    until_shared(&a, &b, &upstream, &mut n).await;

    // Down: every call still answers, from the upstream.
    redis.stop();
    let (before, failures) = (
        upstream.count(),
        shared(&a, "error").await + shared(&a, "skipped").await,
    );
    for i in 0..5 {
        call(&a, None, "api___listPets", json!({"limit": 50 + i})).await;
    }
    assert_eq!(upstream.count(), before + 5);
    assert!(shared(&a, "error").await >= 1.0, "the outage was noticed");
    assert!(
        shared(&a, "error").await + shared(&a, "skipped").await >= failures + 5.0,
        "each look-up is counted as an error or skipped"
    );
    redis.restart().await;
    until_shared(&a, &b, &upstream, &mut n).await;

    // Hung: the look-up gives up after `timeout`, and the next calls leave Redis alone.
    redis.pause();
    let errors = shared(&a, "error").await;
    let started = Instant::now();
    call(&a, None, "api___listPets", json!({"limit": 60})).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(shared(&a, "error").await, errors + 1.0, "one timeout");
    let skipped = shared(&a, "skipped").await;
    call(&a, None, "api___listPets", json!({"limit": 61})).await;
    assert!(shared(&a, "skipped").await > skipped);
    redis.resume();
    until_shared(&a, &b, &upstream, &mut n).await;
}

#[tokio::test]
async fn changing_cache_shared_needs_a_restart() {
    let redis = Redis::start().await;
    let upstream = Upstream::start(api).await;
    let gateway = gateway(&config(&redis, &upstream, "key_prefix: \"old:\"", "")).await;
    gateway.write(
        "gateway.yaml",
        &config(&redis, &upstream, "key_prefix: \"new:\"", ""),
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["restart_required"],
        json!(["cache.shared"]),
        "{report}"
    );
    // The running tier is kept as it was.
    call(&gateway, None, "api___getText", json!({})).await;
    wait_for(&gateway, "stored", 1.0).await;
    assert_eq!(keys(&redis, "old:c:*").await.len(), 1);
    assert!(keys(&redis, "new:*").await.is_empty());
    // The same settings again: nothing to report.
    gateway.write(
        "gateway.yaml",
        &config(&redis, &upstream, "key_prefix: \"old:\"", ""),
    );
    let (_, report) = gateway.reload().await;
    assert_eq!(report["restart_required"], json!([]), "{report}");
}

#[test]
fn a_bad_shared_url_is_a_located_error_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let check = |yaml: &str| {
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        stderr
    };
    let tls = check("targets: []\ncache:\n  shared: rediss://admin:hunter2@cache.internal:6380\n");
    assert!(tls.contains("gateway.yaml:3:"), "{tls}");
    assert!(tls.contains("TLS"), "{tls}");
    assert!(
        tls.contains("rediss://admin:***@cache.internal:6380"),
        "{tls}"
    );
    let port = check(
        "targets: []\ncache:\n  shared:\n    timeout: 20ms\n    url: \"redis://admin:hunter2@cache:port\"\n",
    );
    assert!(port.contains("gateway.yaml:5:"), "{port}");
    assert!(port.contains("is not a Redis URL"), "{port}");
    let unix = check("cache:\n  shared: \"unix:relative.sock?pass=hunter2\"\n");
    assert!(unix.contains("gateway.yaml:2:"), "{unix}");
}

/// As users run it: the URL from the environment, a password-protected Redis, an outage
/// that is logged once (and its end once), and no log line with the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_tells_an_outage_once_and_never_the_password() {
    let mut redis = Redis::start_with(&["--requirepass", "hunter2"]).await;
    let upstream = Upstream::start(api).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!(
            "cache:\n  shared: ${{TEST_REDIS_URL}}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n    cache: {{ ttl: 10m }}\n",
            upstream.url()
        ),
    )
    .unwrap();
    let url = format!("{}?pass=hunter2", redis.url());
    let process = tokio::task::block_in_place(|| {
        GatewayProcess::spawn(&path, &[("TEST_REDIS_URL", url.as_str())])
    });
    let wait = |needle: &'static str| {
        tokio::task::block_in_place(|| process.wait_for_log(needle, Duration::from_secs(20)))
    };
    wait("shared cache connected");
    let call = |n: u64| {
        let url = process.url.clone();
        async move {
            let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": "api___getPet", "arguments": {"petId": format!("p{n}")},
                           "_meta": modern_meta()}});
            let (status, _, reply) = post_raw(
                &url,
                &modern_headers("tools/call", Some("api___getPet")),
                body.to_string(),
            )
            .await;
            assert_eq!(status, 200, "{reply}");
            assert_eq!(reply["result"]["isError"], false, "{reply}");
        }
    };
    call(1).await;
    redis.stop();
    for n in 2..6 {
        call(n).await;
    }
    let warned = wait("shared cache unavailable");
    assert!(warned.contains("pass=***"), "{warned}");
    redis.restart().await;
    // Calls probe Redis (once a second) until one finds it back.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 10;
    while !process
        .log()
        .iter()
        .any(|l| l.contains("shared cache reachable again"))
    {
        assert!(Instant::now() < deadline, "{}", process.log().join("\n"));
        n += 1;
        call(n).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = process.log();
    let count = |needle: &str| log.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("shared cache unavailable"), 1, "{}", log.join("\n"));
    assert_eq!(
        count("shared cache reachable again"),
        1,
        "{}",
        log.join("\n")
    );
    assert!(
        !log.iter().any(|l| l.contains("hunter2")),
        "{}",
        log.join("\n")
    );
}
