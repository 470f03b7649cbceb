//! End to end: an rmcp client → toolgate → a recording REST upstream, over real sockets,
//! in every protocol revision.

use std::sync::Arc;

use crate::support::{
    Answer, Gateway, Lifecycle, Recorded, Upstream, all_lifecycles, client, fixture,
    modern_headers, modern_meta, post_raw,
};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

fn api(r: &Recorded) -> Answer {
    let path = r.path().to_string();
    match (r.method.as_str(), path.as_str()) {
        ("GET", "/api/pets") => Answer::Json(
            200,
            json!([{"id": 1, "name": "Rex", "tag": null}, {"id": 2, "name": "Tom", "tag": "cat"}]),
        ),
        ("POST", "/api/pets") => {
            let mut pet = r.json();
            pet["id"] = json!(3);
            Answer::Json(201, pet)
        }
        ("GET", "/api/pets/cut") => {
            Answer::Raw(200, "application/json", br#"{"id": 7, "na"#.to_vec())
        }
        ("GET", "/api/pets/off-schema") => Answer::Json(200, json!({"id": "seven"})),
        ("GET", "/api/pets/empty") => Answer::Raw(200, "application/json", Vec::new()),
        ("GET", "/api/pets/html") => Answer::Raw(200, "text/html", b"<p>Rex</p>".to_vec()),
        ("GET", p) if p.starts_with("/api/pets/") => {
            Answer::Json(200, json!({"id": 7, "name": "Rex", "tag": "dog"}))
        }
        ("DELETE", _) => Answer::Raw(204, "application/json", Vec::new()),
        ("PUT", p) if p.starts_with("/api/owners/") => Answer::Json(200, r.json()),
        ("GET", p) if p.starts_with("/api/fail/") => {
            let code: u16 = p.trim_start_matches("/api/fail/").parse().unwrap();
            Answer::Json(code, json!({"error": "boom", "code": code}))
        }
        ("GET", "/api/slow") => Answer::Hang,
        ("GET", "/api/text") => {
            Answer::Raw(200, "text/plain; charset=utf-8", b"plain hello".to_vec())
        }
        ("GET", "/api/secure") => Answer::Json(200, json!({"ok": true})),
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

fn config(upstream: &Upstream, extra: &str) -> String {
    format!(
        r#"
gateway:
  name: test-gateway
  instructions: "Test tools."
  page_size: 3
targets:
  - name: api
    openapi:
      spec: testapi.yaml
      base_url: {base}/api
      exclude: {{ operations: [slow, secure] }}
    timeout: 5s
  - name: slowapi
    openapi:
      spec: testapi.yaml
      base_url: {base}/api
      include: {{ operations: [slow] }}
    timeout: 300ms
{extra}
"#,
        base = upstream.url()
    )
}

async fn start() -> (Upstream, Gateway) {
    let upstream = Upstream::start(api).await;
    let gateway = Gateway::start(
        &config(&upstream, ""),
        &[("testapi.yaml", &fixture("testapi.yaml"))],
    )
    .await;
    (upstream, gateway)
}

use crate::support::{args, text_of};

#[tokio::test]
async fn every_revision_lists_pages_and_calls_tools() {
    let (upstream, gateway) = start().await;
    let mut calls = 0;
    for (version, lifecycle) in all_lifecycles() {
        let mcp = client(&gateway.url(), lifecycle).await;
        let info = mcp.peer_info().expect("server info");
        assert_eq!(
            info.protocol_version.as_str(),
            version,
            "negotiated revision"
        );
        // page_size is 3, so this takes several pages.
        let tools = mcp.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "api___listPets",
                "api___createPet",
                "api___getPet",
                "api___deletePet",
                "api___updateOwner",
                "api___failWith",
                "api___getText",
                "slowapi___slow"
            ],
            "{version}"
        );
        let get = tools.iter().find(|t| t.name == "api___getPet").unwrap();
        assert_eq!(get.input_schema["required"], json!(["petId"]));
        assert_eq!(get.annotations.as_ref().unwrap().read_only_hint, Some(true));

        let result = mcp
            .call_tool(
                CallToolRequestParams::new("api___getPet")
                    .with_arguments(args(json!({"petId": "7"}))),
            )
            .await
            .unwrap();
        calls += 1;
        assert_eq!(
            result.is_error,
            Some(false),
            "{version}: {}",
            text_of(&result)
        );
        assert_eq!(
            result.structured_content,
            Some(json!({"id": 7, "name": "Rex", "tag": "dog"}))
        );
        assert_eq!(
            serde_json::from_str::<Value>(&text_of(&result)).unwrap(),
            json!({"id": 7, "name": "Rex", "tag": "dog"})
        );
        assert_eq!(upstream.requests().last().unwrap().uri, "/api/pets/7");
        mcp.cancel().await.unwrap();
    }
    assert_eq!(upstream.count(), calls);
}

#[tokio::test]
async fn parameters_of_every_location_reach_the_upstream_exactly() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let result = mcp
        .call_tool(
            CallToolRequestParams::new("api___getPet").with_arguments(args(json!({
                "petId": "a/b c?d",
                "fields": ["name", "tag"],
                "tags": ["x y", "z&w"],
                "X-Request-Tag": "t-1",
                "session": "s 1",
            }))),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let r = upstream.requests().pop().unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path(), "/api/pets/a%2Fb%20c%3Fd");
    assert_eq!(r.query(), "fields=name,tag&tags=x%20y&tags=z%26w");
    assert_eq!(r.header("x-request-tag"), Some("t-1"));
    assert_eq!(r.header("cookie"), Some("session=s%201"));
    assert_eq!(r.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn json_bodies_flattened_or_nested_and_array_answers_wrapped() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(2).1).await;

    let created = mcp
        .call_tool(
            CallToolRequestParams::new("api___createPet")
                .with_arguments(args(json!({"name": "Bo", "age": 2}))),
        )
        .await
        .unwrap();
    assert_eq!(created.is_error, Some(false), "{}", text_of(&created));
    let r = upstream.requests().pop().unwrap();
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/api/pets"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), json!({"name": "Bo", "age": 2}));
    assert_eq!(created.structured_content.unwrap()["id"], 3);

    // `id` is both a path parameter and a body property: the body goes under `body`.
    let tools = mcp.list_all_tools().await.unwrap();
    let update = tools
        .iter()
        .find(|t| t.name == "api___updateOwner")
        .unwrap();
    assert!(
        update.input_schema["properties"]["body"].is_object(),
        "{:?}",
        update.input_schema
    );
    let updated = mcp
        .call_tool(
            CallToolRequestParams::new("api___updateOwner")
                .with_arguments(args(json!({"id": 5, "body": {"id": 6, "name": "Ann"}}))),
        )
        .await
        .unwrap();
    assert_eq!(updated.is_error, Some(false), "{}", text_of(&updated));
    let r = upstream.requests().pop().unwrap();
    assert_eq!((r.method.as_str(), r.path()), ("PUT", "/api/owners/5"));
    assert_eq!(r.json(), json!({"id": 6, "name": "Ann"}));

    let listed = mcp
        .call_tool(
            CallToolRequestParams::new("api___listPets").with_arguments(args(json!({"limit": 2}))),
        )
        .await
        .unwrap();
    assert_eq!(upstream.requests().pop().unwrap().uri, "/api/pets?limit=2");
    let structured = listed.structured_content.unwrap();
    assert_eq!(structured["result"][1]["name"], "Tom");
    let list_tool = tools.iter().find(|t| t.name == "api___listPets").unwrap();
    let schema = list_tool.output_schema.as_ref().unwrap();
    assert_eq!(schema["type"], "object");
    assert!(jsonschema::is_valid(
        &Value::Object((**schema).clone()),
        &structured
    ));

    let text = mcp
        .call_tool(CallToolRequestParams::new("api___getText"))
        .await
        .unwrap();
    assert_eq!(text_of(&text), "plain hello");
    assert_eq!(text.structured_content, None);

    let deleted = mcp
        .call_tool(
            CallToolRequestParams::new("api___deletePet")
                .with_arguments(args(json!({"petId": "9"}))),
        )
        .await
        .unwrap();
    assert_eq!(deleted.is_error, Some(false));
    assert!(text_of(&deleted).contains("204"), "{}", text_of(&deleted));
}

