//! The wire protocol on raw HTTP: error codes and statuses the MCP revisions prescribe, for
//! malformed, oversized and mismatched requests. The gateway keeps serving after each.

use crate::support::{Answer, Gateway, Upstream, fixture, modern_headers, modern_meta, post_raw};
use serde_json::{Value, json};

async fn start() -> (Upstream, Gateway) {
    let upstream = Upstream::start(|_| Answer::Json(200, json!({"id": 1, "name": "Rex"}))).await;
    let yaml = format!(
        "gateway:\n  name: proto\n  max_body: 64KiB\n  page_size: 2\ntargets:\n  - name: api\n    openapi:\n      spec: testapi.yaml\n      base_url: {}/api\n",
        upstream.url()
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
    (upstream, gateway)
}

const LEGACY: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

fn modern(id: u64, method: &str, params: Value) -> String {
    let mut params = params;
    params["_meta"] = modern_meta();
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

async fn still_serving(gateway: &Gateway) {
    let (status, _, body) = post_raw(
        &gateway.url(),
        &modern_headers("tools/list", None),
        modern(99, "tools/list", json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["tools"].is_array());
}

#[tokio::test]
async fn malformed_json_rpc_gets_the_specified_codes() {
    let (_u, gateway) = start().await;
    let url = gateway.url();
    let cases: &[(&str, u16, i64)] = &[
        ("{not json", 400, -32700),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, 400, -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, 400, -32600),
        (r#"{"jsonrpc":"2.0","id":1}"#, 400, -32600),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#,
            400,
            -32602,
        ),
        (r#""just a string""#, 400, -32600),
    ];
    for (body, status, code) in cases {
        let (s, _, reply) = post_raw(&url, LEGACY, *body).await;
        assert_eq!(
            (s, reply["error"]["code"].as_i64()),
            (*status, Some(*code)),
            "{body} -> {reply}"
        );
        assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    }
    // Legacy unknown method: -32601 with the request id.
    let (s, _, reply) = post_raw(
        &url,
        LEGACY,
        r#"{"jsonrpc":"2.0","id":"x","method":"nope/nope"}"#,
    )
    .await;
    assert_eq!(
        (s, reply["error"]["code"].as_i64(), reply["id"].as_str()),
        (200, Some(-32601), Some("x"))
    );
    // Notifications and client responses: 202, no body.
    let (s, _, _) = post_raw(
        &url,
        LEGACY,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(s, 202);
    let (s, _, _) = post_raw(&url, LEGACY, r#"{"jsonrpc":"2.0","id":5,"result":{}}"#).await;
    assert_eq!(s, 202);
    still_serving(&gateway).await;
}

#[tokio::test]
async fn http_level_rejections() {
    let (_u, gateway) = start().await;
    let url = gateway.url();
    let client = reqwest::Client::new();
    // 2026-07-28 has no GET stream (subscriptions/listen replaced it).
    let get = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(get.headers()["allow"], "POST");
    // The handshake revisions' GET stream needs an Accept that lists SSE.
    let get = client
        .get(&url)
        .header("accept", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 406);
    let get = client
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "1999-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 400, "unknown revision on GET");
    // No sessions, so nothing to DELETE.
    let delete = client.delete(&url).send().await.unwrap();
    assert_eq!(delete.status(), 405);
    assert_eq!(delete.headers()["allow"], "GET, POST");
    let (s, _, _) = post_raw(&url, &[("content-type", "text/plain")], "{}").await;
    assert_eq!(s, 415);
    let (s, _, _) = post_raw(
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "text/html"),
        ],
        "{}",
    )
    .await;
    assert_eq!(s, 406);
    // Over max_body (64 KiB): 413, whether announced by Content-Length or streamed.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    let (s, _, reply) = post_raw(&url, LEGACY, big.clone()).await;
    assert_eq!(s, 413, "{reply}");
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let (s, _, _) = post_raw(&url, LEGACY, reqwest::Body::wrap_stream(stream)).await;
    assert_eq!(s, 413);
    // DNS rebinding: a foreign Origin or Host is refused.
    let mut with_origin = LEGACY.to_vec();
    with_origin.push(("origin", "http://evil.example.com"));
    let (s, _, _) = post_raw(
        &url,
        &with_origin,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!(s, 403);
    let resp = client
        .post(&url)
        .header("host", "evil.example.com")
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let mut local_origin = LEGACY.to_vec();
    local_origin.push(("origin", "http://localhost:6274"));
    let (s, _, reply) = post_raw(
        &url,
        &local_origin,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!((s, reply["result"].clone()), (200, json!({})));
    // A client that accepts only SSE gets one SSE event.
    let resp = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({"jsonrpc": "2.0", "id": 7, "result": {}})
    );
    still_serving(&gateway).await;
}

#[tokio::test]
async fn stateless_revision_validates_meta_and_headers() {
    let (_u, gateway) = start().await;
    let url = gateway.url();
    let discover = |id: u64, params: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "server/discover", "params": params})
            .to_string()
    };
    // Missing _meta fields: 400 + -32602, id echoed.
    for (id, params) in [
        (101, json!({})),
        (
            102,
            json!({"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}}),
        ),
        (
            104,
            json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        ),
    ] {
        let (s, _, reply) = post_raw(
            &url,
            &modern_headers("server/discover", None),
            discover(id, params),
        )
        .await;
        assert_eq!(
            (s, reply["error"]["code"].as_i64(), reply["id"].as_u64()),
            (400, Some(-32602), Some(id)),
            "{reply}"
        );
    }
    // Discovery.
    let (s, _, reply) = post_raw(
        &url,
        &modern_headers("server/discover", None),
        modern(201, "server/discover", json!({})),
    )
    .await;
    assert_eq!(s, 200);
    let result = &reply["result"];
    assert_eq!(result["resultType"], "complete");
    assert_eq!(result["supportedVersions"][0], "2026-07-28");
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "proto"
    );
    assert!(result["ttlMs"].as_u64().is_some() && result["cacheScope"] == "public");
    // Unsupported version: 400 + -32022 with data.
    let body = json!({"jsonrpc": "2.0", "id": 301, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "v999.0.0", "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut headers = modern_headers("tools/list", None);
    headers[2] = ("mcp-protocol-version", "v999.0.0");
    let (s, _, reply) = post_raw(&url, &headers, body.to_string()).await;
    assert_eq!(
        (s, reply["error"]["code"].as_i64()),
        (400, Some(-32022)),
        "{reply}"
    );
    assert_eq!(reply["error"]["data"]["requested"], "v999.0.0");
    assert!(
        reply["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    // Header/body mismatches: 400 + -32020.
    let list = modern(5, "tools/list", json!({}));
    let mismatch = |h: Vec<(&'static str, &'static str)>| (h, list.clone());
    for (headers, body) in [
        mismatch(modern_headers("prompts/list", None)),
        mismatch(modern_headers("TOOLS/LIST", None)),
        mismatch(
            modern_headers("tools/list", None)
                .into_iter()
                .filter(|(k, _)| *k != "mcp-method")
                .collect(),
        ),
        (modern_headers("tools/list", None), {
            let mut v: Value = serde_json::from_str(&list).unwrap();
            v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
            v.to_string()
        }),
        (
            modern_headers("tools/call", Some("wrong_tool")),
            modern(
                6,
                "tools/call",
                json!({"name": "api___getPet", "arguments": {}}),
            ),
        ),
        (
            modern_headers("tools/call", None),
            modern(
                6,
                "tools/call",
                json!({"name": "api___getPet", "arguments": {}}),
            ),
        ),
    ] {
        let (s, _, reply) = post_raw(&url, &headers, body.clone()).await;
        assert_eq!(
            (s, reply["error"]["code"].as_i64()),
            (400, Some(-32020)),
            "{headers:?} {body} -> {reply}"
        );
    }
    // Whitespace around header values and header-name case do not matter; base64 names decode.
    let call = modern(
        7,
        "tools/call",
        json!({"name": "api___getPet", "arguments": {"petId": "1"}}),
    );
    for name in ["  api___getPet  ", "=?base64?YXBpX19fZ2V0UGV0?="] {
        let (s, _, reply) = post_raw(
            &url,
            &modern_headers("tools/call", Some(name)),
            call.clone(),
        )
        .await;
        assert_eq!(
            (s, &reply["result"]["isError"]),
            (200, &json!(false)),
            "{name}: {reply}"
        );
        assert_eq!(reply["result"]["resultType"], "complete");
    }
    let upper = vec![
        ("content-type", "application/json"),
        ("MCP-PROTOCOL-VERSION", "2026-07-28"),
        ("MCP-METHOD", "tools/list"),
    ];
    let (s, _, _) = post_raw(&url, &upper, list.clone()).await;
    assert_eq!(s, 200);
    // Methods this revision removed, and unknown ones: 404 + -32601.
    for method in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "unknown/method",
    ] {
        let (s, _, reply) = post_raw(
            &url,
            &modern_headers(method, None),
            modern(500, method, json!({})),
        )
        .await;
        assert_eq!(
            (s, reply["error"]["code"].as_i64(), reply["id"].as_u64()),
            (404, Some(-32601), Some(500)),
            "{method}"
        );
    }
    // Empty prompt and resource lists carry caching hints.
    for (method, key) in [
        ("prompts/list", "prompts"),
        ("resources/list", "resources"),
        ("resources/templates/list", "resourceTemplates"),
    ] {
        let (s, _, reply) = post_raw(
            &url,
            &modern_headers(method, None),
            modern(8, method, json!({})),
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(reply["result"][key], json!([]));
        assert_eq!(reply["result"]["cacheScope"], "public");
    }
    still_serving(&gateway).await;
}

#[tokio::test]
async fn legacy_handshake_negotiates_and_paginates() {
    let (_u, gateway) = start().await;
    let url = gateway.url();
    let init = |v: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
    };
    for (asked, got) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2025-11-25"),
        ("2026-07-28", "2025-11-25"),
    ] {
        let (s, headers, reply) = post_raw(&url, LEGACY, init(asked)).await;
        assert_eq!(s, 200);
        assert_eq!(reply["result"]["protocolVersion"], got, "{asked}");
        assert_eq!(reply["result"]["serverInfo"]["name"], "proto");
        assert_eq!(reply["result"]["instructions"], Value::Null);
        assert!(reply["result"].get("resultType").is_none());
        assert!(
            headers.get("mcp-session-id").is_none(),
            "no session state is kept"
        );
    }
    // Unsupported MCP-Protocol-Version header on a legacy request.
    let mut bad = LEGACY.to_vec();
    bad.push(("mcp-protocol-version", "1999-01-01"));
    let (s, _, reply) = post_raw(
        &url,
        &bad,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!((s, reply["error"]["code"].as_i64()), (400, Some(-32022)));
    // Pagination: page_size 2 over the catalog, cursors chain to the end, garbage is rejected.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params})
            .to_string();
        let (s, _, reply) = post_raw(&url, LEGACY, body).await;
        assert_eq!(s, 200);
        let page = reply["result"]["tools"].as_array().unwrap();
        assert!(page.len() <= 2);
        names.extend(page.iter().map(|t| t["name"].as_str().unwrap().to_string()));
        match reply["result"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names.len(), 9, "{names:?}");
    let body =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": "garbage"}})
            .to_string();
    let (_, _, reply) = post_raw(&url, LEGACY, body).await;
    assert_eq!(reply["error"]["code"], -32602);
}

/// Found by the conformance suite (sep-2164-resource-not-found, `sep-2164-data-uri`): a
/// `resources/read` for an unknown URI answers -32602 with the URI in `error.data.uri`.
#[tokio::test]
async fn resources_read_reports_the_unknown_uri() {
    let (_u, gateway) = start().await;
    let url = gateway.url();
    let uri = "test://nowhere";
    let (s, _, reply) = post_raw(
        &url,
        &modern_headers("resources/read", Some(uri)),
        modern(1, "resources/read", json!({"uri": uri})),
    )
    .await;
    assert_eq!(s, 200, "{reply}");
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert_eq!(reply["error"]["data"]["uri"], uri, "{reply}");
    let body =
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": uri}})
            .to_string();
    let (s, _, reply) = post_raw(&url, LEGACY, body).await;
    assert_eq!(s, 200, "{reply}");
    assert_eq!(
        (
            reply["error"]["code"].as_i64(),
            reply["error"]["data"]["uri"].as_str()
        ),
        (Some(-32602), Some(uri)),
        "{reply}"
    );
    let body =
        json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": {}}).to_string();
    let (_, _, reply) = post_raw(&url, LEGACY, body).await;
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
}
