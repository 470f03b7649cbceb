//! The browser side of per-user OAuth: `GET /oauth/connect` (the URL of a URL elicitation)
//! and `GET /oauth/callback` (the redirect URI of both the gateway's login client and every
//! `oauth2_user` target).
//!
//! The steps, each stateless (the state is sealed with the vault key, so any replica
//! serves any step):
//! 1. `/oauth/connect?flow=…`: the sealed link names the target and the user it was made
//!    for. The browser gets a random cookie for this flow (its hash goes into every later
//!    state, so a state only works in the browser that opened the link) and is sent to the
//!    inbound issuer to sign in (authorization code + PKCE + nonce).
//! 2. `/oauth/callback?state=l.…`: the ID token's issuer and subject must be the link's
//!    user; this is the MCP specification's defence against a link opened by someone else
//!    (phishing). Then the browser goes to the target's authorization server (code + PKCE).
//! 3. `/oauth/callback?state=u.…`: the code is redeemed and the tokens are sealed into the
//!    vault under the link's user.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::oauth2::push_pair;
use super::user_oauth::{
    CONNECT_PURPOSE, Flow, UserAuth, UserOAuth, code_challenge, now_unix, random_token,
};
use super::vault::UserId;
use crate::mcp::McpEndpoint;
use crate::mcp::transport::{HttpResponse, ResponseBody};

const LOGIN_PURPOSE: &[u8] = b"toolgate-flow-v1\0login";
const UPSTREAM_PURPOSE: &[u8] = b"toolgate-flow-v1\0upstream";

/// One step's state: the flow, its PKCE verifier, the login nonce and the browser binding.
#[derive(Serialize, Deserialize)]
struct Step {
    f: Flow,
    /// PKCE verifier.
    v: String,
    /// OpenID Connect nonce (login step).
    #[serde(default)]
    n: String,
    /// base64url SHA-256 of the flow cookie's value.
    b: String,
}

