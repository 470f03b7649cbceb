//! The inbound token issuer's signing keys: OIDC discovery, the JWKS document, a refresh in
//! the background, and a re-fetch on an unknown `kid` at most once per cooldown, so that
//! forged kids cannot flood the identity provider. Keys rotate without a restart.

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::metrics::Metrics;
use crate::targets::http::HttpClient;

/// Largest discovery or JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Time limit of one discovery or JWKS request.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The asymmetric algorithms accepted, each with the key type it needs. `none` and every
/// HMAC algorithm are absent on purpose: a JWKS publishes public keys, and an HMAC
/// "signed" with a public key proves nothing.
pub const ACCEPTED_ALGORITHMS: [&str; 7] = [
    "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA",
];

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// OIDC discovery: the document gives `issuer` and `jwks_uri`.
    Discovery(String),
    /// Given directly.
    Direct {
        /// The exact `iss` value.
        issuer: String,
        /// The JWKS document.
        jwks_uri: String,
    },
}

/// One usable verification key.
pub struct VerifyKey {
    /// `kid`, when the JWKS gives one.
    pub kid: Option<String>,
    /// The key.
    pub key: DecodingKey,
    /// The algorithms this key may verify (its own type only).
    pub algorithms: Vec<Algorithm>,
}

/// A fetched key set and the issuer it belongs to.
pub struct KeySet {
    /// The issuer (from discovery or the configuration).
    pub issuer: String,
    /// The JWKS URL it came from.
    pub jwks_uri: String,
    /// Usable keys.
    pub keys: Vec<VerifyKey>,
    /// When it was fetched.
    pub fetched_at: Instant,
}

impl KeySet {
    /// The keys that may verify a token with this `kid` and algorithm.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a VerifyKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none() || k.kid.as_deref() == kid)
    }
}

/// The key store: current key set, refresh policy and metrics.
pub struct KeyStore {
    source: KeySource,
    http: HttpClient,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching; holds the time of the last on-demand attempt.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    cooldown: Duration,
    metrics: Arc<Metrics>,
}

/// Why keys could not be fetched (for logs; the token is never involved).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