#[tokio::test]
async fn invalid_arguments_are_tool_errors_and_never_reach_the_upstream() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let result = mcp
        .call_tool(
            CallToolRequestParams::new("api___createPet")
                .with_arguments(args(json!({"name": "", "age": -1, "zzz": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("/name"), "{text}");
    assert!(text.contains("/age"), "{text}");
    assert!(text.contains("zzz"), "{text}");
    let missing = mcp
        .call_tool(CallToolRequestParams::new("api___getPet"))
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));
    assert!(text_of(&missing).contains("petId"), "{}", text_of(&missing));
    assert_eq!(upstream.count(), 0, "the upstream must not be called");
}

#[tokio::test]
async fn upstream_failures_and_timeouts_are_tool_errors() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    for code in [404, 500] {
        let result = mcp
            .call_tool(
                CallToolRequestParams::new("api___failWith")
                    .with_arguments(args(json!({"code": code}))),
            )
            .await
            .unwrap();
        assert_eq!(result.is_error, Some(true));
        let text = text_of(&result);
        assert!(text.contains(&code.to_string()), "{text}");
        assert!(
            text.contains("boom"),
            "the body excerpt is included: {text}"
        );
    }
    let slow = mcp
        .call_tool(CallToolRequestParams::new("slowapi___slow"))
        .await
        .unwrap();
    assert_eq!(slow.is_error, Some(true));
    assert!(
        text_of(&slow).contains("did not answer"),
        "{}",
        text_of(&slow)
    );
    assert_eq!(upstream.count(), 3);
    // The gateway keeps serving after all that.
    let ok = mcp
        .call_tool(
            CallToolRequestParams::new("api___getPet").with_arguments(args(json!({"petId": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(ok.is_error, Some(false));
}

#[tokio::test]
async fn unknown_tools_are_protocol_errors() {
    let (_upstream, gateway) = start().await;
    for (version, lifecycle) in all_lifecycles().into_iter().step_by(2) {
        let mcp = client(&gateway.url(), lifecycle).await;
        let err = mcp
            .call_tool(CallToolRequestParams::new("api___nope"))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Unknown tool") && msg.contains("api___nope"),
            "{version}: {msg}"
        );
    }
}

#[tokio::test]
async fn client_headers_never_leak_upstream_and_credentials_are_attached() {
    let upstream = Upstream::start(api).await;
    let extra = r#"
  - name: bearer
    openapi: { spec: testapi.yaml, base_url: BASE/api, include: { operations: [secure] } }
    credentials: { bearer: "${TOOLGATE_TEST_TOKEN:-tok-123}" }
  - name: keyh
    openapi: { spec: testapi.yaml, base_url: BASE/api, include: { operations: [secure] } }
    credentials: { api_key: { in: header, name: X-Api-Key, value: k-h } }
  - name: keyq
    openapi: { spec: testapi.yaml, base_url: BASE/api, include: { operations: [secure] } }
    credentials: { api_key: { in: query, name: api_key, value: "k q&1" } }
  - name: keyc
    openapi: { spec: testapi.yaml, base_url: BASE/api, include: { operations: [secure] } }
    credentials: { api_key: { in: cookie, name: sid, value: k-c } }
"#
    .replace("BASE", &upstream.url());
    let gateway = Gateway::start(
        &config(&upstream, &extra),
        &[("testapi.yaml", &fixture("testapi.yaml"))],
    )
    .await;
    let body = |name: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {}, "_meta": modern_meta()}})
        .to_string()
    };
    for (tool, check) in [
        (
            "bearer___secure",
            Box::new(|r: &Recorded| assert_eq!(r.header("authorization"), Some("Bearer tok-123")))
                as Box<dyn Fn(&Recorded)>,
        ),
        (
            "keyh___secure",
            Box::new(|r: &Recorded| assert_eq!(r.header("x-api-key"), Some("k-h"))),
        ),
        (
            "keyq___secure",
            Box::new(|r: &Recorded| assert_eq!(r.query(), "api_key=k%20q%261")),
        ),
        (
            "keyc___secure",
            Box::new(|r: &Recorded| assert_eq!(r.header("cookie"), Some("sid=k-c"))),
        ),
    ] {
        let mut headers = modern_headers("tools/call", Some(tool));
        headers.extend([
            ("authorization", "Bearer caller-secret"),
            ("mcp-session-id", "caller-session"),
            ("x-forwarded-for", "10.9.9.9"),
            ("cookie", "caller=1"),
        ]);
        let (status, _, reply) = post_raw(&gateway.url(), &headers, body(tool)).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["result"]["isError"], false, "{reply}");
        let r = upstream.requests().pop().unwrap();
        check(&r);
        for (name, value) in r.headers.iter() {
            let value = value.to_str().unwrap_or("");
            assert!(
                !value.contains("caller"),
                "caller header leaked: {name}: {value}"
            );
            assert!(
                !name.as_str().starts_with("mcp-"),
                "MCP header leaked: {name}"
            );
            assert_ne!(name.as_str(), "x-forwarded-for");
        }
        assert_eq!(r.header("host"), Some(upstream.addr.to_string().as_str()));
    }
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_calls() {
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let upstream =
        Upstream::start(move |_| Answer::After(gate.clone(), json!({"name": "done"}))).await;
    let mut gateway = Gateway::start(
        &config(&upstream, ""),
        &[("testapi.yaml", &fixture("testapi.yaml"))],
    )
    .await;
    let url = gateway.url();
    let call = tokio::spawn(async move {
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                          "params": {"name": "api___getPet", "arguments": {"petId": "1"}, "_meta": modern_meta()}});
        post_raw(
            &url,
            &modern_headers("tools/call", Some("api___getPet")),
            body.to_string(),
        )
        .await
    });
    upstream.wait_for(1).await;
    let drained = gateway.shutdown();
    // New connections are refused once shutdown began...
    let refused = loop {
        match reqwest::Client::new()
            .get(format!("http://{}/healthz", gateway.addr))
            .send()
            .await
        {
            Err(_) => break true,
            Ok(_) => tokio::task::yield_now().await,
        }
    };
    assert!(refused);
    // ...while the call in flight still completes.
    release.notify_one();
    let (status, _, reply) = call.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        reply["result"]["structuredContent"],
        json!({"name": "done"})
    );
    drained.await.unwrap();
}

