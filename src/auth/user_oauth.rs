//! Acting for the signed-in user (`credentials.oauth2_user`): the upstream is called with
//! the *user's* OAuth 2.0 access token, obtained once by the authorization code grant with
//! PKCE (RFC 6749 section 4.1, RFC 7636) and kept in the token vault ([`super::vault`]),
//! refreshed before it expires. The user is the inbound token's issuer and subject.
//!
//! A call for a user the vault has no token for is answered with a URL elicitation
//! pointing at the gateway's `/oauth/connect` ([`super::connect`]); the user opens it,
//! signs in at the gateway's own identity provider (so the tokens are bound to the user who
//! asked, not to whoever opened the link) and authorizes the upstream; then the agent calls
//! again. Nothing of this is kept in the gateway's memory: the flow's state travels sealed
//! (AEAD) in the URL, the `state` parameter and a browser cookie, so any replica serves
//! any step.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::Digest;

use super::oauth2::{AuthMethod, OAuth2Config, TokenEndpoint, TokenError, push_pair};
use super::vault::{SealKeys, UserId, UserTokens, Vault};
use crate::config::{ConfigError, Secret};
use crate::metrics::Metrics;
use crate::targets::http::HttpClient;

/// How long before its expiry a user's access token is refreshed, by default.
const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// How long a connect link and each step of its flow stay valid.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// Time limit of one token endpoint request made for a user.
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Parameters of the authorization request the gateway sets itself (not overridable by
/// `authorization_params`).
const RESERVED_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "resource",
    "audience",
    "code_challenge",
    "code_challenge_method",
    "nonce",
];

/// `targets[].credentials.oauth2_user`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserOAuthConfig {
    /// The provider's authorization endpoint (the user's browser is sent there).
    pub authorization_url: Spanned<String>,
    /// The provider's token endpoint.
    pub token_url: Spanned<String>,
    /// The gateway's client id at the provider.
    pub client_id: String,
    /// Its secret (use `${ENV}`), or
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// a file holding it (relative to the config file).
    #[serde(default)]
    pub client_secret_file: Option<Spanned<PathBuf>>,
    /// Scopes asked for (include the provider's refresh scope, e.g. `offline_access`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator of the upstream.
    #[serde(default)]
    pub resource: Option<String>,
    /// Auth0-style `audience`.
    #[serde(default)]
    pub audience: Option<String>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// Extra authorization request parameters (e.g. Google's `access_type: offline`).
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Refresh the access token this long before it expires (default `60s`).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub refresh_before: Option<Duration>,
    /// What the user is told when asked to authorize (default names the target).
    #[serde(default)]
    pub message: Option<String>,
}

impl UserOAuthConfig {
    /// The token endpoint part, as the other OAuth2 kinds describe it. Scopes are left
    /// out: they belong to the authorization request, not to code redemption or refresh.
    fn token_config(&self) -> OAuth2Config {
        OAuth2Config {
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            client_secret_file: self.client_secret_file.clone(),
            scopes: Vec::new(),
            resource: self.resource.clone(),
            audience: self.audience.clone(),
            auth_method: self.auth_method,
        }
    }

    /// Checks the section of `target`.
    pub fn validate(&self, file: &Path, target: &str) -> Result<(), ConfigError> {
        self.token_config()
            .validate(file, target, "credentials.oauth2_user")?;
        let at = &self.authorization_url.referenced;
        crate::auth::inbound::check_fetch_url(&self.authorization_url.value).map_err(|m| {
            ConfigError::at(
                file,
                at,
                format!("target `{target}`: credentials.oauth2_user.authorization_url: {m}"),
            )
        })?;
        if url::Url::parse(&self.authorization_url.value).is_ok_and(|u| u.fragment().is_some()) {
            return Err(ConfigError::at(
                file,
                at,
                format!(
                    "target `{target}`: credentials.oauth2_user.authorization_url must not have a fragment"
                ),
            ));
        }
        if let Some(key) = self
            .authorization_params
            .keys()
            .find(|k| RESERVED_PARAMS.contains(&k.as_str()))
        {
            return Err(ConfigError::at(
                file,
                at,
                format!(
                    "target `{target}`: credentials.oauth2_user.authorization_params cannot set `{key}`: the gateway sets it (use `scopes`, `resource` or `audience` for those)"
                ),
            ));
        }
        Ok(())
    }

    /// The client secret file, if any (for `--watch`).
    pub fn files(&self, config_file: &Path) -> Vec<PathBuf> {
        self.client_secret_file
            .iter()
            .map(|f| crate::config::Config::resolve(config_file, &f.value))
            .collect()
    }
}

