//! Request and response interceptors (`interceptors:`): hooks that see each matching
//! JSON-RPC message, and may rewrite it, answer it or rewrite the answer, with Amazon Bedrock
//! AgentCore Gateway's interceptor contract (`interceptorInputVersion` "1.0"), called as an
//! HTTP webhook or a Lambda function. This module owns their configuration, the payloads and the reading of an
//! answer; the MCP endpoint (`mcp::intercept`) decides what an answer does.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_saphyr::Spanned;

use crate::config::ConfigError;
use crate::targets::UpstreamError;
use crate::targets::http::HttpClient;

/// Default time an interceptor has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest interceptor answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The JSON-RPC methods an interceptor may be limited to (besides `*`).
const METHODS: &[&str] = &["tools/call", "tools/list"];

/// One entry of `interceptors:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterceptorConfig {
    /// Unique name (in metrics, logs and error messages).
    pub name: String,
    /// When it runs: `request`, `response`, or both.
    pub on: Vec<Phase>,
    /// A Lambda function (the contract's own transport), invoked synchronously.
    #[serde(default)]
    pub lambda: Option<Spanned<LambdaHook>>,
    /// An HTTP endpoint that takes the payload as a POST.
    #[serde(default)]
    pub webhook: Option<Spanned<WebhookConfig>>,
    /// Send the caller's HTTP headers (including `Authorization`) as `gatewayRequest.headers`.
    #[serde(default)]
    pub pass_request_headers: bool,
    /// Time to answer (default `2s`).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// What a failure does: `closed` (default) refuses the request, `open` goes on untouched.
    #[serde(default)]
    pub fail: FailMode,
    /// The JSON-RPC methods it sees (default `[tools/call]`; `tools/list`, or `*` for all).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

/// `interceptors[].on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before dispatch.
    Request,
    /// After the answer is produced.
    Response,
}

impl Phase {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Response => "response",
        }
    }
}

/// `interceptors[].fail`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// A failed interceptor refuses the request.
    #[default]
    Closed,
    /// A failed interceptor is skipped (and logged).
    Open,
}

/// `interceptors[].lambda`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaHook {
    /// Function name or ARN.
    pub function: String,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// Another Invoke API.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// `interceptors[].webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the payload is POSTed to.
    pub url: String,
    /// Headers sent with every call (secrets via `${VAR}`).
    #[serde(default)]
    pub headers: indexmap::IndexMap<String, String>,
}

