//! Per-user OAuth (`credentials.oauth2_user`) end to end, with real components only: two
//! oidc-provider processes (one signs the MCP callers in and is the gateway's sign-in
//! provider, the other is the upstream API's authorization server), a scripted browser that
//! drives their login and consent pages over HTTP, an upstream that verifies the user's JWT
//! against its authorization server's keys, MCP clients (rmcp in both eras, the official
//! Python SDK), the local and the Redis token vault.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::ClientHandler;
use rmcp::model::{CallToolRequestParams, ErrorCode};
use serde_json::{Value, json};

use crate::support::browser::{Browser, Page};
use crate::support::idp::Idp;
use crate::support::process::GatewayProcess;
use crate::support::redis::Redis;
use crate::support::{Answer, Gateway, Recorded, Upstream, fixture, free_port};

/// The gateway's resource (the audience of the callers' tokens).
const RESOURCE: &str = "https://gateway.test/mcp";
/// The upstream API's resource at its authorization server.
const API: &str = "https://api.test";
const LOGIN_CLIENT: &str = "toolgate-login";
const API_CLIENT: &str = "toolgate-api";
const TOOL: &str = "api___listPets";
const KEY: &str = "test vault key: 0123456789abcdef0123456789";
const NEW_KEY: &str = "rotated vault key: abcdef0123456789abcdef012345";
const OTHER_KEY: &str = "unrelated vault key: 9876543210fedcba9876543210";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What the upstream's own token check decided, per request.
#[derive(Default)]
struct Checks {
    /// Tokens the upstream answers 401 to (as if revoked there).
    refused: Mutex<HashSet<String>>,
    /// Answer 401 to every token.
    refuse_all: std::sync::atomic::AtomicBool,
}

/// An upstream that accepts only JWTs of `provider` for [`API`]: 401 otherwise; `GET
/// /api/pets` answers with the token's `sub` and `scope`.
async fn upstream(provider: &Idp, checks: Arc<Checks>) -> Upstream {
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
    let set: JwkSet = serde_json::from_value(provider.jwks().await).unwrap();
    let issuer = provider.issuer();
    Upstream::start(move |r: &Recorded| {
        let unauthorized = |why: &str| {
            Answer::JsonWith(
                401,
                json!({"error": "invalid_token", "why": why}),
                vec![("www-authenticate", "Bearer error=\"invalid_token\"")],
            )
        };
        let Some(token) = bearer(r) else {
            return unauthorized("no bearer token");
        };
        if checks.refuse_all.load(std::sync::atomic::Ordering::SeqCst)
            || checks.refused.lock().unwrap().contains(&token)
        {
            return unauthorized("revoked");
        }
        let Ok(header) = decode_header(&token) else {
            return unauthorized("not a JWT");
        };
        let Some(jwk) = header.kid.as_deref().and_then(|k| set.find(k)) else {
            return unauthorized("unknown key");
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[API]);
        validation.set_issuer(&[&issuer]);
        let claims =
            match decode::<Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation) {
                Ok(data) => data.claims,
                Err(e) => return unauthorized(&e.to_string()),
            };
        match (r.method.as_str(), r.path()) {
            ("GET", "/api/pets") => Answer::Json(
                200,
                json!([{"id": 1, "name": "Rex", "owner": claims["sub"], "scope": claims["scope"]}]),
            ),
            _ => Answer::Json(404, json!({"error": "no route"})),
        }
    })
    .await
}

