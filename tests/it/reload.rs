//! Reloading a running gateway in process: `POST /admin/reload` swaps the catalog, keeps
//! unchanged targets (their caches survive), refuses broken configurations while serving the
//! last good one, retires stale cursors, and tells notification streams; overload gets 503.

use std::sync::Arc;
use std::time::Duration;

use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn api(r: &Recorded) -> Answer {
    match r.path() {
        "/api/pets" => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        p if p.starts_with("/inv/") => Answer::Json(200, json!({"item": &p[5..]})),
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

/// A small OpenAPI document with one `GET /inv/<op>` operation per name.
fn inventory(ops: &[&str]) -> String {
    let paths: serde_json::Map<String, Value> = ops
        .iter()
        .map(|op| {
            (
                format!("/{op}"),
                json!({"get": {"operationId": op, "summary": format!("Get {op}"),
                    "responses": {"200": {"description": "ok",
                        "content": {"application/json": {"schema": {"type": "object"}}}}}}}),
            )
        })
        .collect();
    json!({"openapi": "3.0.3", "info": {"title": "Inventory", "version": "1"}, "paths": paths})
        .to_string()
}

fn config(upstream: &Upstream, extra: &str) -> String {
    format!(
        r#"
gateway: {{ page_size: 2 }}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
    cache: {{ ttl: 60s }}
  - name: inv
    openapi: {{ spec: inventory.json, base_url: "{base}/inv" }}
{extra}"#,
        base = upstream.url()
    )
}

async fn start() -> (Upstream, Gateway) {
    let upstream = Upstream::start(api).await;
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.json");
    std::fs::write(&inv, inventory(&["apples", "pears"])).unwrap();
    let gateway = Gateway::start(
        &config(&upstream, ""),
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            ("inventory.json", &inv),
        ],
    )
    .await;
    (upstream, gateway)
}

async fn rpc(gateway: &Gateway, id: u64, method: &str, params: Value) -> (u16, Value) {
    let mut params = params;
    params["_meta"] = modern_meta();
    let name = params["name"].as_str().map(str::to_string);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (status, _, value) = post_raw(
        &gateway.url(),
        &modern_headers(method, name.as_deref()),
        body.to_string(),
    )
    .await;
    (status, value)
}

/// Every tool name, following cursors.
async fn all_names(gateway: &Gateway) -> Vec<String> {
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let (status, body) = rpc(gateway, 1, "tools/list", params).await;
        assert_eq!(status, 200, "{body}");
        for t in body["result"]["tools"].as_array().unwrap() {
            names.push(t["name"].as_str().unwrap().to_string());
        }
        match body["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return names,
        }
    }
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_changed_targets_and_keeps_the_others() {
    let (upstream, gateway) = start().await;
    let before = all_names(&gateway).await;
    assert!(before.contains(&"inv___pears".to_string()), "{before:?}");

    // A cached answer of the unchanged target...
    let (_, body) = rpc(
        &gateway,
        2,
        "tools/call",
        json!({"name": "api___listPets", "arguments": {}}),
    )
    .await;
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.count(), 1);

    gateway.write("inventory.json", &inventory(&["apples", "plums"]));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["targets_rebuilt"], json!(["inv"]), "{report}");
    assert_eq!(report["targets_reused"], json!(["api"]), "{report}");
    assert_eq!(report["tools_changed"], true);

    let after = all_names(&gateway).await;
    assert!(after.contains(&"inv___plums".to_string()), "{after:?}");
    assert!(!after.contains(&"inv___pears".to_string()), "{after:?}");
    let (_, body) = rpc(
        &gateway,
        3,
        "tools/call",
        json!({"name": "inv___plums", "arguments": {}}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"],
        json!({"item": "plums"}),
        "{body}"
    );
    let (_, body) = rpc(
        &gateway,
        4,
        "tools/call",
        json!({"name": "inv___pears", "arguments": {}}),
    )
    .await;
    assert_eq!(
        body["error"]["code"], -32602,
        "a removed tool is unknown: {body}"
    );

    // ...is still served from the same cache: the target was not rebuilt.
    let (_, body) = rpc(
        &gateway,
        5,
        "tools/call",
        json!({"name": "api___listPets", "arguments": {}}),
    )
    .await;
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(
        upstream.count(),
        2,
        "one call to plums, none for the cached listPets"
    );

    // Nothing changed: the same tools, no change announced.
    let (_, report) = gateway.reload().await;
    assert_eq!(report["tools_changed"], false, "{report}");
    assert_eq!(report["targets_rebuilt"], json!([]), "{report}");

    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(&metrics, "toolgate_config_reloads_total{outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        sample(&metrics, "toolgate_catalog_tools"),
        after.len() as f64
    );
    assert!(
        !metrics.contains("tool=\"inv___pears\""),
        "series of removed tools are dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_keeps_serving_the_last_good_catalog() {
    let (upstream, gateway) = start().await;
    let before = all_names(&gateway).await;

    // A typo in gateway.yaml: located, with a suggestion.
    gateway.write("gateway.yaml", &config(&upstream, "    timout: 5s\n"));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 422, "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("gateway.yaml:"), "{error}");
    assert!(error.contains("timeout"), "did you mean: {error}");
    assert_eq!(all_names(&gateway).await, before);

    // A broken document: the file and the reason.
    gateway.write("gateway.yaml", &config(&upstream, ""));
    gateway.write("inventory.json", "{\"openapi\": \"3.0.3\", \"paths\": [");
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 422, "{report}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("target `inv`") && error.contains("inventory.json"),
        "{error}"
    );
    assert_eq!(all_names(&gateway).await, before);
    let (_, body) = rpc(
        &gateway,
        2,
        "tools/call",
        json!({"name": "inv___pears", "arguments": {}}),
    )
    .await;
    assert_eq!(
        body["result"]["structuredContent"],
        json!({"item": "pears"}),
        "{body}"
    );

    // Fixed again: reloads.
    gateway.write("inventory.json", &inventory(&["apples", "pears", "figs"]));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(all_names(&gateway).await.len(), before.len() + 1);

    let metrics = gateway.metrics_text().await;
    assert_eq!(
        sample(&metrics, "toolgate_config_reloads_total{outcome=\"error\"}"),
        2.0
    );
    assert_eq!(
        sample(&metrics, "toolgate_config_reloads_total{outcome=\"ok\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_from_an_older_catalog_are_refused_and_restart_settings_reported() {
    let (upstream, gateway) = start().await;
    let (_, first) = rpc(&gateway, 1, "tools/list", json!({})).await;
    let cursor = first["result"]["nextCursor"].as_str().unwrap().to_string();
    let (_, page) = rpc(&gateway, 2, "tools/list", json!({"cursor": cursor})).await;
    assert!(page["result"]["tools"].is_array(), "{page}");

    gateway.write("inventory.json", &inventory(&["kiwis"]));
    let yaml = config(&upstream, "").replace("page_size: 2", "page_size: 2, instructions: Fruit.");
    gateway.write("gateway.yaml", &format!("listen: 127.0.0.1:1\n{yaml}"));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["restart_required"], json!(["listen"]), "{report}");

    let (status, stale) = rpc(&gateway, 3, "tools/list", json!({"cursor": cursor})).await;
    assert_eq!(status, 200);
    assert_eq!(stale["error"]["code"], -32602, "{stale}");
    assert!(
        stale["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed"),
        "{stale}"
    );
    // Live settings apply at once.
    let (_, discover) = rpc(&gateway, 4, "server/discover", json!({})).await;
    assert_eq!(discover["result"]["instructions"], "Fruit.", "{discover}");
}

/// Reads SSE `data:` payloads from a streaming response until `n` have arrived.
async fn events(response: reqwest::Response, n: usize) -> Vec<Value> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk: Bytes = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    out.push(serde_json::from_str(data).unwrap());
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_streams_hear_of_tool_list_changes() {
    let (_upstream, mut gateway) = start().await;
    let client = reqwest::Client::new();

    // Handshake revisions: the GET stream.
    let legacy = client
        .get(gateway.url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    assert_eq!(legacy.headers()["content-type"], "text/event-stream");

    // 2026-07-28: subscriptions/listen, one stream for tools, one for prompts only.
    let listen = |id: u64, filter: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
            "params": {"_meta": modern_meta(), "notifications": filter}});
        let mut request = client.post(gateway.url()).body(body.to_string());
        for (k, v) in modern_headers("subscriptions/listen", None) {
            request = request.header(k, v);
        }
        request.send()
    };
    let tools_stream = listen(7, json!({"toolsListChanged": true})).await.unwrap();
    assert_eq!(tools_stream.status(), 200);
    let prompts_stream = listen(8, json!({"promptsListChanged": true}))
        .await
        .unwrap();

    // The streams are counted once open (their tasks run).
    let mut open = 0.0;
    for _ in 0..100 {
        open = sample(
            &gateway.metrics_text().await,
            "toolgate_notification_streams",
        );
        if open == 3.0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(open, 3.0);

    gateway.write("inventory.json", &inventory(&["apples"]));
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");

    let legacy_events = events(legacy, 1).await;
    assert_eq!(
        legacy_events,
        [json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})]
    );
    let tool_events = events(tools_stream, 2).await;
    assert_eq!(
        tool_events[0]["method"],
        "notifications/subscriptions/acknowledged"
    );
    assert_eq!(
        tool_events[0]["params"],
        json!({"_meta": {"io.modelcontextprotocol/subscriptionId": 7},
               "notifications": {"toolsListChanged": true}})
    );
    assert_eq!(tool_events[1]["method"], "notifications/tools/list_changed");
    assert_eq!(
        tool_events[1]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        7
    );

    // Shutdown ends the prompt-only stream with its result; it never carried a tools
    // notification.
    let done = gateway.shutdown();
    let prompt_events = events(prompts_stream, 2).await;
    assert_eq!(
        prompt_events[0]["params"]["notifications"],
        json!({}),
        "prompts never change here: not acknowledged"
    );
    assert_eq!(prompt_events[1]["id"], 8, "{prompt_events:?}");
    assert_eq!(prompt_events[1]["result"]["resultType"], "complete");
    done.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_requests_are_shed_and_probes_answer() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let upstream =
        Upstream::start(move |_| Answer::After(gate.clone(), json!({"name": "Rex"}))).await;
    let yaml = format!(
        "gateway: {{ max_concurrent_requests: 2 }}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
        upstream.url()
    );
    let gateway =
        Arc::new(Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await);
    let mut held = Vec::new();
    for id in 0..2 {
        let gateway = gateway.clone();
        held.push(tokio::spawn(async move {
            rpc(
                &gateway,
                id,
                "tools/call",
                json!({"name": "api___getPet", "arguments": {"petId": "1"}}),
            )
            .await
        }));
    }
    upstream.wait_for(2).await;

    let (status, headers, body) = post_raw(
        &gateway.url(),
        &modern_headers("tools/list", None),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {"_meta": modern_meta()}})
            .to_string(),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], -32603, "{body}");
    let ping = reqwest::get(format!("http://{}/ping", gateway.addr))
        .await
        .unwrap();
    assert_eq!(ping.status(), 200, "probes bypass the limit");
    assert_eq!(
        sample(
            &gateway.metrics_text().await,
            "toolgate_requests_shed_total"
        ),
        1.0
    );

    release.notify_waiters();
    for call in held {
        let (status, body) = call.await.unwrap();
        assert_eq!(
            (status, &body["result"]["isError"]),
            (200, &json!(false)),
            "{body}"
        );
    }
    let (status, _) = rpc(&gateway, 10, "tools/list", json!({})).await;
    assert_eq!(status, 200, "capacity is back once the calls finish");
}
