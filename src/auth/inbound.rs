//! Inbound authentication of MCP callers (`inbound.jwt`), as the MCP authorization
//! specification asks of a resource server: bearer JWTs verified against the issuer's JWKS
//! (RFC 9068 / OAuth 2.1 section 5.2), `401`/`403` challenges that point at the RFC 9728
//! protected-resource metadata, which is served here too, and per-tool scope checks.
//! The verified [`Caller`] flows to the dispatcher; the token itself is never logged.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::jwks::{ACCEPTED_ALGORITHMS, KeySource, KeyStore};
use crate::config::{ConfigError, parse_duration};
use crate::mcp::jsonrpc::{ErrorKind, RpcError};
use crate::metrics::Metrics;
use crate::targets::http::HttpClient;

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// `inbound:` in gateway.yaml.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The public URL of this gateway's MCP endpoint (e.g. `https://gw.example.com/mcp`):
    /// the RFC 8707 resource clients ask tokens for, the default audience, and the
    /// `resource` of the RFC 9728 metadata.
    #[serde(default)]
    pub resource: Option<Spanned<String>>,
    /// JWT bearer tokens.
    pub jwt: Spanned<JwtConfig>,
    /// The gateway's own OpenID Connect client at this issuer, signing users in on the
    /// per-user OAuth pages (`credentials.oauth2_user`).
    #[serde(default)]
    pub login: Option<Spanned<crate::auth::user_oauth::LoginConfig>>,
}

/// `inbound.jwt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// OIDC discovery document (gives `issuer` and `jwks_uri`).
    #[serde(default)]
    pub discovery_url: Option<Spanned<String>>,
    /// The exact `iss` (with `jwks_uri`, instead of `discovery_url`).
    #[serde(default)]
    pub issuer: Option<Spanned<String>>,
    /// The JWKS document (with `issuer`).
    #[serde(default)]
    pub jwks_uri: Option<Spanned<String>>,
    /// Accepted `aud` values (default: `inbound.resource`). `[]` turns the audience check
    /// off, for issuers whose access tokens carry no `aud` (Amazon Cognito); it then needs
    /// `allowed_clients`.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
    /// Accepted `client_id` / `azp` / `cid` values (default: any client).
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// Scopes every token must carry (`scope` or `scp`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// Extra claim rules (all must hold).
    #[serde(default)]
    pub claims: Vec<Spanned<ClaimRule>>,
    /// Clock skew allowed on `exp` and `nbf` (default `30s`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub leeway: Option<Duration>,
    /// How often the JWKS is fetched again in the background (default `5m`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub jwks_refresh: Option<Duration>,
    /// Least time between two fetches caused by an unknown `kid` (default `30s`).
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub jwks_cooldown: Option<Duration>,
}

/// One `inbound.jwt.claims` rule: the claim and exactly one operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// The claim name (top level of the payload).
    pub claim: String,
    /// The claim equals this string.
    #[serde(default)]
    pub equals: Option<String>,
    /// The claim (an array, or a space-separated string) contains this value.
    #[serde(default)]
    pub contains: Option<String>,
    /// The claim (an array, or a space-separated string) contains one of these values.
    #[serde(default)]
    pub contains_any: Option<Vec<String>>,
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(f64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) if n.is_finite() && n >= 0.0 => Ok(Some(Duration::from_secs_f64(n))),
        Raw::N(n) => Err(serde::de::Error::custom(format!("invalid duration {n}"))),
        Raw::S(s) => parse_duration(&s)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// Whether a URL the gateway fetches keys or tokens from is acceptable: `https`, or `http`
