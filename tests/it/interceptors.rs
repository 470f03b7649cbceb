//! Request and response interceptors (`interceptors:`) with AgentCore Gateway's contract,
//! served as webhooks by the test on 127.0.0.1: what the hook receives, what its answers do
//! (rewrite, answer directly, replace the answer), and how a failing hook fails. Each test
//! proves its claim by what the hook and the upstream received.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{
    Answer, Gateway, Recorded, Upstream, fixture, modern_headers, modern_meta, post_raw,
};
use http::HeaderMap;
use serde_json::{Value, json};

/// The REST upstream: one pet.
async fn pets() -> Upstream {
    Upstream::start(|r: &Recorded| {
        if r.path().contains("/pets/") {
            Answer::Json(
                200,
                json!({"id": 1, "name": "Rex", "tag": "alice@example.com"}),
            )
        } else {
            Answer::Json(404, json!({"error": "no route"}))
        }
    })
    .await
}

/// A gateway in front of `upstream` with `interceptors` (YAML list items, `{hook}`
/// replaced by the webhook's URL).
async fn gateway(upstream: &Upstream, hook: &Upstream, interceptors: &str) -> Gateway {
    let yaml = format!(
        "interceptors:\n{}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
        crate::auth::indent(&interceptors.replace("{hook}", &hook.url()), 2),
        upstream.url()
    );
    Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await
}

/// One 2026-07-28 `tools/call` of `api___getPet` with `arguments`, with an
/// `Authorization` header of its own (no inbound auth is configured).
async fn get_pet(gateway: &Gateway, arguments: Value) -> (u16, HeaderMap, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "api___getPet", "arguments": arguments, "_meta": modern_meta()}});
    let mut headers = modern_headers("tools/call", Some("api___getPet"));
    headers.push(("authorization", "Bearer caller-secret"));
    headers.push(("x-tenant", "blue"));
    post_raw(&gateway.url(), &headers, body.to_string()).await
}

/// The interceptor output `{"interceptorOutputVersion":"1.0","mcp": mcp}`.
fn output(mcp: Value) -> Answer {
    Answer::Json(200, json!({"interceptorOutputVersion": "1.0", "mcp": mcp}))
}