fn bearer(r: &Recorded) -> Option<String> {
    r.header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// Knobs of a [`World`].
#[derive(Default)]
struct Options {
    /// `refresh_before` of the target (the provider's tokens live an hour).
    refresh_before: Option<&'static str>,
    /// A Redis URL: `vault.store: redis` in its `cache.shared`.
    redis: Option<String>,
}

/// Two providers, an upstream, and what a gateway in front of them needs.
struct World {
    /// The callers' issuer and the gateway's sign-in provider.
    login: Idp,
    /// The upstream's authorization server.
    provider: Idp,
    upstream: Upstream,
    checks: Arc<Checks>,
}

impl World {
    async fn start() -> World {
        let (login, provider) = tokio::join!(Idp::start(), Idp::start());
        let checks = Arc::new(Checks::default());
        let upstream = upstream(&provider, checks.clone()).await;
        World {
            login,
            provider,
            upstream,
            checks,
        }
    }

    /// The configuration of a gateway in front of the upstream, acting for users.
    async fn yaml(&self, options: &Options, listen: Option<u16>) -> String {
        let authorize = self.provider.authorization_endpoint().await;
        let (store, shared) = match &options.redis {
            Some(url) => (
                "store: redis".to_string(),
                format!("cache:\n  shared: {{url: \"{url}\", key_prefix: \"tg-test:\"}}\n"),
            ),
            None => ("store: local".to_string(), String::new()),
        };
        let listen = listen.map_or(String::new(), |p| format!("listen: 127.0.0.1:{p}\n"));
        format!(
            r#"{listen}{shared}
inbound:
  resource: {RESOURCE}
  jwt:
    discovery_url: {discovery}
    audiences: [{RESOURCE}]
  login:
    client_id: {LOGIN_CLIENT}
    client_secret: {LOGIN_CLIENT}-secret
vault:
  key: "{KEY}"
  {store}
  cache_ttl: 0s
targets:
  - name: api
    openapi: {{ spec: testapi.yaml, base_url: "{up}/api" }}
    credentials:
      oauth2_user:
        authorization_url: "{authorize}"
        token_url: "{token}"
        client_id: {API_CLIENT}
        client_secret: {API_CLIENT}-secret
        scopes: [api:read]
        resource: {API}
        message: "Connect the pet store to your account."
{refresh}
"#,
            discovery = self.login.discovery_url(),
            up = self.upstream.url(),
            token = self.provider.token_url(),
            refresh = options
                .refresh_before
                .map_or(String::new(), |r| format!("        refresh_before: {r}")),
        )
    }

    /// An in-process gateway, with both providers told its redirect URI.
    async fn gateway(&self, options: &Options) -> Gateway {
        let yaml = self.yaml(options, None).await;
        let gateway = Gateway::start(&yaml, &[("testapi.yaml", &fixture("testapi.yaml"))]).await;
        self.register(&[&format!("http://{}", gateway.addr)]).await;
        gateway
    }

    /// Registers the gateway's two OAuth clients with these gateway origins.
    async fn register(&self, origins: &[&str]) {
        let redirects: Vec<String> = origins
            .iter()
            .map(|o| format!("{o}/oauth/callback"))
            .collect();
        let redirects: Vec<&str> = redirects.iter().map(String::as_str).collect();
        self.login
            .add_code_client(LOGIN_CLIENT, &redirects, "openid")
            .await;
        self.provider
            .add_code_client(API_CLIENT, &redirects, "openid api:read")
            .await;
    }

    /// A caller's access token for the gateway, for user `sub` of the login provider.
    async fn caller(&self, sub: &str) -> String {
        self.login
            .sign(
                json!({
                    "iss": self.login.issuer(), "sub": sub, "aud": RESOURCE,
                    "iat": now(), "exp": now() + 600, "client_id": "agent",
                    "scope": "tools:read",
                }),
                "RS256",
                false,
            )
            .await
    }

    /// The user at `browser` opens `url` and signs in as `login` at both providers; the
    /// last page.
    async fn complete(&self, browser: &Browser, url: &str, login: &str) -> Page {
        let page = browser.get(url).await;
        let password = format!("{login}-password");
        let page = browser
            .sign_in(page, &self.login.issuer(), login, &password)
            .await;
        browser
            .sign_in(page, &self.provider.issuer(), login, &password)
            .await
    }

    /// The bearer tokens the upstream received, in order.
    fn upstream_tokens(&self) -> Vec<String> {
        self.upstream.requests().iter().filter_map(bearer).collect()
    }
}

/// A 2025-11-25 or 2026-07-28 rmcp client with a bearer token; as `agent`, it answers URL
/// elicitations with `agent`'s browser.
async fn rmcp_client<H: ClientHandler>(
    url: &str,
    token: &str,
    handler: H,
    modern: bool,
) -> rmcp::service::RunningService<rmcp::RoleClient, H> {
    use rmcp::ClientServiceExt;
    use rmcp::model::ProtocolVersion as V;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(token),
    );
    let mode = if modern {
        rmcp::ClientLifecycleMode::Discover {
            preferred_versions: vec![V::V_2026_07_28],
        }
    } else {
        rmcp::ClientLifecycleMode::Initialize
    };
    handler
        .serve_with_lifecycle(transport, mode)
        .await
        .unwrap_or_else(|e| panic!("MCP client connects: {e}"))
}