/// to a loopback host (tests, sidecars).
pub fn check_fetch_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{url}` has no host")),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "`{url}` must be an https URL (plain http is accepted for loopback hosts only)"
        )),
    }
}

impl InboundConfig {
    /// Checks the section; errors point at the offending key.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let jwt = &self.jwt.value;
        let at = &self.jwt.referenced;
        let err = |loc: &serde_saphyr::Location, m: String| ConfigError::at(file, loc, m);
        match (&jwt.discovery_url, &jwt.issuer, &jwt.jwks_uri) {
            (Some(d), None, None) => {
                check_fetch_url(&d.value)
                    .map_err(|m| err(&d.referenced, format!("inbound.jwt.discovery_url: {m}")))?;
                if !d.value.ends_with("/.well-known/openid-configuration") {
                    return Err(err(
                        &d.referenced,
                        format!(
                            "inbound.jwt.discovery_url `{}` should end with /.well-known/openid-configuration",
                            d.value
                        ),
                    ));
                }
            }
            (None, Some(iss), Some(jwks)) => {
                if iss.value.is_empty() {
                    return Err(err(
                        &iss.referenced,
                        "inbound.jwt.issuer must not be empty".into(),
                    ));
                }
                check_fetch_url(&jwks.value)
                    .map_err(|m| err(&jwks.referenced, format!("inbound.jwt.jwks_uri: {m}")))?;
            }
            _ => {
                return Err(err(
                    at,
                    "inbound.jwt takes `discovery_url`, or `issuer` together with `jwks_uri`"
                        .into(),
                ));
            }
        }
        match &self.resource {
            Some(r) => {
                let ok = url::Url::parse(&r.value).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.fragment().is_none()
                });
                if !ok {
                    return Err(err(
                        &r.referenced,
                        format!(
                            "inbound.resource `{}` must be the absolute http(s) URL of this gateway's MCP endpoint, without a fragment (e.g. https://gateway.example.com/mcp)",
                            r.value
                        ),
                    ));
                }
            }
            None if jwt.audiences.as_ref().is_none_or(Vec::is_empty) => {
                return Err(err(
                    at,
                    "inbound needs `resource:` (the public URL of this gateway's /mcp, e.g. https://gateway.example.com/mcp) or inbound.jwt.audiences".into(),
                ));
            }
            None => {}
        }
        for rule in &jwt.claims {
            let r = &rule.value;
            let n = [
                r.equals.is_some(),
                r.contains.is_some(),
                r.contains_any.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 || r.claim.is_empty() {
                return Err(err(
                    &rule.referenced,
                    "a claims rule is `{claim: NAME, equals: V}`, `{claim: NAME, contains: V}` or `{claim: NAME, contains_any: [V, ...]}`".into(),
                ));
            }
        }
        if jwt.audiences.as_ref().is_some_and(Vec::is_empty) && jwt.allowed_clients.is_empty() {
            return Err(err(
                at,
                "inbound.jwt.audiences is empty (no audience check): then allowed_clients must list the accepted clients".into(),
            ));
        }
        if jwt.leeway.is_some_and(|l| l > Duration::from_secs(300)) {
            return Err(err(at, "inbound.jwt.leeway is at most 5m".into()));
        }
        if let Some(login) = &self.login {
            login
                .value
                .validate(file, &login.referenced, jwt.discovery_url.is_some())?;
        }
        if jwt.jwks_refresh.is_some_and(|r| r < Duration::from_secs(1)) {
            return Err(err(
                at,
                "inbound.jwt.jwks_refresh must be at least 1s".into(),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The caller
// ---------------------------------------------------------------------------------------

/// A verified caller: who, through which client, with which scopes.
pub struct Caller {
    /// `sub`.
    pub subject: Option<Box<str>>,
    /// `client_id`, `azp` or `cid`.
    pub client: Option<Box<str>>,
    /// Granted scopes (`scope` or `scp`).
    pub scopes: Box<[Box<str>]>,
    /// The identity used to key `scope: caller` cache entries (issuer, subject, client).
    pub cache_key: Arc<str>,
    /// The verified token's claims (the principal's attributes of Cedar policies).
    pub claims: Arc<Map<String, Value>>,
    /// The bearer token as received, for `passthrough` and token exchange only.
    token: Box<str>,
}

impl Caller {
    /// The raw access token (for forwarding when a target opts in; never log it).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the caller holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("subject", &self.subject)
            .field("client", &self.client)
            .field("scopes", &self.scopes)
            .field("token", &"<redacted>")
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Failures
// ---------------------------------------------------------------------------------------

/// Why a request was not let through, with the response it gets.
#[derive(Debug)]
pub enum AuthError {
    /// No bearer token: 401, no error code (RFC 6750 section 3.1).
    Missing,
    /// The token is not acceptable: 401 `invalid_token`. `reason` is a metrics label.
    Invalid {
        /// Metrics label.
        reason: &'static str,
        /// What is wrong (safe to show: never the token).
        detail: String,
    },
    /// The token is valid but this caller may not use the gateway: 403.
    Denied {
        /// Metrics label.
        reason: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The token lacks scopes: 403 `insufficient_scope` with the scopes needed.
    InsufficientScope(Vec<String>),
    /// The issuer's keys cannot be fetched: 503.
    KeysUnavailable,
}

impl AuthError {
    /// The metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Invalid { reason, .. } | AuthError::Denied { reason, .. } => reason,
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }
}

fn invalid(reason: &'static str, detail: impl Into<String>) -> AuthError {
    AuthError::Invalid {
        reason,
        detail: detail.into(),
    }
}

// ---------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------

/// Inbound authentication, built once from the configuration.
pub struct InboundAuth {
    keys: Arc<KeyStore>,
    resource: String,
    metadata_url: String,
    audiences: Vec<String>,
    allowed_clients: Vec<String>,
    required_scopes: Vec<String>,
    rules: Vec<ClaimRule>,
    leeway: Duration,
    /// Required scopes per tool name (from `targets[].scopes` and `operations.<op>.scopes`).
    metrics: Arc<Metrics>,
}

impl fmt::Debug for InboundAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundAuth")
            .field("resource", &self.resource)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);

impl InboundAuth {
    /// Builds the authenticator from a validated configuration and starts the background
    /// key refresh (when called inside a Tokio runtime).
    pub fn new(config: &InboundConfig, http: HttpClient, metrics: Arc<Metrics>) -> Arc<Self> {
        let jwt = &config.jwt.value;
        let source = match (&jwt.discovery_url, &jwt.issuer, &jwt.jwks_uri) {
            (Some(d), _, _) => KeySource::Discovery(d.value.clone()),
            (None, Some(i), Some(j)) => KeySource::Direct {
                issuer: i.value.clone(),
                jwks_uri: j.value.clone(),
            },
            _ => unreachable!("validated: discovery_url or issuer + jwks_uri"),
        };
        let resource = config
            .resource
            .as_ref()
            .map(|r| r.value.clone())
            .or_else(|| jwt.audiences.as_ref().and_then(|a| a.first().cloned()))
            .unwrap_or_default();
        let audiences = jwt
            .audiences
            .clone()
            .unwrap_or_else(|| vec![resource.clone()]);
        let keys = Arc::new(KeyStore::new(
            source,
            http,
            jwt.jwks_cooldown.unwrap_or(DEFAULT_COOLDOWN),
            metrics.clone(),
        ));
        KeyStore::spawn_refresher(&keys, jwt.jwks_refresh.unwrap_or(DEFAULT_REFRESH));
        Arc::new(Self {
            metadata_url: metadata_url(&resource),
            resource,
            audiences,
            allowed_clients: jwt.allowed_clients.clone(),
            required_scopes: jwt.required_scopes.clone(),
            rules: jwt.claims.iter().map(|r| r.value.clone()).collect(),
            leeway: jwt.leeway.unwrap_or(DEFAULT_LEEWAY),
            keys,
            metrics,
        })
    }

    /// Authenticates a request by its `Authorization` header. Failures are counted in
    /// `auth_failures_total{reason}` and logged without the token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let result = self.verify(headers).await;
        match &result {
            Ok(caller) => tracing::debug!(
                sub = caller.subject.as_deref(),
                client = caller.client.as_deref(),
                "inbound auth: caller verified"
            ),
            Err(e) => self.count_failure(e),
        }
        result
    }

    /// Counts and logs a refusal.
    pub fn count_failure(&self, error: &AuthError) {
        self.metrics
            .auth_failures
            .with_label_values(&[error.reason()])
            .inc();
        match error {
            AuthError::Invalid { detail, .. } | AuthError::Denied { detail, .. } => {
                tracing::info!(reason = error.reason(), %detail, "inbound auth: request refused")
            }
            _ => tracing::info!(reason = error.reason(), "inbound auth: request refused"),
        }
    }

    async fn verify(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(AuthError::Missing);
        };
        if values.next().is_some() {
            return Err(invalid("malformed", "more than one Authorization header"));
        }
        let value = value
            .to_str()
            .map_err(|_| invalid("malformed", "the Authorization header is not ASCII"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::Missing),
        };
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let (claims, issuer) = self.verify_jwt(token, &self.audiences).await?;
        self.authorize(claims, token, &issuer)
    }

    /// Verifies an OpenID Connect ID token issued to the gateway's own login client
    /// (`inbound.login`): the issuer's signature, `iss`, `exp` and `aud` = `client_id`.
    /// Returns its claims and the issuer.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<(Map<String, Value>, String), AuthError> {
        self.verify_jwt(token, &[client_id.to_string()]).await
    }

    /// The signature and time checks shared by access and ID tokens; `audiences` empty
    /// means no audience check.
    async fn verify_jwt(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(Map<String, Value>, String), AuthError> {
        let header = peek_header(token)?;
        let alg = header.alg;
        let algorithm: Algorithm = alg
            .parse()
            .ok()
            .filter(|_| ACCEPTED_ALGORITHMS.contains(&alg.as_str()))
            .ok_or_else(|| invalid("algorithm", format!("algorithm `{alg}` is not accepted")))?;
        let kid = header.kid.as_deref();

        let mut keys = match self.keys.current() {
            Some(k) => k,
            None => self
                .keys
                .refresh_on_demand(None)
                .await
                .ok_or(AuthError::KeysUnavailable)?,
        };
        if keys.candidates(kid).next().is_none() {
            // A kid we do not know: the issuer may have rotated its keys.
            keys = self
                .keys
                .refresh_on_demand(Some(keys.fetched_at))
                .await
                .ok_or(AuthError::KeysUnavailable)?;
            if keys.candidates(kid).next().is_none() {
                return Err(invalid(
                    "unknown_kid",
                    "the token's signing key is not in the issuer's key set",
                ));
            }
        }

        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&keys.issuer]);
        if audiences.is_empty() {
            // `audiences: []` (validated to come with allowed_clients).
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp", "iss"]);
        } else {
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            validation.set_audience(audiences);
        }

        let mut last_error = None;
        let mut claims = None;
        for key in keys.candidates(kid) {
            if !key.algorithms.contains(&algorithm) {
                last_error = Some(invalid(
                    "algorithm",
                    format!("algorithm `{alg}` does not match the type of the signing key"),
                ));
                continue;
            }
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => last_error = Some(jwt_error(&e, &keys.issuer)),
            }
        }
        let Some(claims) = claims else {
            return Err(
                last_error.unwrap_or_else(|| invalid("signature", "no key verifies the token"))
            );
        };
        Ok((claims, keys.issuer.clone()))
    }

    /// The checks after the signature: client, scopes, claim rules.
    fn authorize(
        &self,
        claims: Map<String, Value>,
        token: &str,
        issuer: &str,
    ) -> Result<Caller, AuthError> {
        let string = |name: &str| claims.get(name).and_then(Value::as_str);
        let client = string("client_id").or(string("azp")).or(string("cid"));
        if !self.allowed_clients.is_empty()
            && !client.is_some_and(|c| self.allowed_clients.iter().any(|a| a == c))
        {
            return Err(AuthError::Denied {
                reason: "client",
                detail: format!(
                    "client `{}` is not in inbound.jwt.allowed_clients",
                    client.unwrap_or("(none)")
                ),
            });
        }
        let scopes: Box<[Box<str>]> = match claims.get("scope").or(claims.get("scp")) {
            Some(Value::String(s)) => s.split_whitespace().map(Into::into).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(Into::into)
                .collect(),
            _ => Box::default(),
        };
        let missing: Vec<String> = self
            .required_scopes
            .iter()
            .filter(|r| !scopes.iter().any(|s| **s == ***r))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(AuthError::InsufficientScope(self.required_scopes.clone()));
        }
        for rule in &self.rules {
            if !rule_holds(rule, claims.get(&rule.claim)) {
                return Err(AuthError::Denied {
                    reason: "claim_rule",
                    detail: format!("claim `{}` does not satisfy inbound.jwt.claims", rule.claim),
                });
            }
        }
        let subject = string("sub");
        let cache_key = format!(
            "{issuer}\u{0}{}\u{0}{}",
            subject.unwrap_or(""),
            client.unwrap_or("")
        );
        Ok(Caller {
            subject: subject.map(Into::into),
            client: client.map(Into::into),
            scopes,
            cache_key: cache_key.into(),
            claims: Arc::new(claims),
            token: token.into(),
        })
    }
    /// The `WWW-Authenticate` value of an `insufficient_scope` refusal for these scopes.
    pub fn insufficient_scope_challenge(&self, scopes: &[String]) -> HeaderValue {
        challenge(&[
            ("error", "insufficient_scope"),
            ("scope", &scopes.join(" ")),
            ("resource_metadata", &self.metadata_url),
        ])
    }

    /// The HTTP response of a refusal: JSON-RPC error body, `WWW-Authenticate` per RFC 6750
    /// and the MCP authorization specification.
    pub fn refusal(&self, error: &AuthError) -> RpcError {
        let scope = self.required_scopes.join(" ");
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(4);
        let (status, message): (StatusCode, String) = match error {
            AuthError::Missing => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "authentication required: send `Authorization: Bearer <access token>` for resource {}",
                    self.resource
                ),
            ),
            AuthError::Invalid { detail, .. } => {
                params.push(("error", "invalid_token"));
                params.push(("error_description", detail));
                (
                    StatusCode::UNAUTHORIZED,
                    format!("invalid access token: {detail}"),
                )
            }
            AuthError::Denied { detail, .. } => {
                params.push(("error", "access_denied"));
                params.push(("error_description", detail));
                (StatusCode::FORBIDDEN, format!("access denied: {detail}"))
            }
            AuthError::InsufficientScope(_) => {
                params.push(("error", "insufficient_scope"));
                (
                    StatusCode::FORBIDDEN,
                    format!("insufficient scope: the access token needs the scopes `{scope}`"),
                )
            }
            AuthError::KeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the identity provider's signing keys cannot be fetched right now; retry later"
                    .into(),
            ),
        };
        let insufficient = match error {
            AuthError::InsufficientScope(s) => s.join(" "),
            _ => scope,
        };
        if !insufficient.is_empty() {
            params.push(("scope", &insufficient));
        }
        params.push(("resource_metadata", &self.metadata_url));
        let challenge =
            (status != StatusCode::SERVICE_UNAVAILABLE).then(|| Box::new(challenge(&params)));
        RpcError::new(ErrorKind::Unauthenticated { status, challenge }, message)
    }

    /// Serves the RFC 9728 protected-resource metadata at
    /// `/.well-known/oauth-protected-resource` and its path-suffixed form, listing the
    /// required scopes and `tool_scopes` (those the tools' policies use); `None` for other
    /// paths.
    pub fn metadata_response(
        &self,
        path: &str,
        tool_scopes: &[String],
    ) -> Option<crate::mcp::transport::HttpResponse> {
        let suffix = path.strip_prefix("/.well-known/oauth-protected-resource")?;
        let own = url::Url::parse(&self.resource)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        if !(suffix.is_empty() || suffix == "/" || suffix == "/mcp" || suffix == own) {
            return None;
        }
        let mut doc = serde_json::json!({
            "resource": self.resource,
            "authorization_servers": self.keys.issuer().into_iter().collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
        });
        let mut scopes_supported = self.required_scopes.clone();
        for s in tool_scopes {
            if !scopes_supported.contains(s) {
                scopes_supported.push(s.clone());
            }
        }
        if !scopes_supported.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes_supported);
        }
        let mut response = Response::new(crate::mcp::transport::ResponseBody::full(Bytes::from(
            doc.to_string(),
        )));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        Some(response)
    }

    /// The URL of the metadata document (in challenges).
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }
}

/// RFC 9728 section 3.1: the well-known suffix goes between the host and the path.
fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let path = u.path().trim_end_matches('/');
            let origin = u.origin().ascii_serialization();
            format!("{origin}/.well-known/oauth-protected-resource{path}")
        }
        Err(_) => String::new(),
    }
}

/// `Bearer k="v", ...` with quotes and backslashes escaped (RFC 9110 quoted-string).
fn challenge(params: &[(&str, &str)]) -> HeaderValue {
    let mut s = String::from("Bearer");
    for (i, (k, v)) in params.iter().enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '"' | '\\' => {
                    s.push('\\');
                    s.push(c);
                }
                c if c.is_ascii() && !c.is_ascii_control() => s.push(c),
                _ => s.push('?'),
            }
        }
        s.push('"');
    }
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

#[derive(Deserialize)]
struct PeekedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Reads the JOSE header before any key is chosen, so that `none` and HMAC are refused by
/// name (and counted as such) rather than as a parse error.
fn peek_header(token: &str) -> Result<PeekedHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(
            "malformed",
            "the token is not a compact JWS (three dot-separated parts)",
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(h.trim_end_matches('='))
        .map_err(|_| invalid("malformed", "the token header is not base64url"))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| invalid("malformed", "the token header is not a JOSE header"))
}

/// Maps a verification failure to a reason and a message that helps the operator.
fn jwt_error(e: &jsonwebtoken::errors::Error, issuer: &str) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => invalid("expired", "the token has expired"),
        K::ImmatureSignature => invalid("not_yet_valid", "the token is not valid yet (nbf)"),
        K::InvalidIssuer => invalid("issuer", format!("the token was not issued by {issuer}")),
        K::InvalidAudience => invalid("audience", "the token is not meant for this gateway (aud)"),
        K::InvalidSignature => invalid("signature", "the token's signature does not verify"),
        K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
            invalid("algorithm", "the token's algorithm does not match the key")
        }
        K::MissingRequiredClaim(c) => invalid("claims", format!("the token has no `{c}` claim")),
        K::InvalidClaimFormat(c) => {
            invalid("claims", format!("the token's `{c}` claim is malformed"))
        }
        _ => invalid("malformed", "the token cannot be decoded"),
    }
}

/// Whether a claims rule holds for the claim's value.
fn rule_holds(rule: &ClaimRule, value: Option<&Value>) -> bool {
    let Some(value) = value else { return false };
    let items: Vec<&str> = match value {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::String(s) => s.split_whitespace().collect(),
        _ => Vec::new(),
    };
    if let Some(expected) = &rule.equals {
        return value.as_str() == Some(expected.as_str());
    }
    if let Some(expected) = &rule.contains {
        return items.contains(&expected.as_str());
    }
    if let Some(any) = &rule.contains_any {
        return any.iter().any(|e| items.contains(&e.as_str()));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_segment() {
        assert_eq!(
            metadata_url("https://gw.example.com/mcp"),
            "https://gw.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://gw.example.com:8443/"),
            "https://gw.example.com:8443/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn challenges_escape_quotes() {
        let v = challenge(&[
            ("error", "invalid_token"),
            ("error_description", "a \"b\" \\ c"),
        ]);
        assert_eq!(
            v.to_str().unwrap(),
            r#"Bearer error="invalid_token", error_description="a \"b\" \\ c""#
        );
    }

    #[test]
    fn claim_rules() {
        let rule =
            |equals: Option<&str>, contains: Option<&str>, any: Option<Vec<&str>>| ClaimRule {
                claim: "c".into(),
                equals: equals.map(Into::into),
                contains: contains.map(Into::into),
                contains_any: any.map(|v| v.into_iter().map(Into::into).collect()),
            };
        let arr = serde_json::json!(["a", "b"]);
        let s = serde_json::json!("x y");
        assert!(rule_holds(&rule(None, Some("b"), None), Some(&arr)));
        assert!(!rule_holds(&rule(None, Some("c"), None), Some(&arr)));
        assert!(rule_holds(
            &rule(None, None, Some(vec!["z", "a"])),
            Some(&arr)
        ));
        assert!(rule_holds(&rule(None, Some("y"), None), Some(&s)));
        assert!(!rule_holds(&rule(Some("x"), None, None), Some(&s)));
        assert!(rule_holds(&rule(Some("x y"), None, None), Some(&s)));
        assert!(!rule_holds(&rule(Some("x"), None, None), None));
    }

    #[test]
    fn none_and_hmac_are_refused_by_name() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let token = format!("{h}.e30.");
        assert_eq!(peek_header(&token).unwrap().alg, "none");
        assert!(!ACCEPTED_ALGORITHMS.contains(&"none"));
        assert!(!ACCEPTED_ALGORITHMS.iter().any(|a| a.starts_with("HS")));
        assert!(peek_header("a.b").is_err());
    }

    #[test]
    fn fetch_urls_need_https_except_on_loopback() {
        assert!(check_fetch_url("https://idp.example.com/jwks").is_ok());
        assert!(check_fetch_url("http://127.0.0.1:9/jwks").is_ok());
        assert!(check_fetch_url("http://localhost/jwks").is_ok());
        assert!(check_fetch_url("http://idp.example.com/jwks").is_err());
    }
}
