//! The one pooled HTTP client of the gateway: HTTP/1.1 and HTTP/2 (ALPN) over rustls with
//! the `ring` provider and the platform's roots, plus plain HTTP; and the reading of an
//! answer into an [`UpstreamAnswer`] or [`UpstreamError`], bounded in time and size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::{Map, Value};

use super::request::{RequestBody, build_request};
use super::{HttpOperation, HttpTarget};
use crate::auth::Caller;
use crate::auth::oauth2::TokenError;
use crate::auth::outbound::CredentialProvider;
use crate::auth::user_oauth::UserCall;
use crate::targets::{UpstreamAnswer, UpstreamError};

/// Largest part of a non-2xx answer's body kept in [`UpstreamError::Status`].
pub const ERROR_EXCERPT_BYTES: usize = 2048;

/// How long an idle pooled connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why the client could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the upstream HTTP client: {0}")]
pub struct ClientBuildError(String);

/// One pooled hyper client shared by every HTTP target: connections are kept alive and
/// reused per (scheme, host, port). Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, RequestBody>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client trusting the platform's root certificates. When none can be loaded (a
    /// minimal container without a CA bundle) it still starts, with a warning: plain-HTTP
    /// upstreams work and HTTPS ones fail with a certificate error naming the cause.
    pub fn new() -> Result<Self, ClientBuildError> {
        // The provider is passed explicitly: no reliance on a process-wide default that
        // another crate might install differently.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientBuildError(e.to_string()))
        };
        let tls = match builder()?.with_native_roots() {
            Ok(config) => config.with_no_client_auth(),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no trusted root certificates found; HTTPS upstreams will fail"
                );
                builder()?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        };
        Ok(Self::with_tls_config(tls))
    }

    /// A client with a given TLS configuration (e.g. extra roots); ALPN is set here.
    pub fn with_tls_config(tls: rustls::ClientConfig) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false); // the HTTPS wrapper hands it https URIs too
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self { inner }
    }

    /// Executes one call: builds the request, sends it and reads the answer, all within
    /// `target.timeout`. Redirects are not followed (a 3xx is an [`UpstreamError::Status`]):
    /// following them could take credentials to another host.
    pub async fn call(
        &self,
        target: &HttpTarget,
        op: &HttpOperation,
        args: &Map<String, Value>,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        self.call_as(target, op, args, None, None, &[]).await
    }

    /// [`call`](Self::call) on behalf of a verified caller: targets with `passthrough` or
    /// token exchange credentials need its token. Static credentials take the same path as
    /// `call`; OAuth2 ones get their token first (within the same time limit) and retry once
    /// with a fresh token when the upstream answers 401. `user` is the signed-in user's
    /// token for per-user OAuth targets. `extra` are the gateway's own headers (trace
    /// propagation), set last so that no argument can forge them.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_as(
        &self,
        target: &HttpTarget,
        op: &HttpOperation,
        args: &Map<String, Value>,
        caller: Option<&Caller>,
        user: Option<&UserCall<'_>>,
        extra: &[(http::HeaderName, http::HeaderValue)],
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let request = build_with(target, op, args, extra)?;
        let started = Instant::now();
        let authority = Authority::of(request.uri());
        let work = async {
            match &target.credentials {
                Some(credentials) if credentials.is_dynamic() => {
                    self.exchange_with_token(
                        credentials,
                        request,
                        target,
                        op,
                        args,
                        caller,
                        user,
                        extra,
                        &authority,
                    )
                    .await
                }
                _ => {
                    self.exchange(request, target.max_response_bytes, &authority)
                        .await
                }
            }
        };
        let result = tokio::time::timeout(target.timeout, work)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(target.timeout)));
        tracing::debug!(
            target = %target.name,
            method = %op.method,
            upstream = %authority,
            elapsed_ms = started.elapsed().as_millis() as u64,
            status = match &result {
                Ok(answer) => answer.status,
                Err(UpstreamError::Status { status, .. }) => *status,
                Err(_) => 0,
            },
            "upstream call"
        );
        result
    }

    /// Adds an OAuth2 token to `request` and sends it; on a 401, drops that token and
    /// retries once with a fresh one.
    #[allow(clippy::too_many_arguments)]
    async fn exchange_with_token(
        &self,
        credentials: &CredentialProvider,
        request: http::Request<RequestBody>,
        target: &HttpTarget,
        op: &HttpOperation,
        args: &Map<String, Value>,
        caller: Option<&Caller>,
        user: Option<&UserCall<'_>>,
        extra: &[(http::HeaderName, http::HeaderValue)],
        authority: &Authority,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let no_token = |e: TokenError| {
            UpstreamError::Credentials(format!("no access token for target `{}`: {e}", target.name))
        };
        let caller_token = || {
            caller.map(Caller::token).ok_or_else(|| {
                UpstreamError::Credentials(format!(
                    "target `{}` acts with the caller's token, but this call carries none (inbound authentication is off)",
                    target.name
                ))
            })
        };
        let max = target.max_response_bytes;
        let with = |mut request: http::Request<RequestBody>, value: &http::HeaderValue| {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, value.clone());
            request
        };
        match credentials {
            CredentialProvider::OAuth2(source) => {
                let token = source.token(self, target.timeout).await.map_err(no_token)?;
                match self
                    .exchange(with(request, &token.authorization), max, authority)
                    .await
                {
                    Err(UpstreamError::Status { status: 401, .. }) => {
                        source.invalidate(&token);
                        let token = source.token(self, target.timeout).await.map_err(no_token)?;
                        let retry = build_with(target, op, args, extra)?;
                        self.exchange(with(retry, &token.authorization), max, authority)
                            .await
                    }
                    other => other,
                }
            }
            CredentialProvider::TokenExchange(exchange) => {
                let subject = caller_token()?;
                let token = exchange
                    .token(self, subject, target.timeout)
                    .await
                    .map_err(no_token)?;
                match self
                    .exchange(with(request, &token.authorization), max, authority)
                    .await
                {
                    Err(UpstreamError::Status { status: 401, .. }) => {
                        exchange.invalidate(subject).await;
                        let token = exchange
                            .token(self, subject, target.timeout)
                            .await
                            .map_err(no_token)?;
                        let retry = build_with(target, op, args, extra)?;
                        self.exchange(with(retry, &token.authorization), max, authority)
                            .await
                    }
                    other => other,
                }
            }
            CredentialProvider::OAuth2User(_) => {
                let user = user.ok_or_else(|| {
                    UpstreamError::Credentials(format!(
                        "target `{}` acts for the signed-in user, but this call carries no user token",
                        target.name
                    ))
                })?;
                match self
                    .exchange(with(request, &user.access.authorization), max, authority)
                    .await
                {
                    Err(UpstreamError::Status { status: 401, .. }) => {
                        let access = user
                            .renewed(self)
                            .await
                            .map_err(UpstreamError::Credentials)?;
                        let retry = build_with(target, op, args, extra)?;
                        self.exchange(with(retry, &access.authorization), max, authority)
                            .await
                    }
                    other => other,
                }
            }
            CredentialProvider::Passthrough => {
                let mut value = http::HeaderValue::try_from(format!("Bearer {}", caller_token()?))
                    .map_err(|_| {
                        UpstreamError::Credentials(
                            "the caller's token is not a valid header value".into(),
                        )
                    })?;
                value.set_sensitive(true);
                self.exchange(with(request, &value), max, authority).await
            }
            CredentialProvider::Bearer { .. } | CredentialProvider::ApiKey { .. } => {
                self.exchange(request, max, authority).await
            }
        }
    }

    /// Sends a request the gateway makes on its own behalf (OIDC discovery, JWKS, OAuth2
    /// token requests) over the same pool, within `timeout` and reading at most
    /// `max_bytes`. A non-2xx answer is an [`UpstreamError::Status`] with a body excerpt.
    pub async fn send(
        &self,
        request: http::Request<RequestBody>,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let authority = Authority::of(request.uri());
        tokio::time::timeout(timeout, self.exchange(request, max_bytes, &authority))
            .await
            .unwrap_or(Err(UpstreamError::Timeout(timeout)))
    }

    /// Sends `request` and returns the answer's head and body as they come, unread (for
    /// streamed answers such as an MCP server's SSE stream). No timeout of its own.
    pub(crate) async fn request_streaming(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let authority = Authority::of(request.uri());
        self.inner
            .request(request)
            .await
            .map_err(|e| transport_error(&authority, &e))
    }

    async fn exchange(
        &self,
        request: http::Request<RequestBody>,
        max_bytes: usize,
        authority: &Authority,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|e| transport_error(authority, &e))?;
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();

        if !parts.status.is_success() {
            let (excerpt, _) = read_capped(body, ERROR_EXCERPT_BYTES, None)
                .await
                .map_err(|e| transport_error(authority, &e))?;
            return Err(UpstreamError::Status {
                status,
                body_excerpt: excerpt_text(&excerpt),
            });
        }

        let length_hint = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let (body, truncated) = read_capped(body, max_bytes, length_hint)
            .await
            .map_err(|e| transport_error(authority, &e))?;
        let media_type = media_type(parts.headers.get(header::CONTENT_TYPE));
        // Whether it parses is checked once, when the answer is mapped (a tool with an
        // output schema parses it into a value there anyway).
        let is_json = !truncated && is_json_type(&media_type);
        Ok(UpstreamAnswer {
            status,
            media_type,
            body,
            is_json,
            truncated,
            cache: crate::targets::CacheDirectives::parse(
                parts.headers.get_all(header::CACHE_CONTROL).iter(),
            ),
        })
    }
}