/// Serves `/oauth/connect` and `/oauth/callback`.
pub async fn serve(
    endpoint: &McpEndpoint,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> HttpResponse {
    let snapshot = endpoint.snapshot();
    let settings = snapshot.settings();
    let Some(auth) = settings.user_auth.as_deref() else {
        return page(
            StatusCode::NOT_FOUND,
            "Not configured",
            "This gateway does not act for users at any upstream (no target has credentials.oauth2_user).",
        );
    };
    if method != Method::GET {
        let mut response = page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "Open this page with GET, in a browser.",
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let base = &*settings.public_base;
    let cx = Cx {
        endpoint,
        auth,
        inbound: settings.inbound.as_deref(),
        redirect_uri: format!("{base}/oauth/callback"),
        secure: base.starts_with("https://"),
    };
    match path {
        "/oauth/connect" => cx.connect(param(&params, "flow").unwrap_or("")).await,
        _ => cx.callback(&params, headers).await,
    }
}

struct Cx<'a> {
    endpoint: &'a McpEndpoint,
    auth: &'a UserAuth,
    inbound: Option<&'a crate::auth::inbound::InboundAuth>,
    redirect_uri: String,
    secure: bool,
}

impl Cx<'_> {
    fn count(&self, target: &str, outcome: &str) {
        self.endpoint
            .metrics()
            .user_authorizations
            .with_label_values(&[target, outcome])
            .inc();
    }

    fn oauth(&self, target: &str) -> Option<&std::sync::Arc<UserOAuth>> {
        self.auth.targets.get(target)
    }

    fn seal(&self, purpose: &[u8], prefix: &str, step: &Step) -> String {
        let sealed = self
            .auth
            .vault
            .keys()
            .seal(purpose, &serde_json::to_vec(step).unwrap_or_default());
        format!("{prefix}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    fn open<T: for<'de> Deserialize<'de>>(&self, purpose: &[u8], text: &str) -> Option<T> {
        let sealed = URL_SAFE_NO_PAD.decode(text).ok()?;
        let plain = self.auth.vault.keys().open(purpose, &sealed)?;
        serde_json::from_slice(&plain).ok()
    }

    async fn connect(&self, flow: &str) -> HttpResponse {
        let Some(flow) = self.open::<Flow>(CONNECT_PURPOSE, flow) else {
            self.count("", "invalid_link");
            return page(
                StatusCode::BAD_REQUEST,
                "Link not valid",
                "This authorization link is not valid: it was altered, cut short or made by another gateway. Ask your agent to call the tool again for a new one.",
            );
        };
        if let Some(refusal) = self.expired(&flow) {
            return refusal;
        }
        if self.oauth(&flow.t).is_none() {
            return page(
                StatusCode::NOT_FOUND,
                "Not configured",
                "The target this link was made for no longer acts for users.",
            );
        }
        let login = &self.auth.login;
        let (authorize, _) = match login.endpoints(self.endpoint.http_client()).await {
            Ok(e) => e,
            Err(m) => {
                tracing::warn!(error = %m, "per-user OAuth: the sign-in provider cannot be used");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Sign-in unavailable",
                    "The gateway cannot reach its sign-in provider right now. Try again in a moment.",
                );
            }
        };
        let browser = random_token();
        let step = Step {
            v: random_token(),
            n: random_token(),
            b: browser_digest(&browser),
            f: flow,
        };
        let mut query = String::new();
        push_pair(&mut query, "response_type", "code");
        push_pair(&mut query, "client_id", login.client_id());
        push_pair(&mut query, "redirect_uri", &self.redirect_uri);
        push_pair(&mut query, "scope", "openid");
        push_pair(&mut query, "state", &self.seal(LOGIN_PURPOSE, "l.", &step));
        push_pair(&mut query, "nonce", &step.n);
        push_pair(&mut query, "code_challenge", &code_challenge(&step.v));
        push_pair(&mut query, "code_challenge_method", "S256");
        let location = format!(
            "{authorize}{}{}",
            if authorize.contains('?') { '&' } else { '?' },
            &query[1..]
        );
        self.count(&step.f.t, "started");
        let mut response = redirect(&location);
        self.set_cookie(&mut response, &step.f.e, &browser, FLOW_COOKIE_AGE);
        response
    }

    fn expired(&self, flow: &Flow) -> Option<HttpResponse> {
        (now_unix() > flow.x).then(|| {
            self.count(&flow.t, "expired");
            page(
                StatusCode::BAD_REQUEST,
                "Link expired",
                "This authorization link has expired. Ask your agent to call the tool again for a new one.",
            )
        })
    }

    fn set_cookie(&self, response: &mut HttpResponse, id: &str, value: &str, age: u64) {
        let cookie = format!(
            "{}={value}; Path=/oauth; Max-Age={age}; HttpOnly; SameSite=Lax{}",
            cookie_name(id),
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::try_from(cookie) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }

    async fn callback(&self, params: &[(String, String)], headers: &HeaderMap) -> HttpResponse {
        let param = |name: &str| param(params, name);
        let state = param("state").unwrap_or("");
        let (login, step) = if let Some(s) = state.strip_prefix("l.") {
            (true, self.open::<Step>(LOGIN_PURPOSE, s))
        } else if let Some(s) = state.strip_prefix("u.") {
            (false, self.open::<Step>(UPSTREAM_PURPOSE, s))
        } else {
            (false, None)
        };
        let Some(step) = step else {
            self.count("", "invalid_state");
            return page(
                StatusCode::BAD_REQUEST,
                "Not valid",
                "This authorization answer does not belong to a flow of this gateway (its state is missing or altered). Ask your agent to call the tool again.",
            );
        };
        if let Some(refusal) = self.expired(&step.f) {
            return refusal;
        }
        let cookie = flow_cookie(headers, &step.f.e);
        if cookie.is_none_or(|c| browser_digest(c) != step.b) {
            self.count(&step.f.t, "browser_mismatch");
            return page(
                StatusCode::BAD_REQUEST,
                "Different browser",
                "This authorization was started in another browser (or its cookie was lost). Open the link your agent gave you again, in this browser.",
            );
        }
        if let Some(error) = param("error") {
            self.count(&step.f.t, "declined");
            let mut response = page(
                StatusCode::OK,
                "Not authorized",
                &format!(
                    "The authorization was not given ({}). Nothing was stored; your agent's call will ask again.",
                    error
                ),
            );
            self.set_cookie(&mut response, &step.f.e, "", 0);
            return response;
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            return page(
                StatusCode::BAD_REQUEST,
                "Not valid",
                "The authorization answer carries no code.",
            );
        };
        let Some(oauth) = self.oauth(&step.f.t) else {
            return page(
                StatusCode::NOT_FOUND,
                "Not configured",
                "The target this link was made for no longer acts for users.",
            );
        };
        if login {
            self.signed_in(oauth, step, code, param("iss")).await
        } else {
            self.authorized(oauth, step, code).await
        }
    }

    /// Step 2: the user signed in at the inbound issuer; same user as the link's, then on
    /// to the upstream's authorization server.
    async fn signed_in(
        &self,
        oauth: &UserOAuth,
        step: Step,
        code: &str,
        iss: Option<&str>,
    ) -> HttpResponse {
        let target = &step.f.t;
        let unavailable = |what: &str| {
            page(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                &format!(
                    "The gateway could not complete your sign-in: {what}. Open the link again to retry."
                ),
            )
        };
        // RFC 9207: an `iss` that is not the sign-in provider's is a mix-up.
        if iss.is_some_and(|i| i != step.f.i) {
            self.count(target, "invalid_state");
            return page(
                StatusCode::BAD_REQUEST,
                "Not valid",
                "The sign-in answer came from an unexpected issuer.",
            );
        }
        let Some(inbound) = self.inbound else {
            return unavailable("inbound authentication is off");
        };
        let http = self.endpoint.http_client();
        let (_, endpoint) = match self.auth.login.endpoints(http).await {
            Ok(e) => e,
            Err(m) => {
                tracing::warn!(error = %m, "per-user OAuth: the sign-in provider cannot be used");
                return unavailable("the sign-in provider cannot be reached");
            }
        };
        let mut grant = String::from("grant_type=authorization_code");
        push_pair(&mut grant, "code", code);
        push_pair(&mut grant, "redirect_uri", &self.redirect_uri);
        push_pair(&mut grant, "code_verifier", &step.v);
        let answer = match endpoint
            .grant(http, &grant, super::user_oauth::TOKEN_TIMEOUT)
            .await
        {
            Ok(a) => a,
            Err(f) => {
                self.count(target, "failed");
                tracing::warn!(target_name = %target, error = %f.error, "per-user OAuth: sign-in code not redeemed");
                return unavailable("the sign-in provider refused the code");
            }
        };
        let Some(id_token) = answer.id_token.as_deref() else {
            self.count(target, "failed");
            return unavailable(
                "the sign-in provider issued no ID token (is `openid` allowed for the login client?)",
            );
        };
        let (claims, issuer) = match inbound
            .verify_id_token(id_token, self.auth.login.client_id())
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.count(target, "failed");
                tracing::warn!(target_name = %target, reason = e.reason(), "per-user OAuth: ID token refused");
                return unavailable("the ID token could not be verified");
            }
        };
        let claim = |n: &str| claims.get(n).and_then(|v| v.as_str());
        if claim("nonce") != Some(step.n.as_str()) {
            self.count(target, "invalid_state");
            return unavailable("the ID token does not answer this sign-in (nonce)");
        }
        if issuer != step.f.i || claim("sub") != Some(step.f.s.as_str()) {
            self.count(target, "user_mismatch");
            tracing::warn!(
                target_name = %target,
                "per-user OAuth: the link was opened by a different user than the one it was made for; nothing stored"
            );
            return page(
                StatusCode::FORBIDDEN,
                "Different user",
                "You signed in as a different user than the one whose agent asked for this authorization. Nothing was stored. Only the user who asked can complete it.",
            );
        }
        let next = Step {
            v: random_token(),
            n: String::new(),
            b: step.b,
            f: step.f,
        };
        let state = self.seal(UPSTREAM_PURPOSE, "u.", &next);
        redirect(&oauth.authorization_request(&self.redirect_uri, &state, &next.v))
    }

    /// Step 3: the upstream's authorization server answered; the tokens go to the vault.
    async fn authorized(&self, oauth: &UserOAuth, step: Step, code: &str) -> HttpResponse {
        let target = &step.f.t;
        let http = self.endpoint.http_client();
        let tokens = match oauth.redeem(http, code, &step.v, &self.redirect_uri).await {
            Ok(t) => t,
            Err(e) => {
                self.count(target, "failed");
                tracing::warn!(target_name = %target, error = %e, "per-user OAuth: authorization code not redeemed");
                return page(
                    StatusCode::BAD_GATEWAY,
                    "Authorization failed",
                    "The upstream's authorization server refused to complete the authorization. Open the link again to retry.",
                );
            }
        };
        let user = UserId {
            issuer: step.f.i.as_str().into(),
            subject: step.f.s.as_str().into(),
        };
        if let Err(e) = self.auth.vault.put(target, &user, &tokens).await {
            self.count(target, "failed");
            tracing::warn!(target_name = %target, error = %e, "per-user OAuth: tokens not stored");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not stored",
                "The authorization succeeded but the gateway's token vault is unavailable. Open the link again in a moment.",
            );
        }
        self.count(target, "connected");
        tracing::info!(target_name = %target, "per-user OAuth: user connected");
        let mut response = page(
            StatusCode::OK,
            "Connected",
            &format!(
                "The gateway can now use `{target}` on your behalf. Return to your agent: it can call the tool again."
            ),
        );
        self.set_cookie(&mut response, &step.f.e, "", 0);
        response
    }
}

fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const FLOW_COOKIE_AGE: u64 = super::user_oauth::FLOW_LIFETIME.as_secs();

fn cookie_name(id: &str) -> String {
    format!("toolgate_flow_{id}")
}

fn browser_digest(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(value.as_bytes()))
}

/// The value of this flow's cookie in the request's `Cookie` headers.
fn flow_cookie<'h>(headers: &'h HeaderMap, id: &str) -> Option<&'h str> {
    let name = cookie_name(id);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

fn redirect(location: &str) -> HttpResponse {
    let mut response = Response::new(ResponseBody::full(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// A small HTML page (the text escaped).
fn page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title></head><body><h1>{0}</h1><p>{1}</p></body></html>\n",
        escape(title),
        escape(text)
    );
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; toolgate_flow_x=v1; toolgate_flow_y=v2"),
        );
        assert_eq!(flow_cookie(&headers, "y"), Some("v2"));
        assert_eq!(flow_cookie(&headers, "z"), None);
    }

    #[test]
    fn pages_escape_their_text() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
