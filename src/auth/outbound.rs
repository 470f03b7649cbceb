//! Outbound credentials: what toolgate attaches to upstream requests on behalf of a target.
//! Static values (bearer, API key) are built into header values once at load; OAuth2 tokens
//! are obtained at call time ([`super::oauth2`]). None is ever printed.

use http::HeaderValue;

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeyLocation {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
    /// A cookie.
    Cookie,
}

/// A credential attached to every upstream request of a target. Clones share the token
/// caches of dynamic credentials.
#[derive(Clone)]
pub enum CredentialProvider {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The complete `Authorization` header value, marked sensitive.
        authorization: HeaderValue,
    },
    /// An API key in a header, query parameter or cookie.
    ApiKey {
        /// Where it goes.
        location: ApiKeyLocation,
        /// Header, query or cookie name, as configured (case kept for query and cookie).
        name: Box<str>,
        /// For header keys: the header name.
        header_name: Option<http::HeaderName>,
        /// For query keys: the name as it appears in a query string (percent-encoded).
        query_name: Box<str>,
        /// The value: as a header value (header, cookie) and percent-encoded (query).
        value: HeaderValue,
        /// For query keys: the value percent-encoded for a query string.
        query_value: Box<str>,
    },
    /// OAuth2 client credentials: a token from the target's token endpoint, cached.
    OAuth2(std::sync::Arc<super::oauth2::ClientCredentials>),
    /// The caller's own bearer token, forwarded as is (opt-in: `passthrough: true`).
    Passthrough,
    /// The caller's token exchanged for one meant for the upstream (RFC 8693).
    TokenExchange(std::sync::Arc<super::oauth2::TokenExchange>),
    /// The signed-in user's own token from the vault (per-user OAuth); the call gets it
    /// before it is sent ([`super::user_oauth::UserCall`]).
    OAuth2User(std::sync::Arc<super::user_oauth::UserOAuth>),
}

impl CredentialProvider {
    /// Whether the credential is obtained at call time (not a static header).
    pub fn is_dynamic(&self) -> bool {
        matches!(
            self,
            Self::OAuth2(_) | Self::Passthrough | Self::TokenExchange(_) | Self::OAuth2User(_)
        )
    }
}

impl std::fmt::Debug for CredentialProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Self::ApiKey { location, name, .. } => {
                write!(f, "ApiKey({location:?} {name}: <redacted>)")
            }
            Self::OAuth2(source) => write!(f, "{source:?}"),
            Self::Passthrough => f.write_str("Passthrough"),
            Self::TokenExchange(exchange) => write!(f, "{exchange:?}"),
            Self::OAuth2User(user) => write!(f, "{user:?}"),
        }
    }
}

/// A credential value that cannot be used as an HTTP header value.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {0} contains characters not allowed in an HTTP header (control characters or newlines)"
)]
pub struct InvalidCredential(&'static str);

const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl CredentialProvider {
    /// A bearer token credential.
    pub fn bearer(token: &str) -> Result<Self, InvalidCredential> {
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| InvalidCredential("bearer token"))?;
        authorization.set_sensitive(true);
        Ok(Self::Bearer { authorization })
    }

    /// An API key credential.
    pub fn api_key(
        location: ApiKeyLocation,
        name: &str,
        value: &str,
    ) -> Result<Self, InvalidCredential> {
        let header_name = match location {
            ApiKeyLocation::Header => Some(
                http::HeaderName::try_from(name).map_err(|_| InvalidCredential("API key name"))?,
            ),
            _ => None,
        };
        let mut header_value =
            HeaderValue::try_from(value).map_err(|_| InvalidCredential("API key value"))?;
        header_value.set_sensitive(true);
        Ok(Self::ApiKey {
            location,
            name: name.into(),
            header_name,
            query_name: percent_encoding::utf8_percent_encode(name, QUERY)
                .to_string()
                .into(),
            value: header_value,
            query_value: percent_encoding::utf8_percent_encode(value, QUERY)
                .to_string()
                .into(),
        })
    }
}

/// Checks the dynamic kinds of `targets[].credentials` (the "exactly one kind" rule is
/// checked by the caller): OAuth2 sections, and that the kinds acting with the caller's token
/// have one (inbound authentication is on).
pub fn validate_credentials(
    c: &crate::config::CredentialsConfig,
    file: &std::path::Path,
    at: &serde_saphyr::Location,
    target: &str,
    inbound: bool,
) -> Result<(), crate::config::ConfigError> {
    if let Some(o) = &c.oauth2 {
        o.validate(file, target, "credentials.oauth2")?;
    }
    if let Some(o) = &c.token_exchange {
        o.validate(file, target, "credentials.token_exchange")?;
    }
    if (c.passthrough || c.token_exchange.is_some()) && !inbound {
        return Err(crate::config::ConfigError::at(
            file,
            at,
            format!(
                "target `{target}`: passthrough and token_exchange act with the caller's token, which needs inbound authentication (an `inbound:` section)"
            ),
        ));
    }
    Ok(())
}

impl CredentialProvider {
    /// The provider a target's `credentials:` section describes (validated by the config).
    /// Secret files are read now, so a reload picks up a rotated secret.
    pub fn from_config(
        c: &crate::config::CredentialsConfig,
        target: &str,
        config_file: &std::path::Path,
        metrics: &std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<CredentialProvider, String> {
        use std::sync::Arc;
        if let Some(o) = &c.oauth2 {
            let secret = o.secret(config_file)?;
            let source = super::oauth2::ClientCredentials::new(target, o, secret, metrics.clone())?;
            return Ok(CredentialProvider::OAuth2(Arc::new(source)));
        }
        if let Some(o) = &c.oauth2_user {
            let user = super::user_oauth::UserOAuth::new(target, o, config_file, metrics.clone())?;
            return Ok(CredentialProvider::OAuth2User(Arc::new(user)));
        }
        if let Some(o) = &c.token_exchange {
            let secret = o.secret(config_file)?;
            let exchange = super::oauth2::TokenExchange::new(target, o, secret, metrics.clone())?;
            return Ok(CredentialProvider::TokenExchange(Arc::new(exchange)));
        }
        if c.passthrough {
            return Ok(CredentialProvider::Passthrough);
        }
        if let Some(token) = &c.bearer {
            return CredentialProvider::bearer(token.expose()).map_err(|e| e.to_string());
        }
        if let Some(key) = &c.api_key {
            return CredentialProvider::api_key(key.location, &key.name, key.value.expose())
                .map_err(|e| e.to_string());
        }
        Err("credentials: no kind given".into())
    }
}

impl crate::config::CredentialsConfig {
    /// The files the credentials are read from (secret files), resolved.
    pub fn files(&self, config_file: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut files: Vec<std::path::PathBuf> = [&self.oauth2, &self.token_exchange]
            .into_iter()
            .flatten()
            .filter_map(|o| o.client_secret_file.as_ref())
            .map(|f| crate::config::Config::resolve(config_file, &f.value))
            .collect();
        if let Some(u) = &self.oauth2_user {
            files.extend(u.files(config_file));
        }
        files
    }
}