/// `host:port` of the upstream, for messages: never the path or query (which may carry an
/// API key) and never userinfo.
/// Holds a cheap reference-counted copy of the URI: the text is only formatted when an
/// error or the debug log needs it, not on every call.
struct Authority(http::Uri);

impl Authority {
    fn of(uri: &http::Uri) -> Self {
        Self(uri.clone())
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self.0.host().unwrap_or("?");
        let port = self.0.port_u16().unwrap_or(match self.0.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        write!(f, "{host}:{port}")
    }
}

/// Builds the request and adds the gateway's own headers.
fn build_with(
    target: &HttpTarget,
    op: &HttpOperation,
    args: &Map<String, Value>,
    extra: &[(http::HeaderName, http::HeaderValue)],
) -> Result<http::Request<RequestBody>, UpstreamError> {
    let mut request = build_request(target, op, args)?;
    for (name, value) in extra {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(request)
}

/// Names the upstream and every cause in the error's chain (hyper's top-level messages
/// alone, such as "client error (Connect)", do not say what happened).
fn transport_error(
    authority: &Authority,
    error: &(dyn std::error::Error + 'static),
) -> UpstreamError {
    let mut message = format!("{authority}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    UpstreamError::Transport(message)
}

/// Reads at most `cap` bytes of `body`; the flag says whether more was there. Stops reading
/// at the cap (the connection is then dropped rather than drained).
async fn read_capped(
    mut body: Incoming,
    cap: usize,
    length_hint: Option<usize>,
) -> Result<(Bytes, bool), hyper::Error> {
    // A single-frame body is returned without a copy.
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers
        };
        if len + data.len() > cap {
            data.truncate(cap - len);
            let body = if first.is_none() && buf.is_none() {
                data
            } else {
                let buf = take_buf(&mut first, &mut buf, length_hint, cap);
                buf.extend_from_slice(&data);
                buf.split().freeze()
            };
            return Ok((body, true));
        }
        len += data.len();
        if first.is_none() && buf.is_none() {
            first = Some(data);
        } else {
            take_buf(&mut first, &mut buf, length_hint, cap).extend_from_slice(&data);
        }
    }
    let body = match (first, buf) {
        (_, Some(buf)) => buf.freeze(),
        (Some(first), None) => first,
        (None, None) => Bytes::new(),
    };
    Ok((body, false))
}

/// The accumulation buffer, created (and seeded with the first frame) on the second frame.
fn take_buf<'a>(
    first: &mut Option<Bytes>,
    buf: &'a mut Option<BytesMut>,
    length_hint: Option<usize>,
    cap: usize,
) -> &'a mut BytesMut {
    buf.get_or_insert_with(|| {
        let first = first.take().unwrap_or_default();
        let capacity = length_hint.unwrap_or(first.len() * 2).min(cap);
        let mut buf = BytesMut::with_capacity(capacity.max(first.len()));
        buf.extend_from_slice(&first);
        buf
    })
}