#[tokio::test]
async fn results_of_tools_with_an_output_schema_conform_or_are_errors() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), Lifecycle::Discover).await;
    let call = |pet: &'static str| {
        mcp.call_tool(
            CallToolRequestParams::new("api___getPet").with_arguments(args(json!({"petId": pet}))),
        )
    };
    let ok = call("7").await.unwrap();
    assert_eq!(ok.is_error, Some(false));
    assert_eq!(
        ok.structured_content,
        Some(json!({"id": 7, "name": "Rex", "tag": "dog"}))
    );
    for (pet, reason) in [
        ("cut", "application/json that is not valid JSON"),
        ("off-schema", "does not match the tool's outputSchema"),
        ("empty", "with no content"),
        ("html", "text/html instead of JSON"),
    ] {
        let result = call(pet).await.unwrap();
        assert_eq!(result.is_error, Some(true), "{pet}: {result:?}");
        assert!(result.structured_content.is_none(), "{pet}");
        let text = text_of(&result);
        assert!(text.contains(reason), "{pet}: {text}");
    }
    // The model still sees what came back.
    assert!(text_of(&call("off-schema").await.unwrap()).contains(r#"{"id":"seven"}"#));
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics.contains(r#"toolgate_tool_calls_total{outcome="invalid_answer",target="api",tool="api___getPet"} 5"#),
        "{metrics}"
    );
    // Arrays are wrapped, as the schema says.
    let list = mcp
        .call_tool(CallToolRequestParams::new("api___listPets").with_arguments(args(json!({}))))
        .await
        .unwrap();
    assert_eq!(list.is_error, Some(false), "{list:?}");
    assert_eq!(list.structured_content.unwrap()["result"][1]["name"], "Tom");
    mcp.cancel().await.unwrap();

    // A target whose upstream strays from its document can leave its schemas out.
    let loose = format!(
        "  - name: loose\n    output_schemas: false\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
        upstream.url()
    );
    let gateway = Gateway::start(
        &config(&upstream, &loose),
        &[("testapi.yaml", &fixture("testapi.yaml"))],
    )
    .await;
    let mcp = client(&gateway.url(), Lifecycle::Discover).await;
    let tools = mcp.list_all_tools().await.unwrap();
    let tool = tools.iter().find(|t| t.name == "loose___getPet").unwrap();
    assert!(tool.output_schema.is_none(), "{tool:?}");
    let result = mcp
        .call_tool(
            CallToolRequestParams::new("loose___getPet")
                .with_arguments(args(json!({"petId": "off-schema"}))),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({"id": "seven"})));
    mcp.cancel().await.unwrap();
}

