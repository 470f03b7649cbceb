//! Outbound OAuth 2.0: access tokens a target's requests carry, obtained by the gateway from
//! a token endpoint with the client credentials grant (RFC 6749 section 4.4, with the RFC
//! 8707 `resource` or Auth0-style `audience`) or by token exchange (RFC 8693, so the upstream
//! sees the end user). Tokens are cached until shortly before they expire; concurrent calls
//! share one token request; secrets never reach logs, errors or `Debug`.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::Digest;

use crate::config::{ConfigError, Secret};
use crate::metrics::Metrics;
use crate::targets::http::{HttpClient, RequestBody};

/// Largest token endpoint answer read.
const MAX_TOKEN_RESPONSE: usize = 64 << 10;
/// A token is renewed this long before it expires (less for short-lived tokens).
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// Lifetime assumed when the token endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// After a failed token request, callers within this window get the same error instead of
/// another request (the endpoint is not hammered while it is down).
const FAILURE_HOLD: Duration = Duration::from_secs(1);

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// HTTP Basic (`client_secret_basic`), the default.
    #[default]
    Basic,
    /// In the form body (`client_secret_post`).
    Post,
}

/// `credentials.oauth2` (client credentials) and `credentials.token_exchange`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint.
    pub token_url: Spanned<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret (use `${ENV}`), or
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// a file holding it (relative to the config file; trailing newline ignored).
    #[serde(default)]
    pub client_secret_file: Option<Spanned<std::path::PathBuf>>,
    /// Scopes requested.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator (the upstream's identifier).
    #[serde(default)]
    pub resource: Option<String>,
    /// Auth0-style `audience`.
    #[serde(default)]
    pub audience: Option<String>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub auth_method: AuthMethod,
}

impl OAuth2Config {
    /// Checks the section (`what` names it in messages, e.g. `credentials.oauth2`).
    pub fn validate(&self, file: &Path, target: &str, what: &str) -> Result<(), ConfigError> {
        crate::auth::inbound::check_fetch_url(&self.token_url.value).map_err(|m| {
            ConfigError::at(
                file,
                &self.token_url.referenced,
                format!("target `{target}`: {what}.token_url: {m}"),
            )
        })?;
        match (&self.client_secret, &self.client_secret_file) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(ConfigError::at(
                    file,
                    &self.token_url.referenced,
                    format!(
                        "target `{target}`: {what} takes `client_secret` or `client_secret_file` (exactly one)"
                    ),
                ));
            }
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::at(
                file,
                &self.token_url.referenced,
                format!("target `{target}`: {what}.client_id must not be empty"),
            ));
        }
        Ok(())
    }

    /// The client secret, read from the file when configured so.
    pub fn secret(&self, config_file: &Path) -> Result<Secret, String> {
        client_secret(
            self.client_secret.as_ref(),
            self.client_secret_file.as_ref(),
            config_file,
        )
    }
}