/// The excerpt as text: cut on a character boundary, invalid UTF-8 replaced.
pub(crate) fn excerpt_text(bytes: &[u8]) -> String {
    let bytes = match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        // Only an incomplete character at the very end (cut by the cap): drop it.
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        Err(_) => bytes,
    };
    String::from_utf8_lossy(bytes).trim().to_string()
}

/// The media type of a `Content-Type` value: lower-cased, without parameters.
/// A missing or unreadable header means `application/octet-stream` (RFC 9110 8.3).
fn media_type(value: Option<&http::HeaderValue>) -> Box<str> {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return "application/octet-stream".into();
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.is_empty() {
        return "application/octet-stream".into();
    }
    essence.to_ascii_lowercase().into()
}

fn is_json_type(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}

/// Full syntax check without building a value.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_is_lowercased_without_parameters() {
        let v = http::HeaderValue::from_static("Application/Problem+JSON; charset=utf-8");
        assert_eq!(&*media_type(Some(&v)), "application/problem+json");
        assert_eq!(&*media_type(None), "application/octet-stream");
        assert!(is_json_type("application/problem+json"));
        assert!(is_json_type("application/json"));
        assert!(!is_json_type("application/jsonx"));
        assert!(!is_json_type("text/json-ish"));
    }

    #[test]
    fn json_check_is_strict() {
        assert!(crate::targets::valid_json(
            br#" {"a": [1, 2, {"b": null}]} "#
        ));
        assert!(!crate::targets::valid_json(br#"{"a": 1} trailing"#));
        assert!(!crate::targets::valid_json(b""));
        assert!(!crate::targets::valid_json(b"{\"a\":"));
    }

    #[test]
    fn excerpt_is_cut_on_a_char_boundary() {
        let text = "é".repeat(3);
        let cut = &text.as_bytes()[..5]; // the third "é" is cut in half
        assert_eq!(excerpt_text(cut), "éé");
        assert_eq!(excerpt_text(b"  plain \n"), "plain");
        assert_eq!(excerpt_text(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn authority_never_shows_path_or_query() {
        let uri: http::Uri = "https://user:pw@api.example.com/v1/x?api_key=secret"
            .parse()
            .unwrap();
        assert_eq!(Authority::of(&uri).to_string(), "api.example.com:443");
        let uri: http::Uri = "http://127.0.0.1:8081/x".parse().unwrap();
        assert_eq!(Authority::of(&uri).to_string(), "127.0.0.1:8081");
    }
}