impl KeyStore {
    /// A store for `source`; nothing is fetched yet.
    pub fn new(
        source: KeySource,
        http: HttpClient,
        cooldown: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            source,
            http,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(None),
            cooldown,
            metrics,
        }
    }

    /// The current key set, if one was fetched.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The issuer, when known (configured, or from a fetched discovery document).
    pub fn issuer(&self) -> Option<String> {
        match &self.source {
            KeySource::Direct { issuer, .. } => Some(issuer.clone()),
            KeySource::Discovery(url) => self.current().map(|k| k.issuer.clone()).or_else(|| {
                url.strip_suffix("/.well-known/openid-configuration")
                    .map(str::to_string)
            }),
        }
    }

    /// Fetches again on demand (no keys yet, or an unknown `kid`), unless another fetch
    /// finished since `seen` (then its result is used) or the last on-demand attempt was
    /// less than the cooldown ago (then the current set is kept: forged kids cannot make
    /// the gateway hammer the identity provider).
    pub async fn refresh_on_demand(&self, seen: Option<Instant>) -> Option<Arc<KeySet>> {
        let mut last = self.fetching.lock().await;
        let current = self.current();
        if let Some(set) = &current
            && Some(set.fetched_at) != seen
        {
            return current;
        }
        if last.is_some_and(|t| t.elapsed() < self.cooldown) {
            self.metrics
                .jwks_refreshes
                .with_label_values(&["rate_limited"])
                .inc();
            return current;
        }
        *last = Some(Instant::now());
        self.fetch_and_store().await.ok().or(current)
    }

    /// Fetches now (the background refresh), whatever the cooldown.
    pub async fn refresh(&self) -> Result<Arc<KeySet>, FetchError> {
        let _guard = self.fetching.lock().await;
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> Result<Arc<KeySet>, FetchError> {
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::info!(
                    issuer = %set.issuer,
                    keys = set.keys.len(),
                    "inbound auth: signing keys loaded"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(set.clone());
                self.metrics.jwks_refreshes.with_label_values(&["ok"]).inc();
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbound auth: cannot fetch the signing keys");
                self.metrics
                    .jwks_refreshes
                    .with_label_values(&["error"])
                    .inc();
                Err(e)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let (issuer, jwks_uri) = match &self.source {
            KeySource::Direct { issuer, jwks_uri } => (issuer.clone(), jwks_uri.clone()),
            KeySource::Discovery(url) => {
                #[derive(serde::Deserialize)]
                struct Discovery {
                    issuer: Option<String>,
                    jwks_uri: Option<String>,
                }
                let body = self.get(url).await?;
                let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
                    FetchError(format!("discovery document {url} is not valid JSON: {e}"))
                })?;
                let (Some(issuer), Some(jwks_uri)) = (doc.issuer, doc.jwks_uri) else {
                    return Err(FetchError(format!(
                        "discovery document {url} lacks `issuer` or `jwks_uri`"
                    )));
                };
                // OpenID Connect Discovery 1.0, section 4.3: the issuer must be the URL
                // the document was fetched from, minus the well-known suffix.
                let expected = url.strip_suffix("/.well-known/openid-configuration");
                if expected.is_some_and(|e| e != issuer.trim_end_matches('/')) {
                    return Err(FetchError(format!(
                        "discovery document {url} names issuer `{issuer}`, which does not match its URL"
                    )));
                }
                crate::auth::inbound::check_fetch_url(&jwks_uri)
                    .map_err(|e| FetchError(format!("discovery document {url}: jwks_uri {e}")))?;
                (issuer, jwks_uri)
            }
        };
        let body = self.get(&jwks_uri).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| FetchError(format!("JWKS {jwks_uri} is not a valid key set: {e}")))?;
        let keys: Vec<VerifyKey> = set.keys.iter().filter_map(verify_key).collect();
        if keys.is_empty() {
            return Err(FetchError(format!(
                "JWKS {jwks_uri} has no usable signing key (RSA, EC P-256/P-384 or Ed25519)"
            )));
        }
        Ok(KeySet {
            issuer,
            jwks_uri,
            keys,
            fetched_at: Instant::now(),
        })
    }

    async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| FetchError(format!("invalid URL {url}: {e}")))?;
        let mut request = http::Request::new(crate::targets::http::RequestBody::default());
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let answer = self
            .http
            .send(request, MAX_DOCUMENT_BYTES, FETCH_TIMEOUT)
            .await
            .map_err(|e| FetchError(format!("GET {url}: {e}")))?;
        if answer.truncated {
            return Err(FetchError(format!("GET {url}: the document is too large")));
        }
        Ok(answer.body)
    }

    /// Refreshes every `interval` for as long as the store lives (the task holds a weak
    /// reference); a failed fetch is retried sooner, with backoff.
    pub fn spawn_refresher(store: &Arc<KeyStore>, interval: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<KeyStore> = Arc::downgrade(store);
        runtime.spawn(async move {
            let mut delay = Duration::ZERO;
            loop {
                tokio::time::sleep(delay).await;
                let Some(store) = weak.upgrade() else { return };
                delay = match store.refresh().await {
                    Ok(_) => interval,
                    Err(_) if delay >= interval || delay.is_zero() => Duration::from_secs(1),
                    Err(_) => (delay * 2).min(Duration::from_secs(60)).min(interval),
                };
            }
        });
    }
}

/// A JWK as a verification key, with the algorithms of its own type; `None` for keys that
/// are not for signatures, symmetric keys and unsupported curves.
fn verify_key(jwk: &Jwk) -> Option<VerifyKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let mut algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => return None,
    };
    // A key that names its algorithm is used with that one only.
    if let Some(named) = jwk.common.key_algorithm {
        let named = match named {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        };
        algorithms.retain(|a| *a == named);
        if algorithms.is_empty() {
            return None;
        }
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyKey {
        kid: jwk.common.key_id.clone(),
        key,
        algorithms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn keys_get_only_the_algorithms_of_their_type() {
        let ec = jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "e",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }));
        assert_eq!(verify_key(&ec).unwrap().algorithms, vec![Algorithm::ES256]);
        let rsa = jwk(serde_json::json!({
            "kty": "RSA", "kid": "r", "alg": "RS384", "e": "AQAB",
            "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"
        }));
        assert_eq!(verify_key(&rsa).unwrap().algorithms, vec![Algorithm::RS384]);
        let enc = jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "enc",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }));
        assert!(verify_key(&enc).is_none(), "encryption keys never verify");
        let oct = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(verify_key(&oct).is_none(), "symmetric keys are never used");
        let mismatched = jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256", "alg": "RS256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }));
        assert!(
            verify_key(&mismatched).is_none(),
            "an EC key named RS256 is unusable"
        );
    }
}