/// Checks `interceptors:` (names, phases, exactly one transport, URL, headers, timeout,
/// methods), with the position of the entry at fault.
pub fn validate(list: &[Spanned<InterceptorConfig>], path: &Path) -> Result<(), ConfigError> {
    let mut names: Vec<&str> = Vec::new();
    for entry in list {
        let at = &entry.referenced;
        let c = &entry.value;
        let err = |m: String| ConfigError::at(path, at, m);
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            return Err(err(format!(
                "interceptor name `{}` must be non-empty and use only A-Z a-z 0-9 _ -",
                c.name
            )));
        }
        if names.contains(&c.name.as_str()) {
            return Err(err(format!(
                "interceptor `{}` is defined twice: names must be unique",
                c.name
            )));
        }
        names.push(&c.name);
        let name = &c.name;
        if c.on.is_empty() {
            return Err(err(format!(
                "interceptor `{name}`: `on` must list `request`, `response` or both"
            )));
        }
        if c.on.len() == 2 && c.on[0] == c.on[1] {
            return Err(err(format!(
                "interceptor `{name}`: `on` lists `{}` twice",
                c.on[0].label()
            )));
        }
        match (&c.lambda, &c.webhook) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(err(format!(
                    "interceptor `{name}`: give exactly one of `lambda` or `webhook`"
                )));
            }
            (Some(lambda), None) => {
                if lambda.value.function.is_empty() {
                    return Err(ConfigError::at(
                        path,
                        &lambda.referenced,
                        format!("interceptor `{name}`: lambda.function is empty"),
                    ));
                }
                if let Some(e) = &lambda.value.endpoint_url
                    && !(e.starts_with("http://") || e.starts_with("https://"))
                {
                    return Err(ConfigError::at(
                        path,
                        &lambda.referenced,
                        format!(
                            "interceptor `{name}`: lambda.endpoint_url must be an http:// or https:// URL"
                        ),
                    ));
                }
            }
            (None, Some(webhook)) => {
                let w_at = &webhook.referenced;
                let w = &webhook.value;
                let uri: http::Uri = w.url.parse().map_err(|e| {
                    ConfigError::at(
                        path,
                        w_at,
                        format!("interceptor `{name}`: webhook.url is not a URL: {e}"),
                    )
                })?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(ConfigError::at(
                        path,
                        w_at,
                        format!(
                            "interceptor `{name}`: webhook.url must be an absolute http:// or https:// URL"
                        ),
                    ));
                }
                for (key, value) in &w.headers {
                    if HeaderName::from_bytes(key.as_bytes()).is_err()
                        || HeaderValue::from_str(value).is_err()
                    {
                        return Err(ConfigError::at(
                            path,
                            w_at,
                            format!(
                                "interceptor `{name}`: webhook header `{key}` is not a valid HTTP header name and value"
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(t) = c.timeout
            && (t.is_zero() || t > Duration::from_secs(300))
        {
            return Err(err(format!(
                "interceptor `{name}`: timeout must be more than 0 and at most 300s"
            )));
        }
        if let Some(methods) = &c.methods {
            if methods.is_empty() {
                return Err(err(format!(
                    "interceptor `{name}`: `methods` is empty; leave it out for [tools/call], or use [\"*\"] for every method"
                )));
            }
            for m in methods {
                if m != "*" && !METHODS.contains(&m.as_str()) {
                    return Err(err(format!(
                        "interceptor `{name}`: unknown method `{m}` in `methods`: use tools/call, tools/list or \"*\""
                    )));
                }
            }
        }
    }
    Ok(())
}

/// One interceptor, ready to call (built from a validated entry).
#[derive(Debug)]
pub struct Interceptor {
    /// Its name.
    pub name: Box<str>,
    /// Runs before dispatch.
    pub on_request: bool,
    /// Runs on the answer.
    pub on_response: bool,
    /// Sends the caller's headers.
    pub pass_request_headers: bool,
    /// Time to answer.
    pub timeout: Duration,
    /// Skip it when it fails.
    pub fail_open: bool,
    /// `None`: every method.
    methods: Option<Box<[Box<str>]>>,
    transport: Transport,
}

/// How an interceptor is called.
enum Transport {
    /// POST to a URL with its own headers.
    Webhook {
        url: http::Uri,
        headers: Box<[(HeaderName, HeaderValue)]>,
    },
    /// A synchronous Invoke; `None`: no region could be found (every call fails).
    Lambda {
        client: Option<aws_sdk_lambda::Client>,
        function: String,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .finish_non_exhaustive(),
            Transport::Lambda { function, .. } => f
                .debug_struct("Lambda")
                .field("function", function)
                .finish_non_exhaustive(),
        }
    }
}

/// The interceptors of a configuration, in order.
#[derive(Debug)]
pub struct Interceptors {
    /// In config order.
    pub hooks: Box<[Interceptor]>,
}

impl Interceptors {
    /// The interceptors of a validated `interceptors:` list; `None` when it is empty (so
    /// that the endpoint checks one `Option` and nothing else).
    pub fn build(list: &[Spanned<InterceptorConfig>]) -> Option<Arc<Interceptors>> {
        if list.is_empty() {
            return None;
        }
        let mut clients = lambda_clients(list).into_iter();
        let hooks = list
            .iter()
            .filter_map(|entry| {
                let c = &entry.value;
                let transport = match (&c.webhook, &c.lambda) {
                    (Some(webhook), _) => Transport::Webhook {
                        url: webhook.value.url.parse().ok()?,
                        headers: webhook
                            .value
                            .headers
                            .iter()
                            .filter_map(|(k, v)| {
                                let mut value = HeaderValue::from_str(v).ok()?;
                                value.set_sensitive(true);
                                Some((HeaderName::from_bytes(k.as_bytes()).ok()?, value))
                            })
                            .collect(),
                    },
                    (None, Some(lambda)) => {
                        let client = clients.next().flatten();
                        if client.is_none() {
                            tracing::warn!(interceptor = %c.name, "no AWS region for the Lambda interceptor: set lambda.region, use a function ARN, or set AWS_REGION; every call will fail");
                        }
                        Transport::Lambda {
                            client,
                            function: lambda.value.function.clone(),
                        }
                    }
                    (None, None) => return None,
                };
                Some(Interceptor {
                    name: c.name.as_str().into(),
                    on_request: c.on.contains(&Phase::Request),
                    on_response: c.on.contains(&Phase::Response),
                    pass_request_headers: c.pass_request_headers,
                    timeout: c.timeout.unwrap_or(DEFAULT_TIMEOUT),
                    fail_open: c.fail == FailMode::Open,
                    methods: match &c.methods {
                        None => Some(vec!["tools/call".into()].into()),
                        Some(m) if m.iter().any(|m| m == "*") => None,
                        Some(m) => Some(m.iter().map(|m| m.as_str().into()).collect()),
                    },
                    transport,
                })
            })
            .collect();
        Some(Arc::new(Interceptors { hooks }))
    }
}

/// One Invoke API client per Lambda interceptor of `list`, in order (`None`: no region).
/// The SDK's loader is async and loading is not: it runs on a runtime and thread of its own.
fn lambda_clients(list: &[Spanned<InterceptorConfig>]) -> Vec<Option<aws_sdk_lambda::Client>> {
    let keys: Vec<(Option<String>, Option<String>)> = list
        .iter()
        .filter(|e| e.value.webhook.is_none())
        .filter_map(|e| e.value.lambda.as_ref())
        .map(|l| {
            let region = l.value.region.clone().or_else(|| {
                let parts: Vec<&str> = l.value.function.split(':').collect();
                (parts.len() >= 6 && parts[0] == "arn").then(|| parts[3].to_string())
            });
            (region, l.value.endpoint_url.clone())
        })
        .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    let n = keys.len();
    let built = std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(crate::targets::lambda::build_clients(keys)))
        })
        .join()
    });
    match built {
        Ok(Ok(clients)) => clients.into_iter().map(|c| c.map(|(c, _)| c)).collect(),
        _ => vec![None; n],
    }
}

