//! A real OpenID Connect provider for the auth tests: `node tests/idp/server.mjs` (panva's
//! oidc-provider) on 127.0.0.1 with an ephemeral port, killed when dropped. Install it once
//! with `(cd tests/idp && npm ci)` (the README's test command does).
//!
//! Besides client credentials and token exchange, it runs the authorization code flow for
//! clients registered at run time ([`Idp::add_client`]): PKCE S256 required, login and consent
//! pages a [`super::browser::Browser`] drives (any login, password `<login>-password`),
//! refresh tokens rotated on each use, JWT access tokens for a `resource`. Each `Idp` is its
//! own process with its own keys, so a test can run one as the gateway's login provider and
//! another as an upstream's authorization server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// A running test identity provider.
pub struct Idp {
    pub port: u16,
    child: Child,
    http: reqwest::Client,
}

impl Idp {
    /// Starts a provider and waits for it to print its port.
    pub async fn start() -> Idp {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test identity provider is not installed: run `(cd tests/idp && npm ci)` (./test.sh does)"
        );
        let node = std::env::var("TOOLGATE_TEST_NODE").unwrap_or_else(|_| "node".into());
        let mut child = Command::new(&node)
            .arg("server.mjs")
            .current_dir(&dir)
            .env("IDP_EXIT_WITH_STDIN", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // TOOLGATE_TEST_IDP_STDERR=1 shows the provider's errors and warnings.
            .stderr(if std::env::var_os("TOOLGATE_TEST_IDP_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{node}` (Node.js is needed for the auth tests): {e}")
            });
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line).map(|_| line)
            }),
        )
        .await
        .expect("the IdP starts within 30s")
        .unwrap()
        .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected IdP output: {line:?}"));
        Idp {
            port,
            child,
            http: reqwest::Client::new(),
        }
    }

    /// GET `url` and its JSON answer.
    async fn get_json(&self, url: impl reqwest::IntoUrl) -> Value {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer())
    }

    /// A JWT access token for `resource` by client credentials (`<client>-secret`).
    pub async fn token(&self, client: &str, resource: &str, scope: &str) -> String {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let response = self
            .http
            .post(self.token_url())
            .basic_auth(client, Some(format!("{client}-secret")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("IdP issued no token: {body}"))
            .to_string()
    }

    /// A JWS of `claims` signed by the IdP's current `alg` key (test-only admin endpoint);
    /// with `foreign`, by a key outside its JWKS.
    pub async fn sign(&self, claims: Value, alg: &str, foreign: bool) -> String {
        self.http
            .post(format!("{}/admin/sign", self.issuer()))
            .json(&json!({"claims": claims, "alg": alg, "foreign": foreign}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Replaces every signing key (new kids).
    pub async fn rotate(&self) {
        let status = self
            .http
            .post(format!("{}/admin/rotate", self.issuer()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// Requests the token endpoint and the JWKS served so far: (token, jwks).
    pub async fn stats(&self) -> (u64, u64) {
        let v: Value = self
            .http
            .get(format!("{}/admin/stats", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["token"].as_u64().unwrap(), v["jwks"].as_u64().unwrap())
    }

    /// The public JWKS.
    pub async fn jwks(&self) -> Value {
        self.get_json(format!("{}/jwks", self.issuer())).await
    }

    /// Every counter of `/admin/stats`: `token`, `jwks`, `grants` (successful grants by
    /// `grant_type`), `grant_errors` (failed ones by type), `refresh_failed`, `logins`,
    /// `login_failed`.
    pub async fn stats_json(&self) -> Value {
        self.get_json(format!("{}/admin/stats", self.issuer()))
            .await
    }

    /// Successful grants of `grant_type` so far (`authorization_code`, `refresh_token`,
    /// `client_credentials`...).
    pub async fn grants(&self, grant_type: &str) -> u64 {
        self.stats_json().await["grants"][grant_type]
            .as_u64()
            .unwrap_or(0)
    }

    /// Registers (or replaces) a client from oidc-provider client metadata (`client_id`,
    /// `client_secret`, `redirect_uris`, `grant_types`, `response_types`, `scope`,
    /// `token_endpoint_auth_method`...). Keys, issuer, sessions and grants stay. Panics if the
    /// provider refuses the metadata.
    pub async fn add_client(&self, metadata: Value) {
        let (status, body) = self.try_add_client(metadata).await;
        assert_eq!(status, 200, "the IdP refused the client: {body}");
    }

    /// [`Idp::add_client`] that returns the status and the answer instead of panicking.
    pub async fn try_add_client(&self, metadata: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/admin/clients", self.issuer()))
            .json(&metadata)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A confidential authorization code client: secret `<id>-secret` (client_secret_basic
    /// or client_secret_post), the code and refresh grants, these redirect URIs and scope.
    pub async fn add_code_client(&self, id: &str, redirect_uris: &[&str], scope: &str) {
        self.add_client(json!({
            "client_id": id,
            "client_secret": format!("{id}-secret"),
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": scope,
        }))
        .await;
    }

    /// Forgets every session, interaction, grant, code and token (keys and clients stay):
    /// the next refresh fails with `invalid_grant`, the next sign-in asks for the password.
    pub async fn forget(&self) {
        let status = self
            .http
            .post(format!("{}/admin/forget", self.issuer()))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// The OpenID Provider metadata.
    pub async fn discovery(&self) -> Value {
        self.get_json(self.discovery_url()).await
    }

    /// The authorization endpoint, as discovery names it.
    pub async fn authorization_endpoint(&self) -> String {
        self.discovery().await["authorization_endpoint"]
            .as_str()
            .expect("discovery names an authorization_endpoint")
            .to_string()
    }

    /// The authorization endpoint with these query parameters (`client_id`,
    /// `response_type`, `redirect_uri`, `scope`, `state`, `nonce`, `code_challenge`,
    /// `code_challenge_method`, `resource`...), for a browser to open.
    pub async fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&self.authorization_endpoint().await).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// A token endpoint request authenticated by client_secret_basic: the status and the
    /// answer (an error answer too).
    pub async fn token_request(
        &self,
        client_id: &str,
        client_secret: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let response = self
            .http
            .post(self.token_url())
            .basic_auth(client_id, Some(client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Redeems an authorization code (client `client_id`, secret `<client_id>-secret`).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> (u16, Value) {
        let secret = format!("{client_id}-secret");
        self.token_request(
            client_id,
            &secret,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ],
        )
        .await
    }

    /// Uses a refresh token (client `client_id`, secret `<client_id>-secret`).
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> (u16, Value) {
        let secret = format!("{client_id}-secret");
        self.token_request(
            client_id,
            &secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// The claims of a JWT (ID token or access token) this IdP signed, verified with its
    /// current JWKS, its issuer and `audience`; panics if it does not verify.
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
        let header = decode_header(token).expect("a JWS");
        let set: JwkSet = serde_json::from_value(self.jwks().await).unwrap();
        let kid = header.kid.clone().expect("the JWS names its kid");
        let jwk = set
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.issuer()]);
        decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .unwrap_or_else(|e| panic!("the token does not verify: {e}"))
            .claims
    }
}

/// A PKCE pair (RFC 7636, S256): (code_verifier, code_challenge).
pub fn pkce() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(bytes);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
