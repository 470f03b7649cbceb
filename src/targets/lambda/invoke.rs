//! One invocation: the AgentCore client context, the `RequestResponse` call with retries
//! (jittered exponential backoff within the timeout), and the payload as an
//! [`UpstreamAnswer`] for the shared answer mapping.

use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::errors::{self, Attempt};
use super::{LambdaError, LambdaTarget, MAX_CLIENT_CONTEXT_BYTES, MAX_PAYLOAD_BYTES};
use crate::targets::{CacheDirectives, UpstreamAnswer};

/// First retry waits up to this long; each later one up to twice the previous cap.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Most attempts of one call (the timeout usually ends retries first).
const MAX_ATTEMPTS: u32 = 8;
/// Longest message or session id passed on as is in the client context.
const MAX_ID_CHARS: usize = 256;

/// The ids of one MCP call, as the function sees them.
#[derive(Debug, Clone)]
pub struct CallIds {
    /// The JSON-RPC id (`bedrockAgentCoreMcpMessageId`), as text.
    pub message_id: String,
    /// `Mcp-Session-Id` when the client sent one, else a fresh UUID.
    pub session_id: String,
    /// A fresh UUID for this gateway request (`bedrockAgentCoreAwsRequestId`).
    pub request_id: String,
    /// The W3C `traceparent` of the gateway's span for this invocation, when tracing is on
    /// (`custom.traceparent`, so that the function can continue the trace).
    pub traceparent: Option<String>,
}

impl CallIds {
    /// The ids of a call with JSON-RPC id `raw_id` (raw JSON) and an optional session.
    pub fn new(raw_id: &str, session: Option<&str>) -> CallIds {
        let message_id = match serde_json::from_str::<String>(raw_id) {
            Ok(s) => s,
            Err(_) => raw_id.to_string(),
        };
        let session_id = match session {
            Some(s) if !s.is_empty() && s.len() <= MAX_ID_CHARS => s.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        CallIds {
            message_id: truncate(&message_id, MAX_ID_CHARS).to_string(),
            session_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            traceparent: None,
        }
    }

    /// Ids of the largest size passed on as is (for the load-time size check).
    pub(super) fn sample() -> CallIds {
        let long = "x".repeat(MAX_ID_CHARS);
        CallIds {
            message_id: long.clone(),
            session_id: long,
            request_id: uuid::Uuid::nil().to_string(),
            traceparent: Some(format!("00-{}-{}-01", "0".repeat(32), "0".repeat(16))),
        }
    }
}

fn truncate(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The base64 `ClientContext` AgentCore Gateway sends: `{"custom": {bedrockAgentCore*}}`.
pub(super) fn client_context(
    target: &LambdaTarget,
    tool: &str,
    ids: &CallIds,
) -> Result<String, LambdaError> {
    let encoded = STANDARD.encode(context_json(&target.gateway, &target.name, tool, ids));
    if encoded.len() > MAX_CLIENT_CONTEXT_BYTES {
        return Err(LambdaError::ContextTooLarge {
            bytes: encoded.len(),
        });
    }
    Ok(encoded)
}

/// The client context document before encoding.
fn context_json(gateway: &str, target: &str, tool: &str, ids: &CallIds) -> String {
    let mut custom = serde_json::json!({
        "bedrockAgentCoreGatewayId": gateway,
        "bedrockAgentCoreTargetId": target,
        "bedrockAgentCoreMessageVersion": "1.0",
        "bedrockAgentCoreToolName": format!("{target}___{tool}"),
        "bedrockAgentCoreMcpMessageId": ids.message_id,
        "bedrockAgentCoreAwsRequestId": ids.request_id,
        "bedrockAgentCoreSessionId": ids.session_id,
    });
    if let Some(traceparent) = &ids.traceparent {
        custom["traceparent"] = serde_json::Value::String(traceparent.clone());
    }
    serde_json::json!({ "custom": custom }).to_string()
}

impl LambdaTarget {
    /// Invokes the function for tool `tool` (its name in the definitions) with `arguments`
    /// as the event. `wraps` says whether the tool's output is wrapped, so that a string
    /// payload stays structured for it.
    pub async fn invoke(
        &self,
        tool: &str,
        ids: &CallIds,
        arguments: &Map<String, Value>,
        wraps: bool,
    ) -> Result<UpstreamAnswer, LambdaError> {
        let payload =
            serde_json::to_vec(arguments).map_err(|e| LambdaError::Payload(e.to_string()))?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(LambdaError::PayloadTooLarge {
                bytes: payload.len(),
            });
        }
        let context = client_context(self, tool, ids)?;
        let deadline = Instant::now() + self.timeout;
        let mut attempts = 0u32;
        let mut last: Option<LambdaError> = None;
        loop {
            attempts += 1;
            let mut request = self
                .client
                .invoke()
                .function_name(&self.function.function)
                .invocation_type(InvocationType::RequestResponse)
                .client_context(&context)
                .payload(Blob::new(payload.clone()));
            if let Some(q) = &self.function.qualifier {
                request = request.qualifier(q);
            }
            let sent = tokio::time::timeout_at(deadline, request.send()).await;
            let (error, retry_after) = match sent {
                Err(_) => {
                    return Err(LambdaError::Timeout {
                        timeout: self.timeout,
                        attempts,
                        last: last.map(Box::new),
                    });
                }
                Ok(Ok(output)) => {
                    let body = output
                        .payload
                        .map(|b| Bytes::from(b.into_inner()))
                        .unwrap_or_default();
                    if let Some(kind) = output.function_error {
                        return Err(errors::function_error(&kind, &body));
                    }
                    return Ok(answer(output.status_code, body, wraps));
                }
                Ok(Err(e)) => match self.classify(e) {
                    Attempt::Fatal(error) => return Err(error),
                    Attempt::Retry { error, after } => (error, after),
                },
            };
            tracing::debug!(target_name = %self.name, attempt = attempts, %error, "Lambda invocation will be retried");
            let wait = backoff(attempts).max(retry_after.unwrap_or_default());
            if attempts >= MAX_ATTEMPTS || Instant::now() + wait >= deadline {
                return Err(LambdaError::GaveUp {
                    attempts,
                    last: Box::new(error),
                });
            }
            last = Some(error);
            tokio::time::sleep(wait).await;
        }
    }

    fn classify(&self, error: SdkError<InvokeError, HttpResponse>) -> Attempt {
        errors::classify(self, error)
    }
}

/// Full-jitter exponential backoff: a random wait up to `BASE * 2^(attempt-1)`, capped.
fn backoff(attempt: u32) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_CAP);
    cap.mul_f64(fastrand::f64())
}

