//! Authentication against a real OpenID Connect provider (panva's oidc-provider, run by the
//! test on loopback): inbound JWT verification per the MCP authorization specification,
//! scopes per target and tool, RFC 9728 metadata, and outbound OAuth2 (client credentials,
//! token exchange, passthrough) as the upstream sees it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::idp::Idp;
use crate::support::{Answer, Gateway, Recorded, Upstream, fixture, modern_meta};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use serde_json::{Value, json};

const RESOURCE: &str = "https://gateway.test/mcp";
const ES_RESOURCE: &str = "https://es.gateway.test/mcp";
const ED_RESOURCE: &str = "https://ed.gateway.test/mcp";

fn pets(r: &Recorded) -> Answer {
    match (r.method.as_str(), r.path()) {
        ("GET", "/api/pets") => Answer::Json(200, json!([{"id": 1, "name": "Rex"}])),
        ("POST", "/api/pets") => Answer::Json(201, json!({"id": 2, "name": "Bo"})),
        ("GET", p) if p.starts_with("/api/pets/") => {
            Answer::Json(200, json!({"id": 1, "name": "Rex"}))
        }
        _ => Answer::Json(404, json!({"error": "no route"})),
    }
}

/// A gateway protected by `idp`, in front of `upstream`; `jwt_extra` and `target_extra` are
/// YAML lines added to `inbound.jwt` and to the target.
async fn gateway(idp: &Idp, upstream: &Upstream, jwt_extra: &str, target_extra: &str) -> Gateway {
    let yaml = format!(
        r#"
inbound:
  resource: {RESOURCE}
  jwt:
    discovery_url: {discovery}
    audiences: [{RESOURCE}, {ES_RESOURCE}, {ED_RESOURCE}]
{jwt_extra}
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{base}/api" }}
{target_extra}
"#,
        discovery = idp.discovery_url(),
        base = upstream.url(),
        jwt_extra = indent(jwt_extra, 4),
        target_extra = indent(target_extra, 4),
    );
    Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await
}