/// A client secret given inline (`client_secret`) or as a file (`client_secret_file`,
/// relative to the config file, trailing newline ignored): what every OAuth2 client section
/// of the config takes.
pub(crate) fn client_secret(
    inline: Option<&Secret>,
    file: Option<&Spanned<std::path::PathBuf>>,
    config_file: &Path,
) -> Result<Secret, String> {
    if let Some(s) = inline {
        return Ok(s.clone());
    }
    let path = file
        .map(|f| crate::config::Config::resolve(config_file, &f.value))
        .ok_or("no client secret configured")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read client_secret_file {}: {e}", path.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// Why no token could be obtained; becomes an `isError` result. Never holds a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// An access token ready to send.
#[derive(Debug)]
pub struct AccessToken {
    /// `Bearer <token>`, marked sensitive.
    pub authorization: HeaderValue,
    /// When to stop using it.
    renew_at: Instant,
}

impl AccessToken {
    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// A token endpoint with the client's credentials.
pub(crate) struct TokenEndpoint {
    target: Arc<str>,
    url: http::Uri,
    url_text: String,
    client_id: String,
    secret: Secret,
    method: AuthMethod,
    /// Parameters every request carries besides the grant's own (`scope`, `resource`...).
    extra: String,
    metrics: Arc<Metrics>,
}

impl TokenEndpoint {
    pub(crate) fn new(
        target: &str,
        config: &OAuth2Config,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let url = config
            .token_url
            .value
            .parse()
            .map_err(|e| format!("token_url is not a valid URL: {e}"))?;
        let mut extra = form_urlencoded_pairs(&[]);
        if !config.scopes.is_empty() {
            push_pair(&mut extra, "scope", &config.scopes.join(" "));
        }
        if let Some(r) = &config.resource {
            push_pair(&mut extra, "resource", r);
        }
        if let Some(a) = &config.audience {
            push_pair(&mut extra, "audience", a);
        }
        Ok(Self {
            target: target.into(),
            url,
            url_text: config.token_url.value.clone(),
            client_id: config.client_id.clone(),
            secret,
            method: config.auth_method,
            extra,
            metrics,
        })
    }

    /// POSTs a grant and reads the token, within `timeout`.
    async fn request(
        &self,
        http: &HttpClient,
        grant: &str,
        timeout: Duration,
    ) -> Result<AccessToken, TokenError> {
        let parsed = self
            .grant(http, grant, timeout)
            .await
            .map_err(|f| f.error)?;
        let lifetime = parsed.lifetime();
        let margin = EXPIRY_MARGIN.min(lifetime / 5);
        let authorization = parsed
            .authorization()
            .inspect_err(|_| self.outcome(false))?;
        tracing::debug!(target_name = %self.target, lifetime_s = lifetime.as_secs(), "outbound token obtained");
        Ok(AccessToken {
            authorization,
            renew_at: Instant::now() + lifetime - margin,
        })
    }

    fn outcome(&self, ok: bool) {
        self.metrics
            .token_fetches
            .with_label_values(&[&*self.target, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// POSTs a grant (`grant` is the form body's grant part, already encoded) and reads the
    /// whole token response, within `timeout`; only bearer tokens are accepted.
    pub(crate) async fn grant(
        &self,
        http: &HttpClient,
        grant: &str,
        timeout: Duration,
    ) -> Result<TokenResponse, GrantFailure> {
        let fail = |error: TokenError| GrantFailure {
            error,
            invalid_grant: false,
        };
        let mut body = String::with_capacity(256);
        body.push_str(grant);
        body.push_str(&self.extra);
        let mut request = http::Request::new(RequestBody::default());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        match self.method {
            AuthMethod::Basic => {
                // RFC 6749 section 2.3.1: both parts form-urlencoded before base64.
                let pair = format!(
                    "{}:{}",
                    form_encode(&self.client_id),
                    form_encode(self.secret.expose())
                );
                let mut value = HeaderValue::try_from(format!("Basic {}", STANDARD.encode(pair)))
                    .map_err(|_| {
                    fail(TokenError(
                        "the client credentials cannot be sent in a header".into(),
                    ))
                })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            AuthMethod::Post => {
                push_pair(&mut body, "client_id", &self.client_id);
                push_pair(&mut body, "client_secret", self.secret.expose());
            }
        }
        *request.body_mut() = RequestBody::new(Bytes::from(body));
        let result = http.send(request, MAX_TOKEN_RESPONSE, timeout).await;
        let answer = match result {
            Ok(a) => a,
            Err(crate::targets::UpstreamError::Status {
                status,
                body_excerpt,
            }) => {
                self.outcome(false);
                // RFC 6749 section 5.2: the grant (code, refresh token) is no longer good.
                let invalid_grant =
                    status == 400 && oauth_error(&body_excerpt).starts_with(": invalid_grant");
                return Err(GrantFailure {
                    error: TokenError(format!(
                        "the token endpoint {} refused the request (HTTP {status}{})",
                        self.url_text,
                        oauth_error(&body_excerpt)
                    )),
                    invalid_grant,
                });
            }
            Err(e) => {
                self.outcome(false);
                return Err(fail(TokenError(format!(
                    "the token endpoint {} failed: {e}",
                    self.url_text
                ))));
            }
        };
        let parsed: TokenResponse = serde_json::from_slice(&answer.body).map_err(|_| {
            self.outcome(false);
            fail(TokenError(format!(
                "the token endpoint {} did not answer with an access token",
                self.url_text
            )))
        })?;
        if parsed
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            self.outcome(false);
            return Err(fail(TokenError(format!(
                "the token endpoint {} issued a `{}` token; only bearer tokens are supported",
                self.url_text,
                parsed.token_type.unwrap_or_default()
            ))));
        }
        self.outcome(true);
        Ok(parsed)
    }
}

/// Why a grant failed: the error, and whether the endpoint said the grant itself (an
/// authorization code, a refresh token) is no longer valid (`invalid_grant`).
pub(crate) struct GrantFailure {
    pub error: TokenError,
    pub invalid_grant: bool,
}

/// A token endpoint's answer (RFC 6749 section 5.1, plus OpenID Connect's `id_token`).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<f64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
}

impl TokenResponse {
    /// How long the access token lives (a default when the endpoint does not say).
    pub fn lifetime(&self) -> Duration {
        self.expires_in
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs_f64)
    }

    /// `Bearer <token>`, marked sensitive.
    pub fn authorization(&self) -> Result<HeaderValue, TokenError> {
        bearer_header(&self.access_token)
    }
}

/// `Bearer <token>` as a sensitive header value.
pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue, TokenError> {
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| TokenError("the issued access token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `: error (description)` from an OAuth error body, if it is one.
pub(crate) fn oauth_error(body: &str) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_str::<OAuthError>(body) {
        Ok(e) => match e.error_description {
            Some(d) => format!(": {} ({d})", e.error),
            None => format!(": {}", e.error),
        },
        Err(_) => String::new(),
    }
}

pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (k, v) in pairs {
        push_pair(&mut s, k, v);
    }
    s
}

pub(crate) fn push_pair(out: &mut String, key: &str, value: &str) {
    out.push('&');
    out.push_str(&form_encode(key));
    out.push('=');
    out.push_str(&form_encode(value));
}

/// Client credentials tokens of one target: cached, renewed shortly before expiry, one
/// request at a time.
pub struct ClientCredentials {
    endpoint: TokenEndpoint,
    current: RwLock<Option<Arc<AccessToken>>>,
    /// Held while a token is requested; remembers the last failure briefly.
    refresh: tokio::sync::Mutex<Option<(Instant, TokenError)>>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OAuth2ClientCredentials({} as {}, secret: <redacted>)",
            self.endpoint.url_text, self.endpoint.client_id
        )
    }
}

impl ClientCredentials {
    /// The provider of `target`.
    pub fn new(
        target: &str,
        config: &OAuth2Config,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            endpoint: TokenEndpoint::new(target, config, secret, metrics)?,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    fn cached(&self) -> Option<Arc<AccessToken>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|t| t.fresh())
    }

    /// A valid token: the cached one, or a new one (concurrent callers share the request).
    pub async fn token(
        &self,
        http: &HttpClient,
        timeout: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        if let Some(t) = self.cached() {
            return Ok(t);
        }
        let mut last_failure = self.refresh.lock().await;
        if let Some(t) = self.cached() {
            return Ok(t); // another call renewed it while we waited
        }
        if let Some((at, error)) = &*last_failure
            && at.elapsed() < FAILURE_HOLD
        {
            return Err(error.clone());
        }
        match self
            .endpoint
            .request(http, "grant_type=client_credentials", timeout)
            .await
        {
            Ok(token) => {
                let token = Arc::new(token);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
                *last_failure = None;
                Ok(token)
            }
            Err(e) => {
                *last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Drops `used` if it is still the cached token (the upstream refused it).
    pub fn invalidate(&self, used: &Arc<AccessToken>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, used)) {
            *current = None;
        }
    }
}

/// RFC 8693 token exchange: the caller's token is traded for one meant for the upstream,
/// cached per caller token until shortly before expiry.
pub struct TokenExchange {
    endpoint: TokenEndpoint,
    cache: moka::future::Cache<[u8; 32], Arc<AccessToken>>,
}

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OAuth2TokenExchange({} as {}, secret: <redacted>)",
            self.endpoint.url_text, self.endpoint.client_id
        )
    }
}