/// Why an interceptor call failed (the message names no secret: no URL, no body).
#[derive(Debug)]
pub enum HookError {
    /// No answer within the timeout.
    Timeout(Duration),
    /// The webhook answered a non-2xx status.
    Status(u16),
    /// It could not be reached.
    Unreachable,
    /// The answer is not a valid interceptor output.
    Invalid(String),
    /// The Lambda function failed (`X-Amz-Function-Error`).
    FunctionError,
    /// A Lambda interceptor without an AWS region.
    NoRegion,
}

impl HookError {
    /// The metric outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            HookError::Timeout(_) => "timeout",
            _ => "error",
        }
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookError::Timeout(t) => write!(f, "timeout after {}", humanize(*t)),
            HookError::Status(s) => write!(f, "it answered HTTP {s}"),
            HookError::Unreachable => f.write_str("it could not be reached"),
            HookError::Invalid(why) => write!(f, "invalid answer: {why}"),
            HookError::FunctionError => f.write_str("the function returned an error"),
            HookError::NoRegion => f.write_str("no AWS region is configured for it"),
        }
    }
}

fn humanize(t: Duration) -> String {
    if t.subsec_millis() == 0 {
        format!("{}s", t.as_secs())
    } else {
        format!("{}ms", t.as_millis())
    }
}

/// `gatewayRequest`: the request as the contract describes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRequest<'a> {
    path: &'static str,
    http_method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<indexmap::IndexMap<&'a str, Cow<'a, str>>>,
    body: &'a RawValue,
}

/// `gatewayResponse`: the answer as the contract describes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResponse<'a> {
    /// HTTP status.
    pub status_code: u16,
    /// Its headers (the media type).
    pub headers: indexmap::IndexMap<&'static str, &'static str>,
    /// The JSON-RPC response.
    pub body: &'a RawValue,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Input<'a> {
    interceptor_input_version: &'static str,
    mcp: InputMcp<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InputMcp<'a> {
    gateway_request: GatewayRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_response: Option<GatewayResponse<'a>>,
}

/// An interceptor's answer (`interceptorOutputVersion` "1.0").
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    interceptor_output_version: Option<String>,
    #[serde(default)]
    mcp: Option<OutputMcp>,
}

/// `mcp` of an answer.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct OutputMcp {
    /// Replaces the request (request phase).
    #[serde(default)]
    pub transformed_gateway_request: Option<TransformedRequest>,
    /// Answers directly (request phase) or replaces the answer (response phase).
    #[serde(default)]
    pub transformed_gateway_response: Option<TransformedResponse>,
}

/// `transformedGatewayRequest`.
#[derive(Deserialize, Debug)]
pub struct TransformedRequest {
    /// Headers to add or replace.
    #[serde(default)]
    pub headers: Option<indexmap::IndexMap<String, String>>,
    /// The JSON-RPC message that replaces the caller's.
    #[serde(default)]
    pub body: Option<Box<RawValue>>,
}

/// `transformedGatewayResponse`.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct TransformedResponse {
    /// HTTP status (default 200).
    #[serde(default)]
    pub status_code: Option<u16>,
    /// The JSON-RPC response sent to the caller.
    pub body: Box<RawValue>,
}