#[tokio::test]
async fn null_for_an_optional_argument_means_absent() {
    let (upstream, gateway) = start().await;
    let mcp = client(&gateway.url(), Lifecycle::Discover).await;
    // What CrewAI sends: every optional argument it was not given, as null.
    let result = mcp
        .call_tool(CallToolRequestParams::new("api___getPet").with_arguments(args(
            json!({"petId": "7", "fields": null, "tags": null, "X-Request-Tag": null, "session": null}),
        )))
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false), "{}", text_of(&result));
    let sent = upstream.requests().pop().unwrap();
    assert_eq!(sent.uri, "/api/pets/7", "nothing of the nulls is forwarded");
    assert!(sent.header("x-request-tag").is_none() && sent.header("cookie").is_none());
    // A required argument stays required; a nullable one keeps its null.
    let missing = mcp
        .call_tool(
            CallToolRequestParams::new("api___getPet").with_arguments(args(json!({"petId": null}))),
        )
        .await
        .unwrap();
    assert_eq!(missing.is_error, Some(true));
    assert!(
        text_of(&missing).contains("/petId"),
        "{}",
        text_of(&missing)
    );
    let created = mcp
        .call_tool(
            CallToolRequestParams::new("api___createPet")
                .with_arguments(args(json!({"name": "Bo", "tag": null, "age": null}))),
        )
        .await
        .unwrap();
    assert_eq!(created.is_error, Some(false), "{}", text_of(&created));
    assert_eq!(
        upstream.requests().pop().unwrap().json(),
        json!({"name": "Bo", "tag": null})
    );
    mcp.cancel().await.unwrap();
}
