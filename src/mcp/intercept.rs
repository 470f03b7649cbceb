//! Runs the interceptors around one JSON-RPC message: the request hooks in config order
//! (each may rewrite the message and headers, or answer directly), then dispatch (with its
//! usual validation and scope checks), then the response hooks in config order on a JSON
//! answer. Only reached when `interceptors:` is configured.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{ErrorKind, RpcError};
use super::{McpEndpoint, Reply, Snapshot, error_reply};
use crate::interceptors::{
    GatewayResponse, HookError, Interceptor, Interceptors, Phase, TransformedResponse,
};

/// What interceptors read of a message to pick themselves: its method and id.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(default, borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
}

/// Headers a request hook may not set: the caller's identity is settled before any hook
/// runs, and the framing is the gateway's.
const PROTECTED: &[HeaderName] = &[
    http::header::AUTHORIZATION,
    http::header::HOST,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_TYPE,
];

/// Serves `body` through the interceptors of `hooks`.
pub(super) async fn around(
    endpoint: &McpEndpoint,
    hooks: &Interceptors,
    snap: &Snapshot,
    body: &[u8],
    headers: &HeaderMap,
    caller: Option<&crate::auth::Caller>,
    progress: Option<&crate::targets::mcp::Progress>,
) -> Reply {
    let mut body: Cow<'_, [u8]> = Cow::Borrowed(body);
    let mut headers: Cow<'_, HeaderMap> = Cow::Borrowed(headers);
    // The method the response hooks are chosen by: the caller's.
    let method = match peek(&body) {
        Some((
            _,
            Peek {
                method: Some(m), ..
            },
        )) => m.into_owned(),
        // Not a JSON request with a method: dispatch says what is wrong with it.
        _ => {
            return endpoint
                .dispatch(snap, &body, &headers, caller, progress)
                .await;
        }
    };
    for hook in hooks.hooks.iter().filter(|h| h.on_request) {
        let Some((raw, peeked)) = peek(&body) else {
            break;
        };
        if !peeked.method.as_deref().is_some_and(|m| hook.sees(m)) {
            continue;
        }
        let request = hook.gateway_request(raw, &headers);
        let answer = hook.call(&endpoint.http, request, None).await;
        let mcp = match answer {
            Ok(mcp) => mcp,
            Err(error) => match failed(endpoint, hook, Phase::Request, peeked.id, &error) {
                Some(reply) => return reply,
                None => continue,
            },
        };
        if let Some(direct) = mcp.transformed_gateway_response {
            count(endpoint, hook, Phase::Request, "answered");
            return replied(direct, None);
        }
        let Some(transformed) = mcp.transformed_gateway_request else {
            count(endpoint, hook, Phase::Request, "ok");
            continue;
        };
        count(endpoint, hook, Phase::Request, "transformed");
        let new_body = transformed.body.map(|b| b.get().as_bytes().to_vec());
        if let Some(set) = transformed.headers {
            let map = headers.to_mut();
            for (name, value) in set {
                // Checked when the answer was read.
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) else {
                    continue;
                };
                if !PROTECTED.contains(&name) {
                    map.insert(name, value);
                }
            }
        }
        if let Some(new_body) = new_body {
            body = Cow::Owned(new_body);
        }
    }
    let reply = endpoint
        .dispatch(snap, &body, &headers, caller, progress)
        .await;
    if !hooks.hooks.iter().any(|h| h.on_response && h.sees(&method)) {
        return reply;
    }
    respond(endpoint, hooks, &method, &body, &headers, reply).await
}

/// Runs the response hooks that see `method` on a JSON answer (a stream or a 202 passes
/// through untouched).
async fn respond(
    endpoint: &McpEndpoint,
    hooks: &Interceptors,
    method: &str,
    body: &[u8],
    headers: &HeaderMap,
    mut reply: Reply,
) -> Reply {
    let id = peek(body).and_then(|(_, p)| p.id);
    for hook in hooks
        .hooks
        .iter()
        .filter(|h| h.on_response && h.sees(method))
    {
        let (status, answer) = match &reply {
            Reply::Json(b) | Reply::Initialized(b, _) => (StatusCode::OK, b),
            Reply::Error(b, e) => (e.status(), b),
            Reply::Accepted | Reply::Stream(_) => return reply,
        };
        let (Some((raw, _)), Ok(answer)) =
            (peek(body), serde_json::from_slice::<&RawValue>(answer))
        else {
            return reply;
        };
        let request = hook.gateway_request(raw, headers);
        let response = GatewayResponse {
            status_code: status.as_u16(),
            headers: indexmap::IndexMap::from([("Content-Type", "application/json")]),
            body: answer,
        };
        let outcome = hook.call(&endpoint.http, request, Some(response)).await;
        match outcome {
            Ok(mcp) => match mcp.transformed_gateway_response {
                Some(replacement) => {
                    count(endpoint, hook, Phase::Response, "transformed");
                    let version = match &reply {
                        Reply::Initialized(_, v) => Some(*v),
                        _ => None,
                    };
                    reply = replied(replacement, version);
                }
                None => count(endpoint, hook, Phase::Response, "ok"),
            },
            Err(error) => {
                if let Some(refusal) = failed(endpoint, hook, Phase::Response, id, &error) {
                    return refusal;
                }
            }
        }
    }
    reply
}

/// The message `body` as raw JSON and what hooks pick by; `None` when it is not JSON.
fn peek(body: &[u8]) -> Option<(&RawValue, Peek<'_>)> {
    let raw: &RawValue = serde_json::from_slice(body).ok()?;
    let peeked: Peek<'_> = serde_json::from_str(raw.get()).ok()?;
    Some((raw, peeked))
}

/// The reply an interceptor's `transformedGatewayResponse` makes: 200 as a result (an
/// `initialize` answer stays one), any other status as it is.
fn replied(response: TransformedResponse, initialized: Option<&'static str>) -> Reply {
    let body = response.body.get().as_bytes().to_vec();
    let status = response
        .status_code
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    match (status, initialized) {
        (StatusCode::OK, Some(version)) => Reply::Initialized(body, version),
        (StatusCode::OK, None) => Reply::Json(body),
        (status, _) => Reply::Error(
            body,
            RpcError::new(ErrorKind::Refused(status), "an interceptor's answer"),
        ),
    }
}

/// Counts a failure of `hook` and, when it fails closed, the refusal to send.
fn failed(
    endpoint: &McpEndpoint,
    hook: &Interceptor,
    phase: Phase,
    id: Option<&RawValue>,
    error: &HookError,
) -> Option<Reply> {
    count(endpoint, hook, phase, error.outcome());
    if hook.fail_open {
        tracing::warn!(interceptor = %hook.name, phase = phase.label(), error = %error,
            "interceptor failed; going on without it (fail: open)");
        return None;
    }
    tracing::warn!(interceptor = %hook.name, phase = phase.label(), error = %error,
        "interceptor failed; request refused (fail: closed)");
    Some(error_reply(
        id,
        RpcError::new(
            ErrorKind::InterceptorFailed,
            format!("interceptor `{}` failed: {error}", hook.name),
        ),
    ))
}

fn count(endpoint: &McpEndpoint, hook: &Interceptor, phase: Phase, outcome: &str) {
    endpoint
        .metrics
        .interceptor_call(&hook.name, phase.label(), outcome);
}