impl Interceptor {
    /// Whether it sees `method`.
    pub fn sees(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| &**m == method))
    }

    /// The `gatewayRequest` of `body` (a JSON-RPC message) and `headers`, which are
    /// included only with `pass_request_headers`.
    pub fn gateway_request<'a>(
        &self,
        body: &'a RawValue,
        headers: &'a HeaderMap,
    ) -> GatewayRequest<'a> {
        let headers = self.pass_request_headers.then(|| {
            let mut map: indexmap::IndexMap<&str, Cow<'_, str>> = indexmap::IndexMap::new();
            for (name, value) in headers {
                let value = String::from_utf8_lossy(value.as_bytes());
                match map.get_mut(name.as_str()) {
                    Some(existing) => {
                        let joined = format!("{existing}, {value}");
                        *existing = Cow::Owned(joined);
                    }
                    None => {
                        map.insert(name.as_str(), value);
                    }
                }
            }
            map
        });
        GatewayRequest {
            path: "/mcp",
            http_method: "POST",
            headers,
            body,
        }
    }

    /// Calls it with `gatewayRequest` (and `gatewayResponse` in the response phase) and
    /// reads its answer, within its timeout.
    pub async fn call(
        &self,
        http: &HttpClient,
        request: GatewayRequest<'_>,
        response: Option<GatewayResponse<'_>>,
    ) -> Result<OutputMcp, HookError> {
        let input = Input {
            interceptor_input_version: "1.0",
            mcp: InputMcp {
                gateway_request: request,
                gateway_response: response,
            },
        };
        let payload = serde_json::to_vec(&input).expect("interceptor input serializes");
        let answer = match &self.transport {
            Transport::Webhook { url, headers } => self.post(http, url, headers, payload).await?,
            Transport::Lambda { client, function } => {
                let client = client.as_ref().ok_or(HookError::NoRegion)?;
                self.invoke(client, function, payload).await?
            }
        };
        let output: Output = serde_json::from_slice(&answer)
            .map_err(|e| HookError::Invalid(format!("not an interceptor output: {e}")))?;
        if output.interceptor_output_version.as_deref() != Some("1.0") {
            return Err(HookError::Invalid(
                "`interceptorOutputVersion` must be \"1.0\"".into(),
            ));
        }
        let mcp = output.mcp.unwrap_or_default();
        if let Some(r) = &mcp.transformed_gateway_response
            && let Some(s) = r.status_code
            && !(200..=599).contains(&s)
        {
            return Err(HookError::Invalid(format!(
                "`transformedGatewayResponse.statusCode` {s} is not an HTTP status"
            )));
        }
        if let Some(r) = &mcp.transformed_gateway_request
            && let Some(h) = &r.headers
            && h.iter().any(|(k, v)| {
                HeaderName::from_bytes(k.as_bytes()).is_err() || HeaderValue::from_str(v).is_err()
            })
        {
            return Err(HookError::Invalid(
                "`transformedGatewayRequest.headers` holds an invalid header".into(),
            ));
        }
        Ok(mcp)
    }

    /// POSTs `payload` to the webhook; returns the answer body.
    async fn post(
        &self,
        http: &HttpClient,
        url: &http::Uri,
        headers: &[(HeaderName, HeaderValue)],
        payload: Vec<u8>,
    ) -> Result<Bytes, HookError> {
        let mut builder = http::Request::post(url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(crate::targets::http::RequestBody::new(Bytes::from(payload)))
            .map_err(|_| HookError::Unreachable)?;
        let answer = match http.send(request, MAX_ANSWER, self.timeout).await {
            Ok(answer) => answer,
            Err(UpstreamError::Timeout(t)) => return Err(HookError::Timeout(t)),
            Err(UpstreamError::Status { status, .. }) => return Err(HookError::Status(status)),
            Err(e) => {
                tracing::warn!(interceptor = %self.name, error = %e, "interceptor unreachable");
                return Err(HookError::Unreachable);
            }
        };
        if answer.truncated {
            return Err(HookError::Invalid("the answer is too large".into()));
        }
        Ok(answer.body)
    }

    /// Invokes the function synchronously with `payload`; returns its answer payload.
    async fn invoke(
        &self,
        client: &aws_sdk_lambda::Client,
        function: &str,
        payload: Vec<u8>,
    ) -> Result<Bytes, HookError> {
        let request = client
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::RequestResponse)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload));
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Err(HookError::Timeout(self.timeout)),
            Ok(Err(e)) => {
                tracing::warn!(interceptor = %self.name,
                    error = %aws_sdk_lambda::error::DisplayErrorContext(&e), "Lambda interceptor failed");
                Err(HookError::Unreachable)
            }
            Ok(Ok(output)) => {
                if output.function_error.is_some() {
                    return Err(HookError::FunctionError);
                }
                Ok(output
                    .payload
                    .map(|b| Bytes::from(b.into_inner()))
                    .unwrap_or_default())
            }
        }
    }
}