/// `inbound.login`: the gateway's own OpenID Connect client at the inbound issuer, used to
/// sign in the user who opens a connect link (authorization code + PKCE) and check that it
/// is the user the link was made for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The client id (its redirect URI is `<gateway.public_url>/oauth/callback`).
    pub client_id: String,
    /// Its secret, or
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// a file holding it.
    #[serde(default)]
    pub client_secret_file: Option<Spanned<PathBuf>>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub auth_method: AuthMethod,
    /// The authorization endpoint (default: from `inbound.jwt.discovery_url`).
    #[serde(default)]
    pub authorization_endpoint: Option<Spanned<String>>,
    /// The token endpoint (default: from `inbound.jwt.discovery_url`).
    #[serde(default)]
    pub token_endpoint: Option<Spanned<String>>,
}

impl LoginConfig {
    /// Checks the section; `discovery` says whether the endpoints can be discovered.
    pub fn validate(
        &self,
        file: &Path,
        at: &serde_saphyr::Location,
        discovery: bool,
    ) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError::at(file, at, m);
        if self.client_id.is_empty() {
            return Err(err("inbound.login.client_id must not be empty".into()));
        }
        if self.client_secret.is_some() == self.client_secret_file.is_some() {
            return Err(err(
                "inbound.login takes `client_secret` or `client_secret_file` (exactly one)".into(),
            ));
        }
        for (name, url) in [
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
        ] {
            match url {
                Some(u) => crate::auth::inbound::check_fetch_url(&u.value).map_err(|m| {
                    ConfigError::at(file, &u.referenced, format!("inbound.login.{name}: {m}"))
                })?,
                None if !discovery => {
                    return Err(err(format!(
                        "inbound.login.{name} is needed: inbound.jwt has no discovery_url to find it in"
                    )));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn secret(&self, config_file: &Path) -> Result<Secret, String> {
        super::oauth2::client_secret(
            self.client_secret.as_ref(),
            self.client_secret_file.as_ref(),
            config_file,
        )
        .map_err(|m| format!("inbound.login: {m}"))
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `S256` code challenge of a PKCE verifier (RFC 7636 section 4.2).
pub(crate) fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A fresh random value, base64url (verifiers, nonces, cookie values, ids).
pub(crate) fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(SealKeys::random::<32>())
}

/// A user's token ready to send, and the record it came from.
pub struct UserAccess {
    /// `Bearer <token>`, marked sensitive.
    pub authorization: HeaderValue,
    /// The vault record.
    pub tokens: Arc<UserTokens>,
}

/// Why a call cannot carry the user's token.
#[derive(Debug)]
pub enum UserTokenError {
    /// No usable token for this user (never authorized, revoked, refresh refused): ask.
    NotConnected,
    /// The vault or the token endpoint failed; asking the user again would not help.
    Failed(String),
}

/// The per-user OAuth settings of one target, built at load.
pub struct UserOAuth {
    target: Arc<str>,
    endpoint: TokenEndpoint,
    authorization_url: String,
    client_id: String,
    scope: String,
    resource: Option<String>,
    audience: Option<String>,
    params: Vec<(String, String)>,
    refresh_before: Duration,
    message: String,
    /// One refresh at a time per user (on this replica).
    refreshing: moka::sync::Cache<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for UserOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OAuth2User({} as {}, secret: <redacted>)",
            self.authorization_url, self.client_id
        )
    }
}

impl UserOAuth {
    /// The provider of `target` (validated config; secret files are read now).
    pub fn new(
        target: &str,
        config: &UserOAuthConfig,
        config_file: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let token = config.token_config();
        let secret = token.secret(config_file)?;
        Ok(Self {
            target: target.into(),
            endpoint: TokenEndpoint::new(target, &token, secret, metrics.clone())?,
            authorization_url: config.authorization_url.value.clone(),
            client_id: config.client_id.clone(),
            scope: config.scopes.join(" "),
            resource: config.resource.clone(),
            audience: config.audience.clone(),
            params: config
                .authorization_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            refresh_before: config.refresh_before.unwrap_or(DEFAULT_REFRESH_BEFORE),
            message: config.message.clone().unwrap_or_else(|| {
                format!("Authorize the gateway to use `{target}` on your behalf.")
            }),
            refreshing: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            metrics,
        })
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// What the user is told when asked to authorize.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a record is close enough to its expiry to be refreshed first.
    fn due(&self, tokens: &UserTokens) -> bool {
        tokens
            .expires_at
            .is_some_and(|at| now_unix() + self.refresh_before.as_secs() >= at)
    }

    fn access(tokens: Arc<UserTokens>) -> Result<Arc<UserAccess>, UserTokenError> {
        let authorization = super::oauth2::bearer_header(&tokens.access_token)
            .map_err(|e| UserTokenError::Failed(e.0))?;
        Ok(Arc::new(UserAccess {
            authorization,
            tokens,
        }))
    }

    /// The user's token for a call: the vault's, refreshed first when it is due.
    pub async fn access_for(
        &self,
        http: &HttpClient,
        vault: &Vault,
        user: &UserId,
    ) -> Result<Arc<UserAccess>, UserTokenError> {
        let tokens = vault
            .get(&self.target, user)
            .await
            .map_err(|e| UserTokenError::Failed(e.to_string()))?
            .ok_or(UserTokenError::NotConnected)?;
        if !self.due(&tokens) {
            return Self::access(tokens);
        }
        if tokens.refresh_token.is_some() {
            return self.refresh(http, vault, user, &tokens).await;
        }
        if tokens.expires_at.is_some_and(|at| now_unix() >= at) {
            // Expired and nothing to renew it with: the user must authorize again.
            self.forget(vault, user, "expired").await?;
            return Err(UserTokenError::NotConnected);
        }
        Self::access(tokens)
    }

    /// The upstream refused `used` (401): a refreshed token, or `NotConnected` (and the
    /// record forgotten) when there is no refresh token.
    pub async fn renew_rejected(
        &self,
        http: &HttpClient,
        vault: &Vault,
        user: &UserId,
        used: &UserAccess,
    ) -> Result<Arc<UserAccess>, UserTokenError> {
        self.count("rejected");
        if used.tokens.refresh_token.is_some() {
            return self.refresh(http, vault, user, &used.tokens).await;
        }
        self.forget(vault, user, "rejected").await?;
        Err(UserTokenError::NotConnected)
    }

    async fn forget(&self, vault: &Vault, user: &UserId, why: &str) -> Result<(), UserTokenError> {
        tracing::info!(target_name = %self.target, reason = why, "user token forgotten: the user will be asked to authorize again");
        vault
            .remove(&self.target, user)
            .await
            .map(|_| ())
            .map_err(|e| UserTokenError::Failed(e.to_string()))
    }

    fn count(&self, event: &str) {
        self.metrics
            .user_tokens
            .with_label_values(&[&*self.target, event])
            .inc();
    }

    /// Refreshes `seen` (RFC 6749 section 6), one refresh per user at a time; a refresh
    /// made meanwhile (by this replica or another) is used instead of making another.
    async fn refresh(
        &self,
        http: &HttpClient,
        vault: &Vault,
        user: &UserId,
        seen: &UserTokens,
    ) -> Result<Arc<UserAccess>, UserTokenError> {
        let lock = self
            .refreshing
            .get_with(user.digest(), || Arc::new(tokio::sync::Mutex::new(())));
        let _one = lock.lock().await;
        let failed = |e: &dyn std::fmt::Display| UserTokenError::Failed(e.to_string());
        let Some(current) = vault
            .get_fresh(&self.target, user)
            .await
            .map_err(|e| failed(&e))?
        else {
            return Err(UserTokenError::NotConnected);
        };
        if current.access_token != seen.access_token && !self.due(&current) {
            return Self::access(Arc::new(current));
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            self.forget(vault, user, "no refresh token").await?;
            return Err(UserTokenError::NotConnected);
        };
        let mut grant = String::from("grant_type=refresh_token");
        push_pair(&mut grant, "refresh_token", &refresh_token);
        match self.endpoint.grant(http, &grant, TOKEN_TIMEOUT).await {
            Ok(answer) => {
                let tokens = UserTokens {
                    expires_at: Some(now_unix() + answer.lifetime().as_secs()),
                    // RFC 6749 section 6: a new refresh token replaces the old one, if sent.
                    refresh_token: answer.refresh_token.or(Some(refresh_token)),
                    scope: answer.scope.or(current.scope),
                    access_token: answer.access_token,
                    obtained_at: now_unix(),
                };
                vault
                    .put(&self.target, user, &tokens)
                    .await
                    .map_err(|e| failed(&e))?;
                self.count("refreshed");
                tracing::debug!(target_name = %self.target, "user token refreshed");
                Self::access(Arc::new(tokens))
            }
            Err(f) if f.invalid_grant => {
                // Another replica may have used (and rotated) the same refresh token.
                if let Ok(Some(now)) = vault.get_fresh(&self.target, user).await
                    && now.refresh_token.as_deref() != Some(refresh_token.as_str())
                {
                    return Self::access(Arc::new(now));
                }
                self.count("refresh_refused");
                self.forget(vault, user, "refresh refused").await?;
                Err(UserTokenError::NotConnected)
            }
            Err(f) => {
                self.count("refresh_failed");
                Err(UserTokenError::Failed(format!(
                    "cannot refresh the user's token for target `{}`: {}",
                    self.target, f.error
                )))
            }
        }
    }

    /// The provider's authorization request URL for this flow.
    pub fn authorization_request(&self, redirect_uri: &str, state: &str, verifier: &str) -> String {
        let mut url = self.authorization_url.clone();
        let mut query = String::new();
        push_pair(&mut query, "response_type", "code");
        push_pair(&mut query, "client_id", &self.client_id);
        push_pair(&mut query, "redirect_uri", redirect_uri);
        if !self.scope.is_empty() {
            push_pair(&mut query, "scope", &self.scope);
        }
        if let Some(r) = &self.resource {
            push_pair(&mut query, "resource", r);
        }
        if let Some(a) = &self.audience {
            push_pair(&mut query, "audience", a);
        }
        push_pair(&mut query, "state", state);
        push_pair(&mut query, "code_challenge", &code_challenge(verifier));
        push_pair(&mut query, "code_challenge_method", "S256");
        for (k, v) in &self.params {
            push_pair(&mut query, k, v);
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query[1..]);
        url
    }

    /// Redeems an authorization code (with its PKCE verifier) for the user's tokens.
    pub async fn redeem(
        &self,
        http: &HttpClient,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<UserTokens, TokenError> {
        let mut grant = String::from("grant_type=authorization_code");
        push_pair(&mut grant, "code", code);
        push_pair(&mut grant, "redirect_uri", redirect_uri);
        push_pair(&mut grant, "code_verifier", verifier);
        let answer = self
            .endpoint
            .grant(http, &grant, TOKEN_TIMEOUT)
            .await
            .map_err(|f| f.error)?;
        Ok(UserTokens {
            expires_at: Some(now_unix() + answer.lifetime().as_secs()),
            refresh_token: answer.refresh_token,
            scope: answer.scope,
            access_token: answer.access_token,
            obtained_at: now_unix(),
        })
    }
}

/// The gateway's login client at the inbound issuer (`inbound.login`), its endpoints
/// discovered on first use.
pub struct Login {
    config_endpoints: (Option<String>, Option<String>),
    discovery_url: Option<String>,
    client_id: String,
    secret: Secret,
    auth_method: AuthMethod,
    endpoints: tokio::sync::OnceCell<(String, TokenEndpoint)>,
    metrics: Arc<Metrics>,
}

impl Login {
    /// From a validated `inbound.login` and the inbound discovery URL.
    pub fn new(
        config: &LoginConfig,
        discovery_url: Option<&str>,
        config_file: &Path,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        Ok(Self {
            config_endpoints: (
                config
                    .authorization_endpoint
                    .as_ref()
                    .map(|u| u.value.clone()),
                config.token_endpoint.as_ref().map(|u| u.value.clone()),
            ),
            discovery_url: discovery_url.map(str::to_owned),
            client_id: config.client_id.clone(),
            secret: config.secret(config_file)?,
            auth_method: config.auth_method,
            endpoints: tokio::sync::OnceCell::new(),
            metrics,
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authorization endpoint and the token endpoint (discovered once).
    pub(crate) async fn endpoints(
        &self,
        http: &HttpClient,
    ) -> Result<&(String, TokenEndpoint), String> {
        self.endpoints
            .get_or_try_init(|| async {
                let (mut authorize, mut token) = self.config_endpoints.clone();
                if (authorize.is_none() || token.is_none())
                    && let Some(url) = &self.discovery_url
                {
                    let doc = discover(http, url).await?;
                    authorize = authorize.or(doc.authorization_endpoint);
                    token = token.or(doc.token_endpoint);
                }
                let authorize = authorize.ok_or(
                    "the inbound issuer's discovery document has no authorization_endpoint",
                )?;
                let token =
                    token.ok_or("the inbound issuer's discovery document has no token_endpoint")?;
                crate::auth::inbound::check_fetch_url(&token)?;
                let config = OAuth2Config {
                    token_url: Spanned::new(
                        token,
                        serde_saphyr::Location::UNKNOWN,
                        serde_saphyr::Location::UNKNOWN,
                    ),
                    client_id: self.client_id.clone(),
                    client_secret: None,
                    client_secret_file: None,
                    scopes: Vec::new(),
                    resource: None,
                    audience: None,
                    auth_method: self.auth_method,
                };
                let endpoint = TokenEndpoint::new(
                    "inbound.login",
                    &config,
                    self.secret.clone(),
                    self.metrics.clone(),
                )?;
                Ok((authorize, endpoint))
            })
            .await
    }
}

#[derive(Deserialize)]
struct Discovery {
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
}

async fn discover(http: &HttpClient, url: &str) -> Result<Discovery, String> {
    let mut request = http::Request::new(crate::targets::http::RequestBody::default());
    *request.uri_mut() = url
        .parse()
        .map_err(|e| format!("discovery_url is not a valid URL: {e}"))?;
    request.headers_mut().insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let answer = http
        .send(request, 256 << 10, TOKEN_TIMEOUT)
        .await
        .map_err(|e| format!("cannot read the inbound issuer's discovery document {url}: {e}"))?;
    serde_json::from_slice(&answer.body)
        .map_err(|e| format!("the discovery document {url} is not valid JSON: {e}"))
}

/// Everything per-user OAuth needs at run time: the vault, the login client and the
/// targets that use it. Part of a loaded configuration (rebuilt by every reload).
pub struct UserAuth {
    /// The token vault.
    pub vault: Arc<Vault>,
    /// The gateway's login client at the inbound issuer.
    pub login: Login,
    /// `credentials.oauth2_user` of each target that has it, by target name.
    pub targets: HashMap<Arc<str>, Arc<UserOAuth>>,
}

impl std::fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuth")
            .field("vault", &self.vault.describe())
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A URL elicitation for one call.
#[derive(Debug, Clone)]
pub struct Elicitation {
    /// Unique per elicitation (2025-11-25 `elicitationId`).
    pub id: String,
    /// Where the user goes: the gateway's connect page.
    pub url: String,
    /// What the user reads.
    pub message: String,
}

/// What a connect link carries, sealed: whose link it is, for which target, until when.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Flow {
    /// Target.
    pub t: String,
    /// Issuer of the user the link was made for.
    pub i: String,
    /// Their subject.
    pub s: String,
    /// The elicitation id.
    pub e: String,
    /// Expiry (Unix seconds).
    pub x: u64,
}

/// The sealing purposes (AEAD associated data) of each step, so that a value sealed for
/// one step is refused by another.
pub(crate) const CONNECT_PURPOSE: &[u8] = b"toolgate-flow-v1\0connect";

impl UserAuth {
    /// A connect link for `user` and `target`.
    pub fn elicitation(&self, oauth: &UserOAuth, user: &UserId, base: &str) -> Elicitation {
        let id = URL_SAFE_NO_PAD.encode(SealKeys::random::<12>());
        let flow = Flow {
            t: oauth.target.to_string(),
            i: user.issuer.to_string(),
            s: user.subject.to_string(),
            e: id.clone(),
            x: now_unix() + FLOW_LIFETIME.as_secs(),
        };
        let sealed = self.vault.keys().seal(
            CONNECT_PURPOSE,
            &serde_json::to_vec(&flow).unwrap_or_default(),
        );
        oauth.count("elicited");
        Elicitation {
            url: format!(
                "{base}/oauth/connect?flow={}",
                URL_SAFE_NO_PAD.encode(sealed)
            ),
            id,
            message: oauth.message.clone(),
        }
    }
}

/// The user of a verified caller: its token's `iss` and `sub`.
pub fn user_of(caller: &crate::auth::Caller) -> Option<UserId> {
    let issuer = caller.claims.get("iss").and_then(|v| v.as_str())?;
    let subject = caller.subject.as_deref()?;
    Some(UserId {
        issuer: issuer.into(),
        subject: subject.into(),
    })
}

/// One call's user credential, handed to the HTTP client: the token to send and what it
/// takes to renew it when the upstream refuses it.
pub struct UserCall<'a> {
    /// The target's settings.
    pub oauth: &'a UserOAuth,
    /// The vault.
    pub vault: &'a Vault,
    /// The user.
    pub user: UserId,
    /// The token this call sends first.
    pub access: Arc<UserAccess>,
}

impl UserCall<'_> {
    /// A renewed token after the upstream refused the first one.
    pub async fn renewed(&self, http: &HttpClient) -> Result<Arc<UserAccess>, String> {
        match self
            .oauth
            .renew_rejected(http, self.vault, &self.user, &self.access)
            .await
        {
            Ok(access) => Ok(access),
            Err(UserTokenError::NotConnected) => Err(format!(
                "the upstream of target `{}` refused the user's token and it cannot be renewed: call the tool again to authorize anew",
                self.oauth.target
            )),
            Err(UserTokenError::Failed(m)) => Err(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_differ_and_are_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