/// A successful payload as an answer: JSON (a string stays text unless the tool wraps).
fn answer(status: i32, body: Bytes, wraps: bool) -> UpstreamAnswer {
    let status = u16::try_from(status).unwrap_or(200);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let (media_type, body, is_json) = match parsed {
        Some(Value::String(s)) if !wraps => ("text/plain", Bytes::from(s), false),
        Some(_) => ("application/json", body, true),
        None => ("text/plain", body, false),
    };
    UpstreamAnswer {
        status,
        media_type: media_type.into(),
        body,
        is_json,
        truncated: false,
        cache: CacheDirectives::default(),
    }
}

/// Builds one client per key (region, endpoint); `None` where no region can be found.
pub(crate) async fn build_clients(
    keys: Vec<(Option<String>, Option<String>)>,
) -> Vec<Option<(aws_sdk_lambda::Client, String)>> {
    use aws_config::{BehaviorVersion, Region};
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut shared: HashMap<Option<String>, aws_config::SdkConfig> = HashMap::new();
    let mut out = Vec::with_capacity(keys.len());
    for (region, endpoint) in keys {
        if !shared.contains_key(&region) {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .http_client(http.clone())
                .retry_config(aws_config::retry::RetryConfig::disabled());
            if let Some(r) = &region {
                loader = loader.region(Region::new(r.clone()));
            }
            shared.insert(region.clone(), loader.load().await);
        }
        let sdk = &shared[&region];
        let Some(resolved) = sdk.region().map(|r| r.to_string()) else {
            out.push(None);
            continue;
        };
        let mut builder = aws_sdk_lambda::config::Builder::from(sdk);
        if let Some(e) = endpoint {
            builder = builder.endpoint_url(e);
        }
        out.push(Some((
            aws_sdk_lambda::Client::from_conf(builder.build()),
            resolved,
        )));
    }
    out
}

use std::collections::HashMap;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let cap = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(BACKOFF_CAP);
            assert!(backoff(attempt) <= cap);
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }

    #[test]
    fn ids_are_text_and_bounded() {
        let ids = CallIds::new("\"abc\"", None);
        assert_eq!(ids.message_id, "abc");
        assert_eq!(ids.session_id.len(), 36);
        let ids = CallIds::new("42", Some("s-1"));
        assert_eq!(
            (ids.message_id.as_str(), ids.session_id.as_str()),
            ("42", "s-1")
        );
        let long = format!("\"{}\"", "é".repeat(1000));
        assert_eq!(
            CallIds::new(&long, None).message_id.chars().count(),
            MAX_ID_CHARS
        );
    }

    #[test]
    fn the_trace_context_travels_in_the_client_context() {
        let mut ids = CallIds::new("7", Some("s-1"));
        let plain: serde_json::Value =
            serde_json::from_str(&context_json("gw", "orders", "get", &ids)).unwrap();
        assert_eq!(plain["custom"]["bedrockAgentCoreToolName"], "orders___get");
        assert!(plain["custom"].get("traceparent").is_none());
        ids.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let traced: serde_json::Value =
            serde_json::from_str(&context_json("gw", "orders", "get", &ids)).unwrap();
        assert_eq!(
            traced["custom"]["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(traced["custom"]["bedrockAgentCoreSessionId"], "s-1");
    }

    #[test]
    fn string_payloads_are_text_unless_wrapped() {
        let a = answer(200, Bytes::from_static(b"\"hi\""), false);
        assert_eq!(
            (&*a.media_type, &a.body[..], a.is_json),
            ("text/plain", &b"hi"[..], false)
        );
        let a = answer(200, Bytes::from_static(b"\"hi\""), true);
        assert!(a.is_json);
        let a = answer(200, Bytes::from_static(b"{\"a\":1}"), false);
        assert!(a.is_json);
        let a = answer(200, Bytes::from_static(b"not json"), false);
        assert!(!a.is_json);
    }
}