/// A client that declares URL elicitation and lets a closure play the user.
#[derive(Clone)]
struct Agent {
    protocol: rmcp::model::ProtocolVersion,
    url_elicitation: bool,
    /// The URLs the gateway asked the user to open, and the answer the user gives.
    user: Arc<dyn Fn(String) -> UserAnswer + Send + Sync>,
}

type UserAnswer = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

impl Agent {
    fn new(
        protocol: rmcp::model::ProtocolVersion,
        url_elicitation: bool,
        user: impl Fn(String) -> UserAnswer + Send + Sync + 'static,
    ) -> Agent {
        Agent {
            protocol,
            url_elicitation,
            user: Arc::new(user),
        }
    }
}

impl ClientHandler for Agent {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        use rmcp::model::{ClientCapabilities, ElicitationCapability, UrlElicitationCapability};
        let mut info = rmcp::model::ClientConfig::default();
        info.protocol_version = self.protocol.clone();
        let mut capabilities = ClientCapabilities::default();
        if self.url_elicitation {
            capabilities.elicitation =
                Some(ElicitationCapability::new().with_url(UrlElicitationCapability::default()));
        }
        info.capabilities = capabilities;
        info
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
        let ElicitRequestParams::UrlElicitationParams { url, .. } = request else {
            return Ok(ElicitResult::new(ElicitationAction::Decline));
        };
        let accepted = (self.user)(url).await;
        Ok(ElicitResult::new(if accepted {
            ElicitationAction::Accept
        } else {
            ElicitationAction::Decline
        }))
    }
}

fn call(name: &str) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string())
}

/// The URL of a -32042 error's only elicitation, checked against the 2025-11-25 shape.
fn elicitation_url(error: &rmcp::service::ServiceError, gateway: &Gateway) -> String {
    let rmcp::service::ServiceError::McpError(data) = error else {
        panic!("expected a JSON-RPC error, got {error:?}");
    };
    assert_eq!(data.code, ErrorCode(-32042), "{data:?}");
    let elicitations = data.data.as_ref().unwrap()["elicitations"]
        .as_array()
        .unwrap_or_else(|| panic!("data.elicitations: {data:?}"))
        .clone();
    assert_eq!(elicitations.len(), 1, "{elicitations:?}");
    let e = &elicitations[0];
    assert_eq!(e["mode"], "url");
    assert_eq!(e["message"], "Connect the pet store to your account.");
    assert!(!e["elicitationId"].as_str().unwrap().is_empty());
    let url = e["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("http://{}/oauth/connect?flow=", gateway.addr)),
        "the link points at the gateway: {url}"
    );
    url
}