/// The value of the `toolgate_interceptor_calls_total` series of `labels` (0 when absent).
fn calls(metrics: &str, interceptor: &str, phase: &str, outcome: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("toolgate_interceptor_calls_total{"))
        .filter(|l| {
            l.contains(&format!("interceptor=\"{interceptor}\""))
                && l.contains(&format!("phase=\"{phase}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_request_hook_rewrites_an_argument_and_the_upstream_sees_the_rewrite() {
    let upstream = pets().await;
    let hook = Upstream::start(|r: &Recorded| {
        let mut message = r.json()["mcp"]["gatewayRequest"]["body"].clone();
        message["params"]["arguments"]["petId"] = json!("rewritten-42");
        output(json!({"transformedGatewayRequest": {"body": message}}))
    })
    .await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: rw\n  on: [request]\n  webhook: { url: \"{hook}/hook\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.next().await.path(), "/api/pets/rewritten-42");

    // What the hook received: the contract's input, the JSON-RPC message as an object, and
    // no headers (pass_request_headers is off).
    let seen = hook.next().await;
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path(), "/hook");
    let input = seen.json();
    assert_eq!(input["interceptorInputVersion"], "1.0");
    let request = &input["mcp"]["gatewayRequest"];
    assert_eq!(request["path"], "/mcp");
    assert_eq!(request["httpMethod"], "POST");
    assert_eq!(request["body"]["method"], "tools/call");
    assert_eq!(
        request["body"]["params"]["arguments"],
        json!({"petId": "1"})
    );
    assert!(request.get("headers").is_none(), "{input}");
    assert!(input["mcp"].get("gatewayResponse").is_none(), "{input}");
    assert!(!seen.body.windows(13).any(|w| w == b"caller-secret"));

    let metrics = gateway.metrics_text().await;
    assert_eq!(
        calls(&metrics, "rw", "request", "transformed"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_hook_answers_directly_and_the_upstream_is_never_called() {
    let upstream = pets().await;
    let hook = Upstream::start(|r: &Recorded| {
        let id = r.json()["mcp"]["gatewayRequest"]["body"]["id"].clone();
        output(json!({"transformedGatewayResponse": {"statusCode": 200, "body": {
            "jsonrpc": "2.0", "id": id,
            "result": {"isError": true, "content": [{"type": "text", "text": "denied by policy"}]}}}}))
    })
    .await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: deny\n  on: [request]\n  webhook: { url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["content"][0]["text"], "denied by policy");
    hook.wait_for(1).await;
    assert_eq!(upstream.count(), 0, "the upstream was called");
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        calls(&metrics, "deny", "request", "answered"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rewrite_that_violates_the_schema_is_still_refused_by_validation() {
    let upstream = pets().await;
    let hook = Upstream::start(|r: &Recorded| {
        let mut message = r.json()["mcp"]["gatewayRequest"]["body"].clone();
        message["params"]["arguments"] = json!({"petId": 42});
        output(json!({"transformedGatewayRequest": {"body": message}}))
    })
    .await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: bad\n  on: [request]\n  webhook: { url: \"{hook}\" }",
    )
    .await;

    let (_, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(body["result"]["isError"], true, "{body}");
    let text = body["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(text.contains("petId"), "{body}");
    hook.wait_for(1).await;
    assert_eq!(
        upstream.count(),
        0,
        "invalid arguments reached the upstream"
    );
}

#[tokio::test]
async fn a_response_hook_redacts_a_field_of_the_answer() {
    let upstream = pets().await;
    let hook = Upstream::start(|r: &Recorded| {
        let input = r.json();
        let mut answer = input["mcp"]["gatewayResponse"]["body"].clone();
        answer["result"]["structuredContent"]["tag"] = json!("[redacted]");
        answer["result"]["content"] = json!([{"type": "text", "text": "[redacted]"}]);
        output(json!({"transformedGatewayResponse": {"statusCode": 200, "body": answer}}))
    })
    .await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: redact\n  on: [response]\n  webhook: { url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["tag"], "[redacted]",
        "{body}"
    );
    assert_eq!(body["result"]["structuredContent"]["name"], "Rex", "{body}");
    assert!(!body.to_string().contains("alice@example.com"), "{body}");

    // The hook saw the request and the real answer.
    let input = hook.next().await.json();
    assert_eq!(
        input["mcp"]["gatewayRequest"]["body"]["params"]["name"],
        "api___getPet"
    );
    let response = &input["mcp"]["gatewayResponse"];
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["body"]["id"], 7);
    assert_eq!(
        response["body"]["result"]["structuredContent"]["tag"],
        "alice@example.com"
    );
    upstream.next().await;
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        calls(&metrics, "redact", "response", "transformed"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn headers_reach_the_hook_only_with_pass_request_headers() {
    let upstream = pets().await;
    let hook = Upstream::start(|r: &Recorded| {
        // Adds a header; a hook's Authorization is ignored (the caller is settled).
        let _ = r;
        output(json!({"transformedGatewayRequest": {"headers": {
            "X-Request-Tag": "from-hook", "Authorization": "Bearer forged"}}}))
    })
    .await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: quiet\n  on: [request]\n  webhook: { url: \"{hook}/quiet\" }\n\
         - name: loud\n  on: [request]\n  pass_request_headers: true\n  webhook: { url: \"{hook}/loud\", headers: { x-hook-key: k-123 } }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200, "{body}");
    let quiet = hook.next().await;
    let loud = hook.next().await;
    // Config order.
    assert_eq!((quiet.path(), loud.path()), ("/quiet", "/loud"));
    assert!(
        quiet.json()["mcp"]["gatewayRequest"]
            .get("headers")
            .is_none()
    );
    assert_eq!(quiet.header("x-hook-key"), None);
    let headers = loud.json()["mcp"]["gatewayRequest"]["headers"].clone();
    assert_eq!(
        headers["authorization"], "Bearer caller-secret",
        "{headers}"
    );
    assert_eq!(headers["x-tenant"], "blue", "{headers}");
    assert_eq!(headers["mcp-method"], "tools/call", "{headers}");
    // The first hook's added header is what the second one sees.
    assert_eq!(headers["x-request-tag"], "from-hook", "{headers}");
    assert_eq!(loud.header("x-hook-key"), Some("k-123"));
    // The upstream got no Authorization from anyone (the target has no credentials).
    let seen = upstream.next().await;
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn a_hanging_hook_fails_closed_within_its_timeout() {
    let upstream = pets().await;
    let hook = Upstream::start(|_: &Recorded| Answer::Hang).await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: slow\n  on: [request]\n  timeout: 300ms\n  webhook: { url: \"{hook}\", headers: { x-secret: s3cr3t } }",
    )
    .await;

    let started = Instant::now();
    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(body["error"]["code"], -32603);
    assert_eq!(
        body["error"]["message"],
        "interceptor `slow` failed: timeout after 300ms"
    );
    assert!(!body.to_string().contains("s3cr3t"));
    assert!(!body.to_string().contains(&hook.addr.to_string()));
    assert_eq!(hook.count(), 1);
    assert_eq!(upstream.count(), 0, "a failed hook let the call through");
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        calls(&metrics, "slow", "request", "timeout"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_hook_with_fail_open_lets_the_call_proceed_untouched() {
    let upstream = pets().await;
    let hook = Upstream::start(|_: &Recorded| Answer::Json(500, json!({"oops": true}))).await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: flaky\n  on: [request, response]\n  fail: open\n  webhook: { url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["structuredContent"]["tag"], "alice@example.com",
        "{body}"
    );
    assert_eq!(upstream.next().await.path(), "/api/pets/1");
    hook.wait_for(2).await;
    let metrics = gateway.metrics_text().await;
    assert_eq!(
        calls(&metrics, "flaky", "request", "error"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        calls(&metrics, "flaky", "response", "error"),
        1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_hook_fails_closed_by_default_and_an_invalid_answer_is_a_failure() {
    let upstream = pets().await;
    // Valid JSON, but not an interceptor output of version 1.0.
    let hook = Upstream::start(|_: &Recorded| Answer::Json(200, json!({"mcp": {}}))).await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: odd\n  on: [request]\n  webhook: { url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"]["message"],
        "interceptor `odd` failed: invalid answer: `interceptorOutputVersion` must be \"1.0\""
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_hook_sees_only_its_methods() {
    let upstream = pets().await;
    let hook = Upstream::start(|_: &Recorded| output(json!({}))).await;
    let gateway = gateway(
        &upstream,
        &hook,
        "- name: calls\n  on: [request]\n  webhook: { url: \"{hook}\" }",
    )
    .await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": modern_meta()}});
    let (status, _, body) = post_raw(
        &gateway.url(),
        &modern_headers("tools/list", None),
        list.to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hook.count(), 0, "a tools/call hook saw tools/list");
    let (status, _, _) = get_pet(&gateway, json!({"petId": "1"})).await;
    assert_eq!(status, 200);
    assert_eq!(hook.count(), 1);
    let metrics = gateway.metrics_text().await;
    assert_eq!(calls(&metrics, "calls", "request", "ok"), 1.0, "{metrics}");
}

/// A fake Invoke API (the SDK's wire protocol, as in `lambda_target`): `upper` answers with
/// the message's `petId` upper-cased; `broken` fails as a function (`X-Amz-Function-Error`).
fn invoke_api(r: &Recorded) -> Answer {
    let function = r
        .path()
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|p| p.strip_suffix("/invocations"))
        .unwrap_or("")
        .to_string();
    match function.as_str() {
        "upper" => {
            let mut message = r.json()["mcp"]["gatewayRequest"]["body"].clone();
            let id = message["params"]["arguments"]["petId"]
                .as_str()
                .unwrap_or("")
                .to_uppercase();
            message["params"]["arguments"]["petId"] = json!(id);
            output(json!({"transformedGatewayRequest": {"body": message}}))
        }
        _ => Answer::JsonWith(
            200,
            json!({"errorType": "Boom", "errorMessage": "it broke"}),
            vec![("x-amz-function-error", "Unhandled")],
        ),
    }
}

#[tokio::test]
async fn a_lambda_interceptor_is_invoked_with_the_same_payload() {
    let upstream = pets().await;
    let lambda = Upstream::start(invoke_api).await;
    let gateway = gateway(
        &upstream,
        &lambda,
        "- name: upper\n  on: [request]\n  lambda: { function: upper, region: us-east-1, endpoint_url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "abc"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.next().await.path(), "/api/pets/ABC");
    let invoke = lambda.next().await;
    assert_eq!(invoke.method, "POST");
    assert_eq!(invoke.path(), "/2015-03-31/functions/upper/invocations");
    assert!(
        invoke
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256"))
    );
    let input = invoke.json();
    assert_eq!(input["interceptorInputVersion"], "1.0");
    assert_eq!(
        input["mcp"]["gatewayRequest"]["body"]["params"]["arguments"]["petId"],
        "abc"
    );
}

#[tokio::test]
async fn a_failing_lambda_interceptor_fails_closed() {
    let upstream = pets().await;
    let lambda = Upstream::start(invoke_api).await;
    let gateway = gateway(
        &upstream,
        &lambda,
        "- name: broken\n  on: [request]\n  lambda: { function: broken, region: us-east-1, endpoint_url: \"{hook}\" }",
    )
    .await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "abc"})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        body["error"]["message"],
        "interceptor `broken` failed: the function returned an error"
    );
    assert_eq!(lambda.count(), 1);
    assert_eq!(upstream.count(), 0);
}

/// A real `lambda_runtime` function (`tests/lambda-fixtures/src/bin/interceptor.rs`) served
/// by `cargo lambda watch`: it rewrites one call and answers another directly.
#[tokio::test]
async fn a_cargo_lambda_function_rewrites_and_answers_as_an_interceptor() {
    use crate::lambda_target::LambdaWatch;
    let watch = tokio::task::spawn_blocking(LambdaWatch::start)
        .await
        .unwrap();
    let upstream = pets().await;
    let yaml = format!(
        "interceptors:\n  - name: upper\n    on: [request]\n    timeout: 60s\n    lambda: {{ function: interceptor, region: us-east-1, endpoint_url: \"{}\" }}\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
        watch.url(),
        upstream.url()
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;

    let (status, _, body) = get_pet(&gateway, json!({"petId": "abc"})).await;
    assert_eq!(status, 200, "{body}\n{}", watch.log_text());
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.next().await.path(), "/api/pets/ABC");

    let (status, _, body) = get_pet(&gateway, json!({"petId": "deny"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7);
    assert_eq!(
        body["result"]["content"][0]["text"],
        "denied by the interceptor"
    );
    assert_eq!(upstream.count(), 1, "a denied call reached the upstream");

    drop(gateway);
    tokio::task::spawn_blocking(move || drop(watch))
        .await
        .unwrap();
}

#[test]
fn config_errors_name_the_file_and_line() {
    let parse = |yaml: &str| {
        toolgate::config::Config::parse(yaml, Path::new("gw.yaml"))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let cases = [
        (
            "interceptors:\n  - name: a\n    on: [request]\n",
            "gw.yaml:2:5: interceptor `a`: give exactly one of `lambda` or `webhook`",
        ),
        (
            "interceptors:\n  - name: a\n    on: []\n    webhook: { url: \"http://h\" }\n",
            "gw.yaml:2:5: interceptor `a`: `on` must list `request`, `response` or both",
        ),
        (
            "interceptors:\n  - name: a\n    on: [request]\n    webhook: { url: \"http://h\" }\n  - name: a\n    on: [response]\n    webhook: { url: \"http://h\" }\n",
            "gw.yaml:5:5: interceptor `a` is defined twice: names must be unique",
        ),
        (
            "interceptors:\n  - name: a\n    on: [request]\n    webhook:\n      url: ftp://h/x\n",
            "gw.yaml:5:7: interceptor `a`: webhook.url must be an absolute http:// or https:// URL",
        ),
        (
            "interceptors:\n  - name: a\n    on: [request]\n    methods: [resources/read]\n    webhook: { url: \"http://h\" }\n",
            "gw.yaml:2:5: interceptor `a`: unknown method `resources/read` in `methods`: use tools/call, tools/list or \"*\"",
        ),
        (
            "interceptors:\n  - name: a\n    on: [request]\n    timeout: 0s\n    webhook: { url: \"http://h\" }\n",
            "gw.yaml:2:5: interceptor `a`: timeout must be more than 0 and at most 300s",
        ),
        (
            "interceptors:\n  - name: a\n    on: [request]\n    lambda:\n      function: \"\"\n",
            "gw.yaml:5:7: interceptor `a`: lambda.function is empty",
        ),
    ];
    for (yaml, expected) in cases {
        let error = parse(yaml);
        assert!(
            error.starts_with(expected),
            "{yaml}\n got: {error}\nwant: {expected}"
        );
    }
    let unknown = parse("interceptors:\n  - name: a\n    on: [request]\n    webhok: {}\n");
    assert!(unknown.starts_with("gw.yaml:4"), "{unknown}");
}