struct RenewAt;

impl moka::Expiry<[u8; 32], Arc<AccessToken>> for RenewAt {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
        token: &Arc<AccessToken>,
        now: Instant,
    ) -> Option<Duration> {
        Some(token.renew_at.saturating_duration_since(now))
    }
}

impl TokenExchange {
    /// The provider of `target`.
    pub fn new(
        target: &str,
        config: &OAuth2Config,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            endpoint: TokenEndpoint::new(target, config, secret, metrics)?,
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(RenewAt)
                .build(),
        })
    }

    /// A token for the upstream on behalf of the holder of `subject_token`; concurrent
    /// calls with the same subject token share one exchange.
    pub async fn token(
        &self,
        http: &HttpClient,
        subject_token: &str,
        timeout: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let key: [u8; 32] = sha2::Sha256::digest(subject_token.as_bytes()).into();
        let mut grant = String::from(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
        );
        push_pair(&mut grant, "subject_token", subject_token);
        self.cache
            .try_get_with(key, async {
                self.endpoint
                    .request(http, &grant, timeout)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e: Arc<TokenError>| (*e).clone())
    }

    /// Forgets the token exchanged for `subject_token` (the upstream refused it).
    pub async fn invalidate(&self, subject_token: &str) {
        let key: [u8; 32] = sha2::Sha256::digest(subject_token.as_bytes()).into();
        self.cache.invalidate(&key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_are_summarized() {
        assert_eq!(
            oauth_error(r#"{"error":"invalid_client","error_description":"bad secret"}"#),
            ": invalid_client (bad secret)"
        );
        assert_eq!(oauth_error("<html>"), "");
    }

    #[test]
    fn form_pairs_are_encoded() {
        let mut s = String::new();
        push_pair(&mut s, "scope", "a b:c");
        assert_eq!(s, "&scope=a+b%3Ac");
    }
}
