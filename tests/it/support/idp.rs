//! A real OpenID Connect provider for the auth tests: `node tests/idp/server.mjs` (panva's
//! oidc-provider) on 127.0.0.1 with an ephemeral port, killed when dropped. Install it once
//! with `(cd tests/idp && npm ci)` (the README's test command does).

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
            .stderr(Stdio::null())
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
        self.http
            .get(format!("{}/jwks", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
