//! Signed, self-contained session ids (`gateway.session`): issued by `initialize`,
//! accepted by every gateway holding the same key, refused with 404 when forged, altered,
//! expired, signed by another key or presented by another caller.

use std::time::{Duration, SystemTime};

use crate::support::idp::Idp;
use crate::support::{Answer, Gateway, Lifecycle, Upstream, args, client, fixture, text_of};
use http::HeaderMap;
use serde_json::{Value, json};

const KEY: &str = "a-session-key-of-at-least-32-bytes!!";
const OTHER_KEY: &str = "another-key-of-at-least-32-bytes-long";

fn pets(_: &crate::support::Recorded) -> Answer {
    Answer::Json(200, json!([{"id": 1, "name": "Rex"}]))
}

fn yaml(upstream: &Upstream, session: &str, extra: &str) -> String {
    format!(
        r#"
gateway:
{session}
{extra}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{}/api" }}
"#,
        upstream.url()
    )
}

async fn gateway(upstream: &Upstream, session: &str, extra: &str) -> Gateway {
    Gateway::start(
        &yaml(upstream, session, extra),
        &[("testapi.yaml", &fixture("testapi.yaml"))],
    )
    .await
}

/// One handshake-era POST with optional session id, `MCP-Protocol-Version` and bearer token.
async fn legacy(
    gateway: &Gateway,
    session: Option<&str>,
    version: Option<&str>,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> (u16, HeaderMap, Value) {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", "application/json, text/event-stream".to_string()),
    ];
    if let Some(s) = session {
        headers.push(("mcp-session-id", s.to_string()));
    }
    if let Some(v) = version {
        headers.push(("mcp-protocol-version", v.to_string()));
    }
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    crate::support::post_raw(&gateway.url(), &headers, body.to_string()).await
}