fn metric(text: &str, name: &str, labels: &str) -> u64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn legacy() -> rmcp::model::ClientConfig {
    let mut info = rmcp::model::ClientConfig::default();
    info.protocol_version = rmcp::model::ProtocolVersion::V_2025_11_25;
    info
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_2025_11_25_error_leads_the_user_to_connect_and_the_retry_acts_as_them() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let client = rmcp_client(&gateway.url(), &alice, legacy(), false).await;

    let error = client.call_tool(call(TOOL)).await.unwrap_err();
    let url = elicitation_url(&error, &gateway);
    assert_eq!(
        world.upstream.count(),
        0,
        "nothing was called without a token"
    );
    // Every call asks again until the user connects, with a fresh link.
    let again = elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    assert_ne!(url, again);

    let browser = Browser::new();
    let page = world.complete(&browser, &url, "alice").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Connected"), "{}", page.body);
    // The flow cookie is gone once used.
    assert!(
        browser
            .cookies_for(&gateway.addr.to_string())
            .iter()
            .all(|(_, v)| v.is_empty()),
        "{:?}",
        browser.cookies_for(&gateway.addr.to_string())
    );

    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let pets = result.structured_content.clone().unwrap();
    let pets = pets.get("result").unwrap_or(&pets);
    assert_eq!(pets[0]["owner"], "alice", "{pets}");
    // What the upstream got is alice's token from its own authorization server, for its
    // resource, for the gateway's client: never the caller's token.
    let tokens = world.upstream_tokens();
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0], alice);
    let claims = world.provider.verify(&tokens[0], API).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], API_CLIENT);
    assert!(claims["scope"].as_str().unwrap().contains("api:read"));
    let sent = &world.upstream.requests()[0];
    for header in ["mcp-session-id", "mcp-protocol-version", "cookie"] {
        assert!(sent.header(header).is_none(), "{header} leaked upstream");
    }

    // Another user of the same agent is not connected by alice's consent.
    let bob = world.caller("bob").await;
    let bobs = rmcp_client(&gateway.url(), &bob, legacy(), false).await;
    elicitation_url(&bobs.call_tool(call(TOOL)).await.unwrap_err(), &gateway);

    let text = gateway.metrics_text().await;
    assert_eq!(
        metric(
            &text,
            "toolgate_user_authorizations_total",
            "outcome=\"connected\",target=\"api\""
        ),
        1,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "toolgate_user_tokens_total",
            "event=\"elicited\",target=\"api\""
        ),
        3
    );
    assert_eq!(
        metric(
            &text,
            "toolgate_tool_calls_total",
            "outcome=\"authorization_required\",target=\"api\",tool=\"api___listPets\""
        ),
        3,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_2026_07_28_the_input_required_result_carries_the_url_and_the_client_retries() {
    let world = Arc::new(World::start().await);
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));

    // A client that declares URL elicitation: rmcp hands the request to the handler (the
    // user completes it in the browser) and retries with the response.
    let agent = {
        let (world, seen) = (world.clone(), seen.clone());
        Agent::new(
            rmcp::model::ProtocolVersion::V_2026_07_28,
            true,
            move |url| {
                let (world, seen) = (world.clone(), seen.clone());
                Box::pin(async move {
                    seen.lock().unwrap().push(url.clone());
                    let page = world.complete(&Browser::new(), &url, "alice").await;
                    page.status == 200 && page.body.contains("Connected")
                })
            },
        )
    };
    let client = rmcp_client(&gateway.url(), &alice, agent, true).await;
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "one elicitation");
    assert!(seen.lock().unwrap()[0].starts_with(&format!("http://{}/oauth/connect", gateway.addr)));
    let tokens = world.upstream_tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!(world.provider.verify(&tokens[0], API).await["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_2026_07_28_a_decline_is_a_tool_error_and_a_client_without_url_elicitation_gets_32021() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;

    // The user declines: the retry's inputResponses say so, the answer is a tool error.
    let declines = Arc::new(Mutex::new(0));
    let agent = {
        let declines = declines.clone();
        Agent::new(
            rmcp::model::ProtocolVersion::V_2026_07_28,
            true,
            move |_| {
                *declines.lock().unwrap() += 1;
                Box::pin(async { false })
            },
        )
    };
    let client = rmcp_client(&gateway.url(), &alice, agent, true).await;
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(
        crate::support::text_of(&result).contains("declined"),
        "{result:?}"
    );
    assert_eq!(*declines.lock().unwrap(), 1);

    // No URL elicitation declared: -32021 naming the missing capability (HTTP 400, as
    // 2026-07-28 requires), its message still giving the link to a person.
    let plain = Agent::new(
        rmcp::model::ProtocolVersion::V_2026_07_28,
        false,
        |_| -> UserAnswer { panic!("no elicitation may reach a client without the capability") },
    );
    let client = rmcp_client(&gateway.url(), &alice, plain, true).await;
    let error = client.call_tool(call(TOOL)).await.unwrap_err();
    let rmcp::service::ServiceError::McpError(data) = &error else {
        panic!("expected a JSON-RPC error, got {error:?}");
    };
    assert_eq!(data.code, ErrorCode(-32021), "{data:?}");
    assert_eq!(
        data.data,
        Some(json!({"requiredCapabilities": {"elicitation": {"url": {}}}}))
    );
    let text = data.message.to_string();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/oauth/connect?flow="))
        .unwrap_or_else(|| panic!("the error names the link: {text}"));
    let (status, _, _) = crate::auth::rpc(
        &gateway,
        Some(&alice),
        "tools/call",
        json!({"name": TOOL, "arguments": {}}),
    )
    .await;
    assert_eq!(status, 400, "-32021 travels with HTTP 400");
    // The link works: completing it connects alice, and the same client's call succeeds.
    let page = world.complete(&Browser::new(), url, "alice").await;
    assert!(page.body.contains("Connected"), "{}", page.body);
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(world.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_revisions_before_url_elicitation_get_the_link_as_a_tool_error() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let mut info = rmcp::model::ClientConfig::default();
    info.protocol_version = rmcp::model::ProtocolVersion::V_2025_06_18;
    let client = rmcp_client(&gateway.url(), &alice, info, false).await;
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    let text = crate::support::text_of(&result);
    assert!(text.contains("/oauth/connect?flow="), "{text}");
    assert!(text.contains("Connect the pet store"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_opened_by_another_user_or_browser_or_altered_stores_nothing() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let client = rmcp_client(&gateway.url(), &alice, legacy(), false).await;
    let url = elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);

    // Phishing: mallory got alice's link (or alice got mallory's) and signs in as herself.
    let mallory = Browser::new();
    let page = mallory.get(&url).await;
    let page = mallory
        .sign_in(page, &world.login.issuer(), "mallory", "mallory-password")
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("Different user"), "{}", page.body);
    assert!(
        !page.url.contains(&world.provider.issuer()),
        "mallory was not sent on to the upstream's provider"
    );

    // A browser that did not open the link: the sign-in answer has no flow cookie there.
    let first = Browser::new();
    let page = first.get(&url).await;
    let authorize = page
        .visited
        .iter()
        .find(|u| u.starts_with(&world.login.issuer()))
        .expect("the link leads to the sign-in provider")
        .clone();
    let other = Browser::new();
    let page = other.get(&authorize).await;
    let page = other
        .sign_in(page, &world.login.issuer(), "alice", "alice-password")
        .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("Different browser"), "{}", page.body);

    // An altered link, a made-up state.
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let page = Browser::new().get(&altered).await;
    assert_eq!(page.status, 400);
    assert!(page.body.contains("not valid"), "{}", page.body);
    let page = Browser::new()
        .get(&format!(
            "http://{}/oauth/callback?state=u.AAAA&code=x",
            gateway.addr
        ))
        .await;
    assert_eq!(page.status, 400);

    // None of that connected alice; her own browser still can.
    elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    assert_eq!(world.upstream.count(), 0);
    let page = world.complete(&Browser::new(), &url, "alice").await;
    assert!(page.body.contains("Connected"), "{}", page.body);
    assert!(client.call_tool(call(TOOL)).await.is_ok());

    let text = gateway.metrics_text().await;
    for (outcome, n) in [
        ("user_mismatch", 1),
        ("browser_mismatch", 1),
        ("connected", 1),
    ] {
        assert_eq!(
            metric(
                &text,
                "toolgate_user_authorizations_total",
                &format!("outcome=\"{outcome}\",target=\"api\"")
            ),
            n,
            "{outcome}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_expiry_and_a_refused_refresh_asks_the_user_again() {
    let world = World::start().await;
    // The provider's tokens live an hour: refreshing two hours ahead refreshes every call.
    let options = Options {
        refresh_before: Some("2h"),
        ..Options::default()
    };
    let gateway = world.gateway(&options).await;
    let alice = world.caller("alice").await;
    let client = rmcp_client(&gateway.url(), &alice, legacy(), false).await;
    let url = elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    world.complete(&Browser::new(), &url, "alice").await;
    let before = world.provider.grants("refresh_token").await;

    for _ in 0..2 {
        let result = client.call_tool(call(TOOL)).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    assert_eq!(world.provider.grants("refresh_token").await, before + 2);
    let tokens = world.upstream_tokens();
    assert_eq!(tokens.len(), 2);
    assert_ne!(tokens[0], tokens[1], "each call got a refreshed token");
    for token in &tokens {
        assert_eq!(world.provider.verify(token, API).await["sub"], "alice");
    }

    // The provider forgets the grant (revoked there): the refresh is refused and the user is
    // asked again, rather than the call failing for good.
    world.provider.forget().await;
    elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    assert_eq!(world.upstream.count(), 2);
    let text = gateway.metrics_text().await;
    assert_eq!(
        metric(
            &text,
            "toolgate_user_tokens_total",
            "event=\"refresh_refused\",target=\"api\""
        ),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_401_refreshes_the_token_and_retries_once() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let client = rmcp_client(&gateway.url(), &alice, legacy(), false).await;
    let url = elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    world.complete(&Browser::new(), &url, "alice").await;
    assert!(client.call_tool(call(TOOL)).await.is_ok());
    let first = world.upstream_tokens()[0].clone();
    let refreshes = world.provider.grants("refresh_token").await;

    // The upstream stops accepting the (unexpired) token: one refresh, one retry.
    world.checks.refused.lock().unwrap().insert(first.clone());
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let tokens = world.upstream_tokens();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[1], first);
    assert_ne!(tokens[2], first);
    assert_eq!(world.provider.grants("refresh_token").await, refreshes + 1);

    // The refreshed token is kept: the next call uses it without refreshing again.
    assert!(client.call_tool(call(TOOL)).await.is_ok());
    assert_eq!(world.upstream_tokens()[3], tokens[2]);
    assert_eq!(world.provider.grants("refresh_token").await, refreshes + 1);

    // An upstream that refuses even the fresh token: one refresh and one retry only, then
    // the 401 as a tool error, and no loop.
    world
        .checks
        .refuse_all
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused_from = world.upstream.count();
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(
        crate::support::text_of(&result).contains("401"),
        "{result:?}"
    );
    assert_eq!(world.upstream.count(), refused_from + 2);
    assert_eq!(world.provider.grants("refresh_token").await, refreshes + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_and_the_cli_revoke_a_users_tokens() {
    let world = World::start().await;
    let gateway = world.gateway(&Options::default()).await;
    let alice = world.caller("alice").await;
    let client = rmcp_client(&gateway.url(), &alice, legacy(), false).await;
    let connect = || async {
        let url = elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
        let page = world.complete(&Browser::new(), &url, "alice").await;
        assert!(page.body.contains("Connected"), "{}", page.body);
        assert!(client.call_tool(call(TOOL)).await.is_ok());
    };
    connect().await;
    let revoke = |body: Value| {
        let url = format!("http://{}/admin/vault/revoke", gateway.admin);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let issuer = world.login.issuer();
    assert_eq!(
        revoke(json!({"issuer": issuer, "subject": "bob"})).await,
        (200, json!({"revoked": 0}))
    );
    assert_eq!(
        revoke(json!({"issuer": issuer, "subject": "alice", "target": "nope"}))
            .await
            .0,
        404
    );
    assert_eq!(revoke(json!({"subject": "alice"})).await.0, 400);
    assert_eq!(
        revoke(json!({"issuer": issuer, "subject": "alice", "target": "api"})).await,
        (200, json!({"revoked": 1}))
    );
    elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);

    // The command line works on the store itself (no gateway involved).
    connect().await;
    let config = gateway.dir.path().join("gateway.yaml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::process::BIN)
            .arg("vault")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, stderr) = run(&[
        "revoke",
        "--issuer",
        &issuer,
        "--subject",
        "alice",
        "--target",
        "nope",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no target `nope`"), "{stderr}");
    let (code, stdout, stderr) = run(&["revoke", "--issuer", &issuer, "--subject", "alice"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("revoked 1 "), "{stdout}");
    elicitation_url(&client.call_tool(call(TOOL)).await.unwrap_err(), &gateway);
    let (code, stdout, _) = run(&["reseal"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("0 re-sealed, 0 already current"),
        "{stdout}"
    );

    // Key rotation as documented: the new key with the old one among previous_keys, a
    // re-seal, a reload, then the old key dropped; alice stays connected throughout.
    connect().await;
    let original = std::fs::read_to_string(&config).unwrap();
    let sealed_with = |keys: &str| original.replace(&format!("key: \"{KEY}\""), keys);
    std::fs::write(
        &config,
        sealed_with(&format!("key: \"{NEW_KEY}\"\n  previous_keys: [\"{KEY}\"]")),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["reseal"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("1 re-sealed, 0 already current, 0 unreadable"),
        "{stdout}"
    );
    assert_eq!(gateway.reload().await.0, 200);
    assert!(client.call_tool(call(TOOL)).await.is_ok());
    std::fs::write(&config, sealed_with(&format!("key: \"{NEW_KEY}\""))).unwrap();
    assert_eq!(gateway.reload().await.0, 200);
    let result = client.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let (_, stdout, _) = run(&["reseal"]);
    assert!(
        stdout.contains("0 re-sealed, 1 already current"),
        "{stdout}"
    );
    // Without the re-seal, dropping the old key would have lost the record: a vault with a
    // key that never sealed it cannot open it (and says so).
    std::fs::write(&config, sealed_with(&format!("key: \"{OTHER_KEY}\""))).unwrap();
    let (code, stdout, stderr) = run(&["reseal"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("1 unreadable"), "{stdout}");
    assert!(stderr.contains("none of the configured keys"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_users_tokens_in_redis() {
    let redis = Redis::start().await;
    let world = World::start().await;
    let options = Options {
        redis: Some(redis.url()),
        ..Options::default()
    };
    let yaml = world.yaml(&options, None).await;
    let files = [("testapi.yaml", fixture("testapi.yaml"))];
    let files: Vec<(&str, &std::path::Path)> =
        files.iter().map(|(n, p)| (*n, p.as_path())).collect();
    let one = Gateway::start(&yaml, &files).await;
    let two = Gateway::start(&yaml, &files).await;
    world
        .register(&[
            &format!("http://{}", one.addr),
            &format!("http://{}", two.addr),
        ])
        .await;
    let alice = world.caller("alice").await;
    let via_one = rmcp_client(&one.url(), &alice, legacy(), false).await;
    let via_two = rmcp_client(&two.url(), &alice, legacy(), false).await;

    let url = elicitation_url(&via_one.call_tool(call(TOOL)).await.unwrap_err(), &one);
    world.complete(&Browser::new(), &url, "alice").await;
    let result = via_two.call_tool(call(TOOL)).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(world.upstream.count(), 1);

    // Redis holds sealed bytes only: no token in the clear.
    let token = world.upstream_tokens()[0].clone();
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tg-test:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let fields: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        for value in fields {
            assert!(
                !String::from_utf8_lossy(&value).contains(&token[..40]),
                "{key} holds the token in the clear"
            );
        }
    }

    // A revocation through one replica holds at the other (cache_ttl 0s).
    let response = reqwest::Client::new()
        .post(format!("http://{}/admin/vault/revoke", one.admin))
        .json(&json!({"issuer": world.login.issuer(), "subject": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"revoked": 1})
    );
    elicitation_url(&via_two.call_tool(call(TOOL)).await.unwrap_err(), &two);
}

/// The Python SDK's client script (tests/it/user_oauth_client.py) as a child process.
struct PyAgent {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl PyAgent {
    fn start(url: &str, token: &str, mode: &str) -> PyAgent {
        use std::io::BufRead;
        let python = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop/.venv/bin/python");
        assert!(
            python.exists(),
            "the Python MCP SDK is needed in {}: run `tests/interop/run.sh --install-only` (./test.sh does)",
            python.display()
        );
        let mut child = std::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/it/user_oauth_client.py"
            ))
            .args([
                "--url", url, "--token", token, "--tool", TOOL, "--mode", mode,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyAgent { child, lines }
    }

    /// The next line the client prints (a minute at most).
    async fn line(&self) -> String {
        // The runtime's other worker keeps the gateway and the browser going meanwhile.
        tokio::task::block_in_place(|| self.lines.recv_timeout(Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("no line from the Python client: {e}"))
    }

    fn answer(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Drop for PyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_completes_the_flow_in_both_eras_and_no_secret_is_logged() {
    let world = World::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(&config, world.yaml(&Options::default(), Some(port)).await).unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let gateway = GatewayProcess::spawn(&config, &[("RUST_LOG", "debug")]);
    world.register(&[&format!("http://127.0.0.1:{port}")]).await;
    let mut secrets = Vec::new();

    for (mode, user) in [("legacy", "alice"), ("auto", "bob")] {
        let token = world.caller(user).await;
        secrets.push(token.clone());
        let mut agent = PyAgent::start(&gateway.url, &token, mode);
        let line = agent.line().await;
        let url = line
            .strip_prefix("ELICIT ")
            .unwrap_or_else(|| panic!("{mode}: expected an elicitation, got {line}"))
            .to_string();
        assert!(
            url.starts_with(&format!("http://127.0.0.1:{port}/oauth/connect?flow=")),
            "{url}"
        );
        let browser = Browser::new();
        let page = world.complete(&browser, &url, user).await;
        assert!(page.body.contains("Connected"), "{mode}: {}", page.body);
        // The codes the providers sent through the browser are secrets too.
        for visited in &page.visited {
            if let Some(code) = url::Url::parse(visited).ok().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.to_string())
            }) {
                secrets.push(code);
            }
        }
        agent.answer("done");
        let line = agent.line().await;
        let result: Value = serde_json::from_str(
            line.strip_prefix("RESULT ")
                .unwrap_or_else(|| panic!("{mode}: expected a result, got {line}")),
        )
        .unwrap();
        assert_ne!(result["isError"], json!(true), "{mode}: {result}");
        let owner = result["structuredContent"]["result"][0]["owner"].clone();
        let owner = if owner.is_null() {
            result["structuredContent"][0]["owner"].clone()
        } else {
            owner
        };
        assert_eq!(owner, user, "{mode}: {result}");
    }

    // Declining in the legacy era: the script stops with the error, nothing is called.
    let carol = world.caller("carol").await;
    let mut agent = PyAgent::start(&gateway.url, &carol, "legacy");
    assert!(agent.line().await.starts_with("ELICIT "));
    agent.answer("decline");
    let line = agent.line().await;
    assert!(line.starts_with("ERROR -32042 "), "{line}");

    // No token, code or secret in the gateway's debug logs.
    secrets.extend(world.upstream_tokens());
    secrets.push(KEY.to_string());
    secrets.push(format!("{API_CLIENT}-secret"));
    secrets.push(format!("{LOGIN_CLIENT}-secret"));
    assert_eq!(world.upstream.count(), 2);
    let logs = gateway.log().join("\n");
    assert!(
        logs.contains("authorization required"),
        "the logs show the flow"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs: {secret}"
        );
    }
}

#[test]
fn configurations_that_cannot_act_for_users_are_refused_with_the_reason() {
    let target = r#"
targets:
  - name: api
    openapi: { spec: testapi.yaml, base_url: "http://127.0.0.1:9/api" }
    credentials:
      oauth2_user:
        authorization_url: "http://127.0.0.1:9/authorize"
        token_url: "http://127.0.0.1:9/token"
        client_id: c
        client_secret: s
"#;
    let inbound = "inbound:\n  resource: https://gateway.test/mcp\n  jwt:\n    discovery_url: http://127.0.0.1:9/.well-known/openid-configuration\n";
    let login = "  login: {client_id: l, client_secret: s}\n";
    let vault = format!("vault: {{key: \"{KEY}\"}}\n");
    let cases = [
        (format!("{vault}{target}"), "an `inbound:` section"),
        (format!("{inbound}{vault}{target}"), "inbound.login"),
        (format!("{inbound}{login}{target}"), "vault"),
        (
            format!("{inbound}{login}vault: {{key: short}}\n{target}"),
            "at least 32",
        ),
        (
            format!("{inbound}{login}{vault}{target}        authorization_params: {{state: x}}\n"),
            "state",
        ),
        (
            format!("{inbound}{login}{vault}{target}    cache: {{ttl: 10s, scope: shared}}\n"),
            "one user's answers to another",
        ),
        (
            format!(
                "{inbound}{login}{vault}{}",
                target.replace("http://127.0.0.1:9/authorize", "not a url")
            ),
            "authorization_url",
        ),
    ];
    for (yaml, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, &yaml).unwrap();
        let error = match toolgate::gateway::load(&config) {
            Ok(_) => panic!("loaded:\n{yaml}"),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(expected),
            "{expected:?} not in {error:?} for\n{yaml}"
        );
        assert!(
            error.contains("gateway.yaml"),
            "the error names the file: {error}"
        );
        assert!(!error.contains(KEY), "{error}");
    }
}