pub(crate) fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// POSTs one 2026-07-28 request with an optional bearer token.
pub(crate) async fn rpc(
    gateway: &Gateway,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> (u16, HeaderMap, Value) {
    let mut params = params;
    params["_meta"] = modern_meta();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(gateway.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.body(body.to_string()).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let value = resp.json().await.unwrap_or(Value::Null);
    (status, headers, value)
}

async fn list(gateway: &Gateway, token: Option<&str>) -> (u16, HeaderMap, Value) {
    rpc(gateway, token, "tools/list", json!({})).await
}

async fn call(gateway: &Gateway, token: &str, tool: &str, args: Value) -> (u16, HeaderMap, Value) {
    rpc(
        gateway,
        Some(token),
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await
}

fn challenge(headers: &HeaderMap) -> String {
    headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn bearer_of(r: &Recorded) -> Option<String> {
    r.header("authorization").map(|v| {
        v.strip_prefix("Bearer ")
            .expect("a bearer token")
            .to_string()
    })
}

/// The value of one Prometheus sample line, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn inbound_accepts_issued_tokens_and_refuses_every_forgery() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(&idp, &upstream, "", "").await;

    // No token: 401 pointing at the protected-resource metadata.
    let (status, headers, body) = list(&gateway, None).await;
    assert_eq!(status, 401, "{body}");
    let www = challenge(&headers);
    assert!(www.starts_with("Bearer "), "{www}");
    assert!(
        www.contains(
            r#"resource_metadata="https://gateway.test/.well-known/oauth-protected-resource/mcp""#
        ),
        "{www}"
    );
    assert!(
        !www.contains("error="),
        "no error code without a token: {www}"
    );
    assert_eq!(body["error"]["code"], -32600);

    // Tokens the IdP issues, signed RS256, ES256 and EdDSA: accepted.
    for (resource, alg) in [
        (RESOURCE, "RS256"),
        (ES_RESOURCE, "ES256"),
        (ED_RESOURCE, "EdDSA"),
    ] {
        let token = idp.token("agent-1", resource, "tools:read").await;
        assert_eq!(jwt_part(&token, 0)["alg"], alg);
        let (status, _, body) = list(&gateway, Some(&token)).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert!(tool_names(&body).contains(&"api___listPets".to_string()));
        assert_eq!(
            body["result"]["cacheScope"], "private",
            "lists depend on the caller"
        );
        let (status, _, body) = call(&gateway, &token, "api___listPets", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(body["result"]["isError"], false, "{body}");
    }
    // The caller's token never reaches the upstream of a target without credentials.
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );

    let valid = idp.token("agent-1", RESOURCE, "tools:read").await;
    let good_claims = |over: Value| {
        let mut c = json!({
            "iss": idp.issuer(), "aud": RESOURCE, "sub": "u1", "client_id": "agent-1",
            "scope": "tools:read", "iat": now(), "exp": now() + 600,
        });
        for (k, v) in over.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // Signed by the IdP's real key but not acceptable.
    let expired = idp
        .sign(
            good_claims(json!({"exp": now() - 3600, "iat": now() - 7200})),
            "RS256",
            false,
        )
        .await;
    let early = idp
        .sign(good_claims(json!({"nbf": now() + 3600})), "RS256", false)
        .await;
    let wrong_aud = idp
        .sign(
            good_claims(json!({"aud": "https://other.test/mcp"})),
            "RS256",
            false,
        )
        .await;
    let wrong_iss = idp
        .sign(
            good_claims(json!({"iss": "https://evil.test"})),
            "ES256",
            false,
        )
        .await;
    // The control: the same claims, nothing changed, pass.
    let control = idp.sign(good_claims(json!({})), "RS256", false).await;
    assert_eq!(list(&gateway, Some(&control)).await.0, 200);

    // Forgeries.
    let (h, p, s) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        )
    };
    let mut sig = URL_SAFE_NO_PAD.decode(s).unwrap();
    sig[10] ^= 0x55;
    let bad_signature = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(&sig));
    let kid = jwt_part(&valid, 0)["kid"].as_str().unwrap().to_string();
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string());
    let alg_none = format!("{none_header}.{p}.");
    // HS256 "signed" with the RSA public key (the classic algorithm-confusion attack).
    let jwks = idp.jwks().await;
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    let public_bytes = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hmac_with_public_key = jsonwebtoken::encode(
        &hs_header,
        &good_claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(&public_bytes),
    )
    .unwrap();
    let unknown_kid = idp.sign(good_claims(json!({})), "RS256", true).await;

    for (name, token, reason) in [
        ("expired", &expired, "expired"),
        ("not yet valid", &early, "not_yet_valid"),
        ("wrong audience", &wrong_aud, "audience"),
        ("wrong issuer", &wrong_iss, "issuer"),
        ("bad signature", &bad_signature, "signature"),
        ("alg none", &alg_none, "algorithm"),
        (
            "HS256 with the public key",
            &hmac_with_public_key,
            "algorithm",
        ),
        ("unknown kid", &unknown_kid, "unknown_kid"),
    ] {
        let (status, headers, body) = list(&gateway, Some(token)).await;
        assert_eq!(status, 401, "{name}: {body}");
        let www = challenge(&headers);
        assert!(www.contains(r#"error="invalid_token""#), "{name}: {www}");
        assert!(www.contains("resource_metadata="), "{name}: {www}");
        let (status, _, _) = call(&gateway, token, "api___listPets", json!({})).await;
        assert_eq!(status, 401, "{name}: tools/call too");
        let metrics = gateway.metrics_text().await;
        assert!(
            sample(
                &metrics,
                &format!("toolgate_auth_failures_total{{reason=\"{reason}\"}}")
            ) >= 2.0,
            "{name}: counted as {reason}"
        );
    }
    assert_eq!(upstream.count(), 3, "no refused call reached the upstream");
    assert!(
        sample(
            &gateway.metrics_text().await,
            "toolgate_auth_failures_total{reason=\"missing\"}"
        ) >= 1.0
    );

    // RFC 9728 metadata, at both paths, without a token.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let doc: Value = reqwest::get(format!("http://{}{path}", gateway.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(doc["resource"], RESOURCE, "{path}");
        assert_eq!(
            doc["authorization_servers"],
            json!([idp.issuer()]),
            "{path}"
        );
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
}

#[tokio::test]
async fn keys_rotate_without_restart_and_forged_kids_do_not_flood_the_idp() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(&idp, &upstream, "", "").await;
    let before = idp.token("agent-1", RESOURCE, "").await;
    assert_eq!(list(&gateway, Some(&before)).await.0, 200);
    let (_, jwks_fetches) = idp.stats().await;
    assert_eq!(jwks_fetches, 1, "keys fetched once at start");

    idp.rotate().await;
    let after = idp.token("agent-1", RESOURCE, "").await;
    assert_ne!(jwt_part(&after, 0)["kid"], jwt_part(&before, 0)["kid"]);
    let (status, _, body) = list(&gateway, Some(&after)).await;
    assert_eq!(
        status, 200,
        "a token signed with the new key is accepted: {body}"
    );
    assert_eq!(
        idp.stats().await.1,
        2,
        "the unknown kid caused one JWKS fetch"
    );
    // The old key is gone from the JWKS: its tokens are refused now.
    assert_eq!(list(&gateway, Some(&before)).await.0, 401);

    // A burst of tokens with forged kids: refused, and the IdP is not asked again (cooldown).
    for i in 0..20 {
        let forged = idp
            .sign(json!({"iss": idp.issuer(), "aud": RESOURCE, "exp": now() + 60, "sub": format!("f{i}")}), "ES256", true)
            .await;
        assert_eq!(list(&gateway, Some(&forged)).await.0, 401);
    }
    assert_eq!(idp.stats().await.1, 2, "forged kids caused no JWKS fetch");
    let metrics = gateway.metrics_text().await;
    assert!(
        sample(
            &metrics,
            "toolgate_jwks_refreshes_total{outcome=\"rate_limited\"}"
        ) >= 20.0
    );
    assert_eq!(
        sample(&metrics, "toolgate_jwks_refreshes_total{outcome=\"ok\"}"),
        2.0
    );
    // The new key keeps working.
    assert_eq!(list(&gateway, Some(&after)).await.0, 200);
}

#[tokio::test]
async fn clients_scopes_and_per_tool_visibility() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(
        &idp,
        &upstream,
        "allowed_clients: [agent-1, reader]\nrequired_scopes: [tools:read]",
        "scopes: [tools:read]\noperations:\n  createPet: { scopes: [tools:write] }\n  deletePet: { scopes: [admin, tools:write] }",
    )
    .await;

    // Without a token, the challenge names the scopes to ask for.
    let (_, headers, _) = list(&gateway, None).await;
    assert!(
        challenge(&headers).contains(r#"scope="tools:read""#),
        "{}",
        challenge(&headers)
    );

    // A client that is not allowed: 403.
    let other = idp
        .token("agent-2", RESOURCE, "tools:read tools:write admin")
        .await;
    let (status, headers, body) = list(&gateway, Some(&other)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge(&headers).contains("agent-2"),
        "{}",
        challenge(&headers)
    );

    // An allowed client without the required scope: 403 insufficient_scope.
    let no_read = idp.token("agent-1", RESOURCE, "admin").await;
    let (status, headers, _) = list(&gateway, Some(&no_read)).await;
    assert_eq!(status, 403);
    let www = challenge(&headers);
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    assert!(www.contains(r#"scope="tools:read""#), "{www}");

    // A reader sees only what it may call...
    let reader = idp.token("reader", RESOURCE, "tools:read").await;
    let (status, _, body) = list(&gateway, Some(&reader)).await;
    assert_eq!(status, 200);
    let names = tool_names(&body);
    assert!(names.contains(&"api___listPets".to_string()), "{names:?}");
    assert!(!names.contains(&"api___createPet".to_string()), "{names:?}");
    assert!(!names.contains(&"api___deletePet".to_string()), "{names:?}");
    assert_eq!(body["result"]["cacheScope"], "private");
    // ...and calling the others gets 403 with the scopes they need; the upstream is not called.
    let (status, headers, body) =
        call(&gateway, &reader, "api___createPet", json!({"name": "Bo"})).await;
    assert_eq!(status, 403, "{body}");
    let www = challenge(&headers);
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    assert!(www.contains(r#"scope="tools:write""#), "{www}");
    assert!(www.contains("resource_metadata="), "{www}");
    let (status, headers, _) =
        call(&gateway, &reader, "api___deletePet", json!({"petId": "1"})).await;
    assert_eq!(status, 403);
    assert!(challenge(&headers).contains(r#"scope="admin tools:write""#));
    assert_eq!(upstream.count(), 0);
    let (_, _, body) = call(&gateway, &reader, "api___listPets", json!({})).await;
    assert_eq!(body["result"]["isError"], false);

    // A client with every scope sees and calls everything.
    let admin = idp
        .token("agent-1", RESOURCE, "tools:read tools:write admin")
        .await;
    let (_, _, body) = list(&gateway, Some(&admin)).await;
    let names = tool_names(&body);
    assert!(
        names.contains(&"api___createPet".to_string())
            && names.contains(&"api___deletePet".to_string())
    );
    let (status, _, body) = call(&gateway, &admin, "api___createPet", json!({"name": "Bo"})).await;
    assert_eq!(
        (status, &body["result"]["isError"]),
        (200, &json!(false)),
        "{body}"
    );
    assert_eq!(upstream.count(), 2);

    let metrics = gateway.metrics_text().await;
    assert!(sample(&metrics, "toolgate_auth_failures_total{reason=\"client\"}") >= 1.0);
    assert!(
        sample(
            &metrics,
            "toolgate_auth_failures_total{reason=\"insufficient_scope\"}"
        ) >= 3.0
    );
    assert!(
        sample(
            &metrics,
            "toolgate_tool_calls_total{outcome=\"denied\",target=\"api\",tool=\"api___createPet\"}"
        ) >= 1.0,
        "denied calls are counted"
    );

    // The metadata lists the scopes in use.
    let doc: Value = reqwest::get(format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        gateway.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let supported = doc["scopes_supported"].as_array().unwrap();
    for s in ["tools:read", "tools:write", "admin"] {
        assert!(supported.contains(&json!(s)), "{doc}");
    }
}

#[tokio::test]
async fn claim_rules_and_the_cache_keyed_by_caller() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let gateway = gateway(
        &idp,
        &upstream,
        "claims:\n  - { claim: scope, contains_any: [tools:read, admin] }\n  - { claim: client_id, contains: reader }",
        "cache: { ttl: 10m }",
    )
    .await;
    let agent = idp.token("agent-1", RESOURCE, "tools:read").await;
    let (status, headers, _) = list(&gateway, Some(&agent)).await;
    assert_eq!(status, 403, "client_id rule");
    assert!(challenge(&headers).contains("client_id"));
    let reader = idp.token("reader", RESOURCE, "tools:read").await;
    assert_eq!(list(&gateway, Some(&reader)).await.0, 200);

    // `audiences: []` (issuers without `aud` in access tokens, like Amazon Cognito): the
    // client list decides, and a token without `aud` passes.
    let yaml = format!(
        "inbound:\n  resource: {RESOURCE}\n  jwt:\n    issuer: {iss}\n    jwks_uri: {iss}/jwks\n    audiences: []\n    allowed_clients: [agent-1]\ntargets: []\n",
        iss = idp.issuer()
    );
    let no_aud_gateway = Gateway::start(&yaml, &[]).await;
    let claims = |client: &str| json!({"iss": idp.issuer(), "client_id": client, "exp": now() + 60, "token_use": "access"});
    let no_aud = idp.sign(claims("agent-1"), "RS256", false).await;
    assert_eq!(list(&no_aud_gateway, Some(&no_aud)).await.0, 200);
    let other_client = idp.sign(claims("agent-2"), "RS256", false).await;
    assert_eq!(list(&no_aud_gateway, Some(&other_client)).await.0, 403);

    // scope: caller is the default with inbound auth: each caller fills its own entries.
    let gateway2 = self::gateway(&idp, &upstream, "", "cache: { ttl: 10m }").await;
    let a = idp.token("agent-1", RESOURCE, "").await;
    let a_again = idp.token("agent-1", RESOURCE, "").await;
    let b = idp.token("agent-2", RESOURCE, "").await;
    let start = upstream.count();
    call(&gateway2, &a, "api___listPets", json!({})).await;
    call(&gateway2, &a_again, "api___listPets", json!({})).await;
    assert_eq!(
        upstream.count(),
        start + 1,
        "same caller (sub + client), other token: a hit"
    );
    call(&gateway2, &b, "api___listPets", json!({})).await;
    assert_eq!(upstream.count(), start + 2, "another caller: its own entry");
}

#[tokio::test]
async fn outbound_client_credentials_are_fetched_once_and_renewed_on_401() {
    let idp = Idp::start().await;
    let refused_once = Arc::new(AtomicUsize::new(0));
    let refused = refused_once.clone();
    let upstream = Upstream::start(move |r: &Recorded| {
        if r.path() == "/api/pets/401" && refused.fetch_add(1, Ordering::SeqCst) == 0 {
            return Answer::Json(401, json!({"error": "token revoked"}));
        }
        pets(r)
    })
    .await;
    let up = upstream.url();
    let token_url = idp.token_url();
    let yaml = format!(
        r#"
inbound:
  resource: {RESOURCE}
  jwt: {{ discovery_url: "{discovery}" }}
targets:
  - name: post
    openapi: {{ spec: testapi.yaml, base_url: "{up}/api" }}
    credentials:
      oauth2: {{ token_url: "{token_url}", client_id: gateway-post, client_secret: gateway-post-secret,
                auth_method: post, resource: "{up}", scopes: [api:read] }}
  - name: basic
    openapi: {{ spec: testapi.yaml, base_url: "{up}/api" }}
    credentials:
      oauth2: {{ token_url: "{token_url}", client_id: gateway-basic, client_secret_file: secret.txt, resource: "{up}/basic" }}
  - name: wrongsecret
    openapi: {{ spec: testapi.yaml, base_url: "{up}/api" }}
    credentials:
      oauth2: {{ token_url: "{token_url}", client_id: gateway-basic, client_secret: not-the-secret }}
"#,
        discovery = idp.discovery_url(),
    );
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "gateway-basic-secret\n").unwrap();
    let gateway = Gateway::start(
        &yaml,
        &[
            ("testapi.yaml", &fixture("testapi.yaml")),
            ("secret.txt", secret.path()),
        ],
    )
    .await;
    let caller = idp.token("agent-1", RESOURCE, "").await;
    let (tokens_before, _) = idp.stats().await;

    // Concurrent first calls share one token request; later calls reuse the token.
    let calls = (0..5).map(|_| call(&gateway, &caller, "post___listPets", json!({})));
    for (status, _, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200);
        assert_eq!(body["result"]["isError"], false, "{body}");
    }
    call(&gateway, &caller, "post___listPets", json!({})).await;
    assert_eq!(
        idp.stats().await.0,
        tokens_before + 1,
        "one token request for six calls"
    );
    let seen: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| bearer_of(r).unwrap())
        .collect();
    assert_eq!(seen.len(), 6);
    assert!(
        seen.iter().all(|t| *t == seen[0]),
        "the same token is reused"
    );
    assert!(
        !seen.contains(&caller),
        "the caller's token is never forwarded"
    );
    let claims = jwt_part(&seen[0], 1);
    assert_eq!(
        claims["aud"], up,
        "the token is for the upstream (RFC 8707 resource)"
    );
    assert_eq!(claims["client_id"], "gateway-post");
    assert_eq!(claims["scope"], "api:read");

    // Basic client authentication, secret from a file.
    let (_, _, body) = call(&gateway, &caller, "basic___listPets", json!({})).await;
    assert_eq!(body["result"]["isError"], false, "{body}");
    let basic = bearer_of(upstream.requests().last().unwrap()).unwrap();
    assert_eq!(jwt_part(&basic, 1)["client_id"], "gateway-basic");
    assert_eq!(jwt_part(&basic, 1)["aud"], format!("{up}/basic"));

    // A 401 from the upstream: one retry with a fresh token.
    let tokens = idp.stats().await.0;
    let n = upstream.count();
    let (_, _, body) = call(&gateway, &caller, "post___getPet", json!({"petId": "401"})).await;
    assert_eq!(body["result"]["isError"], false, "{body}");
    assert_eq!(upstream.count(), n + 2);
    assert_eq!(
        idp.stats().await.0,
        tokens + 1,
        "a fresh token was requested"
    );
    let requests = upstream.requests();
    assert_ne!(bearer_of(&requests[n]), bearer_of(&requests[n + 1]));

    // The token endpoint refusing: a clear isError result, no upstream call, no secret shown.
    let n = upstream.count();
    let (status, _, body) = call(&gateway, &caller, "wrongsecret___listPets", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["isError"], true);
    let text = body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("token endpoint") && text.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");
    assert_eq!(upstream.count(), n);
    let metrics = gateway.metrics_text().await;
    assert!(
        sample(
            &metrics,
            "toolgate_outbound_token_fetches_total{outcome=\"error\",target=\"wrongsecret\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_hanging_token_endpoint_is_bounded_by_the_target_timeout() {
    let upstream = Upstream::start(|r: &Recorded| match r.path() {
        "/token" => Answer::Hang,
        _ => pets(r),
    })
    .await;
    let yaml = format!(
        r#"
targets:
  - name: slowidp
    timeout: 300ms
    openapi: {{ spec: testapi.yaml, base_url: "{up}/api" }}
    credentials:
      oauth2: {{ token_url: "{up}/token", client_id: c, client_secret: s }}
"#,
        up = upstream.url()
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"slowidp___listPets","arguments":{{}},"_meta":{}}}}}"#,
        modern_meta()
    );
    let started = Instant::now();
    let (status, _, reply) = crate::support::post_raw(
        &gateway.url(),
        &crate::support::modern_headers("tools/call", Some("slowidp___listPets")),
        body,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert_eq!(
        upstream
            .requests()
            .iter()
            .filter(|r| r.path() != "/token")
            .count(),
        0
    );
}

#[tokio::test]
async fn passthrough_and_token_exchange_are_opt_in() {
    let idp = Idp::start().await;
    let upstream = Upstream::start(pets).await;
    let up = upstream.url();
    let yaml = format!(
        r#"
inbound:
  resource: {RESOURCE}
  jwt: {{ discovery_url: "{discovery}" }}
targets:
  - name: plain
    openapi: {{ spec: testapi.yaml, base_url: "{up}/plain" }}
  - name: forward
    openapi: {{ spec: testapi.yaml, base_url: "{up}/forward" }}
    credentials: {{ passthrough: true }}
  - name: exchange
    openapi: {{ spec: testapi.yaml, base_url: "{up}/exchange" }}
    credentials:
      token_exchange: {{ token_url: "{token_url}", client_id: gateway-basic, client_secret: gateway-basic-secret,
                        resource: "https://api.test" }}
"#,
        discovery = idp.discovery_url(),
        token_url = idp.token_url(),
    );
    let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
    let caller = idp.token("agent-1", RESOURCE, "tools:read").await;
    for tool in [
        "plain___listPets",
        "forward___listPets",
        "exchange___listPets",
        "exchange___listPets",
    ] {
        call(&gateway, &caller, tool, json!({})).await;
    }
    let by_prefix = |p: &str| -> Vec<Recorded> {
        upstream
            .requests()
            .into_iter()
            .filter(|r| r.path().starts_with(p))
            .collect()
    };
    assert_eq!(
        by_prefix("/plain")[0].header("authorization"),
        None,
        "off by default"
    );
    assert_eq!(
        bearer_of(&by_prefix("/forward")[0]).as_deref(),
        Some(caller.as_str()),
        "passthrough"
    );
    let exchanged: Vec<String> = by_prefix("/exchange")
        .iter()
        .map(|r| bearer_of(r).unwrap())
        .collect();
    assert_eq!(exchanged.len(), 2);
    assert_eq!(
        exchanged[0], exchanged[1],
        "the exchanged token is cached per caller token"
    );
    assert_ne!(exchanged[0], caller);
    let claims = jwt_part(&exchanged[0], 1);
    assert_eq!(claims["sub"], "agent-1", "the upstream sees the end user");
    assert_eq!(claims["aud"], "https://api.test");
    assert_eq!(claims["act"]["sub"], "gateway-basic");
}

#[test]
fn auth_configuration_errors_are_located_and_secrets_hidden() {
    use std::path::Path;
    use toolgate::config::Config;
    let parse = |yaml: &str| Config::parse(yaml, Path::new("gw.yaml"));
    let err = parse("inbound:\n  jwt:\n    audiences: [x]\n").unwrap_err();
    assert_eq!(err.line, 3, "{err}");
    assert!(err.message.contains("discovery_url"), "{err}");
    let err = parse("inbound:\n  jwt:\n    discovery_url: https://idp.example.com/.well-known/openid-configuration\n").unwrap_err();
    assert!(err.message.contains("resource"), "{err}");
    let err = parse("inbound:\n  resource: https://gw.example.com/mcp\n  jwt:\n    discovery_url: http://idp.example.com/.well-known/openid-configuration\n").unwrap_err();
    assert_eq!(err.line, 4, "{err}");
    assert!(err.message.contains("https"), "{err}");
    let err = parse("inbound:\n  resource: https://gw.example.com/mcp\n  jwt:\n    issuer: https://idp.example.com\n    jwks_uri: https://idp.example.com/jwks\n    claims:\n      - { claim: groups, equals: a, contains: b }\n").unwrap_err();
    assert_eq!(err.line, 7, "{err}");
    let err = parse("inbound:\n  resource: https://gw.example.com/mcp\n  jwt:\n    issuer: https://idp.example.com\n    jwks_uri: https://idp.example.com/jwks\n    audiences: []\n").unwrap_err();
    assert!(
        err.message.contains("allowed_clients"),
        "no audience check needs a client list: {err}"
    );
    let err = parse("targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    scopes: [admin]\n")
        .unwrap_err();
    assert!(
        err.message.contains("inbound"),
        "scopes without inbound auth: {err}"
    );
    let err = parse("targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    credentials: {passthrough: true}\n").unwrap_err();
    assert!(err.message.contains("inbound"), "{err}");
    let err = parse("targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    credentials:\n      oauth2: {token_url: https://idp.example.com/token, client_id: c}\n").unwrap_err();
    assert!(err.message.contains("client_secret"), "{err}");
    let cfg = parse("targets:\n  - name: a\n    openapi: {spec: x.yaml}\n    credentials:\n      oauth2: {token_url: https://idp.example.com/token, client_id: c, client_secret: hunter2}\n").unwrap();
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}

/// Answers the Lambda Invoke API as AWS does for a function that echoes its event.
fn echo_function(r: &Recorded) -> Answer {
    Answer::JsonWith(200, r.json(), vec![("x-amz-executed-version", "$LATEST")])
}

#[tokio::test]
async fn lambda_tools_enforce_their_scopes_like_openapi_tools() {
    let idp = Idp::start().await;
    let lambda = Upstream::start(echo_function).await;
    let yaml = format!(
        r#"
inbound:
  resource: {RESOURCE}
  jwt:
    discovery_url: {discovery}
    audiences: [{RESOURCE}]
targets:
  - name: orders
    scopes: [tools:write]
    operations:
      audit: {{ scopes: [admin] }}
    lambda:
      function: orders
      region: us-east-1
      endpoint_url: {url}
      tools:
        - {{name: create, description: Create an order., inputSchema: {{type: object}}}}
        - {{name: audit, description: Audit orders., inputSchema: {{type: object}}}}
"#,
        discovery = idp.discovery_url(),
        url = lambda.url(),
    );
    let gateway = Gateway::start(&yaml, &[]).await;

    let reader = idp.token("agent-1", RESOURCE, "tools:read").await;
    let (status, _, body) = list(&gateway, Some(&reader)).await;
    assert_eq!(status, 200, "{body}");
    assert!(tool_names(&body).is_empty(), "{body}");
    let (status, headers, body) = call(&gateway, &reader, "orders___create", json!({"n": 1})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge(&headers).contains(r#"scope="tools:write""#),
        "{}",
        challenge(&headers)
    );
    assert_eq!(
        lambda.count(),
        0,
        "a refused call never reaches the function"
    );

    let writer = idp.token("agent-1", RESOURCE, "tools:write").await;
    let (_, _, body) = list(&gateway, Some(&writer)).await;
    assert_eq!(tool_names(&body), ["orders___create"], "{body}");
    let (status, _, body) = call(&gateway, &writer, "orders___audit", json!({})).await;
    assert_eq!(
        status, 403,
        "operations.audit.scopes replace the target's: {body}"
    );
    let (status, _, body) = call(&gateway, &writer, "orders___create", json!({"n": 1})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"]["structuredContent"],
        json!({"n": 1}),
        "{body}"
    );
    assert_eq!(lambda.count(), 1);
}