async fn initialize(gateway: &Gateway, version: &str, token: Option<&str>) -> String {
    let params = json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "session-test", "version": "1"}
    });
    let (status, headers, body) = legacy(gateway, None, None, token, "initialize", params).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["protocolVersion"], version);
    headers
        .get("mcp-session-id")
        .unwrap_or_else(|| panic!("initialize issues a session id: {headers:?}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
}

fn session_block(key: &str) -> String {
    format!("  session:\n    key: \"{key}\"\n    ttl: 1h")
}

#[tokio::test]
async fn a_session_opened_on_one_replica_is_served_by_another_and_forgeries_are_not() {
    let upstream = Upstream::start(pets).await;
    let a = gateway(&upstream, &session_block(KEY), "").await;
    let b = gateway(&upstream, &session_block(KEY), "").await;
    let foreign = gateway(&upstream, &session_block(OTHER_KEY), "").await;

    // A 2025-03-26 client never repeats the revision in a header: the session carries it.
    let id = initialize(&a, "2025-03-26", None).await;
    assert!(id.len() < 100 && id.is_ascii(), "{id}");
    let (status, _, body) = legacy(&b, Some(&id), None, None, "tools/list", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "api___listPets"),
        "{body}"
    );
    let (status, _, body) = legacy(
        &b,
        Some(&id),
        None,
        None,
        "tools/call",
        json!({"name": "api___listPets", "arguments": {}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["isError"], false, "{body}");
    let b_metrics = b.metrics_text().await;
    assert_eq!(
        sample(
            &b_metrics,
            r#"toolgate_mcp_requests_total{method="tools/call",revision="2025-03-26"}"#
        ),
        1.0,
        "the revision came from the session id"
    );
    assert_eq!(
        sample(
            &a.metrics_text().await,
            r#"toolgate_sessions_total{event="issued"}"#
        ),
        1.0
    );

    // A later revision sends its header; it must agree with the session's.
    let id = initialize(&a, "2025-06-18", None).await;
    let (status, _, _) = legacy(&b, Some(&id), Some("2025-06-18"), None, "ping", json!({})).await;
    assert_eq!(status, 200);
    let (status, _, body) =
        legacy(&b, Some(&id), Some("2025-11-25"), None, "ping", json!({})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not match the revision this session negotiated ('2025-06-18')"),
        "{body}"
    );

    // Another key: not this gateway's session; the client must initialize again.
    let (status, _, body) = legacy(&foreign, Some(&id), None, None, "tools/list", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("send initialize again"),
        "{body}"
    );
    // Every altered character is caught (HMAC over the whole payload).
    let mut refused = 0;
    for i in [3, 10, 20, 40, 60, id.len() - 1] {
        let mut bytes = id.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        let (status, _, _) = legacy(&b, Some(&altered), None, None, "ping", json!({})).await;
        assert_eq!(status, 404, "altered at {i}");
        refused += 1;
    }
    for garbage in ["", "abc", "v1.", "v1.%%%%"] {
        let (status, _, _) = legacy(&b, Some(garbage), None, None, "ping", json!({})).await;
        assert_eq!(status, 404, "{garbage:?}");
        refused += 1;
    }
    assert_eq!(
        sample(
            &b.metrics_text().await,
            r#"toolgate_sessions_total{event="unknown"}"#
        ),
        f64::from(refused)
    );

    // An id this key signed long ago has expired (made here with the gateway's own signer
    // at a past time, so nothing waits for a clock).
    let old =
        toolgate::mcp::session::SessionKeys::new(KEY.as_bytes(), &[], Duration::from_secs(3600))
            .issue(
                "2025-11-25",
                None,
                SystemTime::now() - Duration::from_secs(7200),
            );
    let (status, _, body) = legacy(&b, Some(&old), None, None, "ping", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let fresh =
        toolgate::mcp::session::SessionKeys::new(KEY.as_bytes(), &[], Duration::from_secs(3600))
            .issue("2025-11-25", None, SystemTime::now());
    let (status, _, _) = legacy(&b, Some(&fresh), None, None, "ping", json!({})).await;
    assert_eq!(status, 200, "the same key, in date: accepted");
    assert_eq!(
        sample(
            &b.metrics_text().await,
            r#"toolgate_sessions_total{event="expired"}"#
        ),
        1.0
    );

    // 2026-07-28 has no sessions: a stray header is ignored there.
    let mut params = json!({});
    params["_meta"] = crate::support::modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params});
    let mut headers = crate::support::modern_headers("tools/list", None);
    headers.push(("mcp-session-id", "not-a-session"));
    let (status, headers, _) = crate::support::post_raw(&b.url(), &headers, body.to_string()).await;
    assert_eq!(status, 200);
    assert!(headers.get("mcp-session-id").is_none());
}

#[tokio::test]
async fn the_rust_sdk_keeps_its_session_across_replicas_sharing_a_key() {
    let upstream = Upstream::start(pets).await;
    let a = gateway(&upstream, &session_block(KEY), "").await;
    let b = gateway(&upstream, &session_block(KEY), "").await;
    let id = initialize(&a, "2025-11-25", None).await;
    // The SDK's own session against a, every request after the handshake carrying the id.
    let sdk = client(
        &a.url(),
        Lifecycle::Initialize(rmcp::model::ProtocolVersion::V_2025_11_25),
    )
    .await;
    let result = sdk
        .call_tool(
            rmcp::model::CallToolRequestParams::new("api___listPets")
                .with_arguments(args(json!({}))),
        )
        .await
        .unwrap();
    assert!(text_of(&result).contains("Rex"));
    assert_eq!(
        sample(
            &a.metrics_text().await,
            r#"toolgate_sessions_total{event="issued"}"#
        ),
        2.0,
        "the SDK got a session id too"
    );
    sdk.cancel().await.unwrap();
    // The raw session from a, on b, with the header the 2025-11-25 revision sends.
    let (status, _, body) = legacy(
        &b,
        Some(&id),
        Some("2025-11-25"),
        None,
        "tools/list",
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(
            &b.metrics_text().await,
            r#"toolgate_sessions_total{event="unknown"}"#
        ),
        0.0
    );
}

#[tokio::test]
async fn without_a_key_no_session_is_issued_and_rotation_keeps_old_sessions() {
    let upstream = Upstream::start(pets).await;
    let plain = gateway(&upstream, "  name: plain", "").await;
    let params = json!({"protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}});
    let (status, headers, _) = legacy(&plain, None, None, None, "initialize", params).await;
    assert_eq!(status, 200);
    assert!(
        headers.get("mcp-session-id").is_none(),
        "stateless by default"
    );
    let (status, _, _) = legacy(&plain, Some("whatever"), None, None, "ping", json!({})).await;
    assert_eq!(status, 200, "ids are not checked when sessions are off");

    // Rotation: the new key signs, the previous one is still accepted.
    let old = gateway(&upstream, &session_block(KEY), "").await;
    let id = initialize(&old, "2025-11-25", None).await;
    let rotated = gateway(
        &upstream,
        &format!("  session:\n    key: \"{OTHER_KEY}\"\n    previous_keys: [\"{KEY}\"]"),
        "",
    )
    .await;
    let (status, _, _) = legacy(&rotated, Some(&id), None, None, "ping", json!({})).await;
    assert_eq!(
        status, 200,
        "a session of the previous key survives the rotation"
    );
    let new_id = initialize(&rotated, "2025-11-25", None).await;
    let (status, _, _) = legacy(&old, Some(&new_id), None, None, "ping", json!({})).await;
    assert_eq!(status, 404, "a new session is signed with the new key");
}

#[tokio::test]
async fn a_session_belongs_to_the_caller_that_opened_it() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let resource = "https://gateway.test/mcp";
    let inbound = format!(
        "inbound:\n  resource: {resource}\n  jwt:\n    discovery_url: {}\n    audiences: [{resource}]",
        idp.discovery_url()
    );
    let a = gateway(&upstream, &session_block(KEY), &inbound).await;
    let b = gateway(&upstream, &session_block(KEY), &inbound).await;
    let alice = idp.token("agent-1", resource, "tools:read").await;
    let mallory = idp.token("agent-2", resource, "tools:read").await;
    let id = initialize(&a, "2025-11-25", Some(&alice)).await;
    let (status, _, body) =
        legacy(&b, Some(&id), None, Some(&alice), "tools/list", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) =
        legacy(&b, Some(&id), None, Some(&mallory), "tools/list", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to the caller"),
        "{body}"
    );
    // The token is checked before the session: no token, no session lookup at all.
    let (status, _, _) = legacy(&b, Some(&id), None, None, "tools/list", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(
        sample(
            &b.metrics_text().await,
            r#"toolgate_sessions_total{event="other_caller"}"#
        ),
        1.0
    );
}

#[test]
fn session_configuration_errors_are_precise_and_hide_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("testapi.yaml");
    std::fs::copy(&spec, dir.path().join("testapi.yaml")).unwrap();
    let target = "targets:\n  - name: api\n    openapi: { spec: testapi.yaml, base_url: http://127.0.0.1:9/api }\n";
    let cases = [
        (
            "gateway:\n  session:\n    key: short-secret-value\n",
            "gateway.session.key is 18 bytes; it must be at least 32",
        ),
        (
            "gateway:\n  session:\n    key_file: missing.key\n",
            "gateway.session.key_file: cannot read",
        ),
        (
            &format!("gateway:\n  session:\n    key: \"{KEY}\"\n    key_file: k\n") as &str,
            "gateway.session takes key or key_file, not both",
        ),
        (
            &format!("gateway:\n  session:\n    previous_keys: [\"{KEY}\"]\n"),
            "previous_keys needs gateway.session.key or key_file",
        ),
        (
            "gateway:\n  session:\n    keys: x\n",
            "unknown field `keys`",
        ),
    ];
    for (gateway, expected) in cases {
        let path = dir.path().join("gateway.yaml");
        std::fs::write(&path, format!("{gateway}{target}")).unwrap();
        let error = toolgate::gateway::load(&path).unwrap_err().to_string();
        assert!(error.contains(expected), "{expected:?} in {error}");
        assert!(error.contains("gateway.yaml"), "names the file: {error}");
        assert!(
            !error.contains("short-secret-value") && !error.contains(KEY),
            "{error}"
        );
    }
    // A key file works, its trailing newline ignored.
    std::fs::write(dir.path().join("session.key"), format!("{KEY}\n")).unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!("gateway:\n  session:\n    key_file: session.key\n{target}"),
    )
    .unwrap();
    let loaded = toolgate::gateway::load(&path).unwrap();
    let keys = loaded.sessions.expect("sessions on");
    let id = keys.issue("2025-11-25", None, SystemTime::now());
    let same =
        toolgate::mcp::session::SessionKeys::new(KEY.as_bytes(), &[], Duration::from_secs(60));
    assert!(same.verify(&id, None, SystemTime::now()).is_ok());
}
