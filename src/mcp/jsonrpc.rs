//! JSON-RPC 2.0 framing: parsing one incoming message without copying its payload, and
//! writing results and errors straight into a byte buffer.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// JSON-RPC and MCP error codes.
pub mod code {
    /// Invalid JSON.
    pub const PARSE_ERROR: i32 = -32700;
    /// Not a valid request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// Unknown method.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Bad params (including unknown tools and missing `_meta` fields).
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal error.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// HTTP headers do not match the body (2026-07-28).
    pub const HEADER_MISMATCH: i32 = -32020;
    /// Protocol version not supported (2026-07-28).
    pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;
    /// A rate limit refused the call (toolgate's own, in the server-defined range).
    pub const RATE_LIMITED: i32 = -32029;
    /// A URL mode elicitation must be completed first (2025-11-25 only).
    pub const URL_ELICITATION_REQUIRED: i32 = -32042;
    /// 2026-07-28: the request needs a client capability it did not declare.
    pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i32 = -32021;
}

/// One incoming JSON-RPC message, borrowing from the request body.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// Must be `"2.0"`.
    #[serde(default, borrow)]
    pub jsonrpc: Option<Cow<'a, str>>,
    /// The request id, as written (present even when `null`).
    #[serde(default, borrow, deserialize_with = "present")]
    pub id: Option<&'a RawValue>,
    /// The method; absent on responses.
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    /// The params, parsed later by the method.
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
    /// Set on a JSON-RPC response sent by the client.
    #[serde(default)]
    pub result: Option<serde::de::IgnoredAny>,
    /// Set on a JSON-RPC error response sent by the client.
    #[serde(default)]
    pub error: Option<serde::de::IgnoredAny>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Whether `id` is a string or an integer, as MCP requires (never `null`).
pub fn valid_id(id: &RawValue) -> bool {
    let s = id.get();
    s.starts_with('"') || s.starts_with(|c: char| c == '-' || c.is_ascii_digit())
}

/// What went wrong, as far as the protocol is concerned. The kind alone decides the
/// JSON-RPC code, the HTTP status and the headers of the response ([`RpcError::code`],
/// [`RpcError::status`], [`RpcError::headers`]): every refusal of the gateway, from the
/// transport checks to inbound authentication to `tools/call`, is mapped here.
#[derive(Debug, Clone)]
pub enum ErrorKind {
    /// The body is not JSON (-32700, HTTP 400).
    Parse,
    /// Not a JSON-RPC request: a batch, a wrong `jsonrpc`, no method, a bad id (-32600, 400).
    InvalidRequest,
    /// Params a method cannot use: unknown tool, bad cursor (-32602, HTTP 200).
    InvalidParams,
    /// Params that are not an object, or a missing or malformed 2026-07-28 `_meta`
    /// (-32602, HTTP 400).
    MalformedParams,
    /// An unknown method (-32601; HTTP 404 in 2026-07-28, 200 in the handshake revisions).
    MethodNotFound(super::Era),
    /// Routing headers that do not match the body (-32020, 400).
    HeaderMismatch,
    /// A protocol revision this server does not speak (-32022, 400).
    UnsupportedVersion,
    /// An HTTP-level refusal before any message is read: Origin/Host (403), media types
    /// (415, 406), size (413), a slow body (408), an unreadable body (400) (-32600).
    Refused(http::StatusCode),
    /// An HTTP method the endpoint does not serve (405 with `Allow`).
    MethodNotAllowed(&'static str),
    /// Inbound authentication refused the request: 401 or 403 with a `WWW-Authenticate`
    /// challenge, or 503 with `Retry-After` when the keys cannot be fetched (-32600).
    Unauthenticated {
        /// HTTP status.
        status: http::StatusCode,
        /// The `WWW-Authenticate` value, when there is one.
        challenge: Option<Box<http::HeaderValue>>,
    },
    /// The caller's token lacks a tool's scopes (-32600, 403 with an `insufficient_scope`
    /// challenge).
    InsufficientScope(Box<http::HeaderValue>),
    /// The gateway is at its concurrency limit (-32603, 503 with `Retry-After`).
    Overloaded,
    /// A rate limit refused a `tools/call` (-32029, 429 with `Retry-After` in seconds).
    RateLimited {
        /// Seconds until a call may pass, at least 1.
        retry_after: u64,
    },
    /// The call needs the user to complete a URL elicitation first, e.g. authorize an
    /// upstream (-32042, HTTP 200; 2025-11-25).
    UrlElicitationRequired,
    /// Serving the request needs a client capability its `_meta` did not declare (-32021,
    /// 400; 2026-07-28), e.g. URL elicitation for a per-user OAuth tool.
    MissingCapability,
    /// A request the gateway cannot serve for a reason of its own (-32603, 500).
    Internal,
    /// A fail-closed interceptor timed out, failed or gave an invalid answer (-32603, 502).
    InterceptorFailed,
}

/// A JSON-RPC error: its kind, message and optional data.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// What went wrong (decides code, status and headers).
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: Cow<'static, str>,
    /// Optional structured data.
    pub data: Option<serde_json::Value>,
}

impl RpcError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Invalid params (HTTP 200).
    pub fn invalid_params(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidParams, message)
    }

    /// A `HeaderMismatch` (HTTP 400).
    pub fn header_mismatch(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::HeaderMismatch, message)
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i32 {
        match self.kind {
            ErrorKind::Parse => code::PARSE_ERROR,
            ErrorKind::InvalidParams | ErrorKind::MalformedParams => code::INVALID_PARAMS,
            ErrorKind::MethodNotFound(_) => code::METHOD_NOT_FOUND,
            ErrorKind::HeaderMismatch => code::HEADER_MISMATCH,
            ErrorKind::UnsupportedVersion => code::UNSUPPORTED_PROTOCOL_VERSION,
            ErrorKind::Overloaded | ErrorKind::Internal | ErrorKind::InterceptorFailed => {
                code::INTERNAL_ERROR
            }
            ErrorKind::RateLimited { .. } => code::RATE_LIMITED,
            ErrorKind::UrlElicitationRequired => code::URL_ELICITATION_REQUIRED,
            ErrorKind::MissingCapability => code::MISSING_REQUIRED_CLIENT_CAPABILITY,
            ErrorKind::InvalidRequest
            | ErrorKind::Refused(_)
            | ErrorKind::MethodNotAllowed(_)
            | ErrorKind::Unauthenticated { .. }
            | ErrorKind::InsufficientScope(_) => code::INVALID_REQUEST,
        }
    }

    /// The HTTP status of the response carrying it.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match &self.kind {
            ErrorKind::InvalidParams
            | ErrorKind::UrlElicitationRequired
            | ErrorKind::MethodNotFound(super::Era::Legacy) => S::OK,
            ErrorKind::MethodNotFound(super::Era::Modern) => S::NOT_FOUND,
            ErrorKind::Parse
            | ErrorKind::InvalidRequest
            | ErrorKind::MalformedParams
            | ErrorKind::HeaderMismatch
            | ErrorKind::MissingCapability
            | ErrorKind::UnsupportedVersion => S::BAD_REQUEST,
            ErrorKind::Refused(status) | ErrorKind::Unauthenticated { status, .. } => *status,
            ErrorKind::MethodNotAllowed(_) => S::METHOD_NOT_ALLOWED,
            ErrorKind::InsufficientScope(_) => S::FORBIDDEN,
            ErrorKind::Overloaded => S::SERVICE_UNAVAILABLE,
            ErrorKind::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            ErrorKind::Internal => S::INTERNAL_SERVER_ERROR,
            ErrorKind::InterceptorFailed => S::BAD_GATEWAY,
        }
    }

    /// Headers the response carries besides its content type.
    pub fn headers(&self) -> Option<(http::HeaderName, http::HeaderValue)> {
        use http::header;
        match &self.kind {
            ErrorKind::MethodNotAllowed(allow) => {
                Some((header::ALLOW, http::HeaderValue::from_static(allow)))
            }
            ErrorKind::Unauthenticated {
                challenge: Some(c), ..
            } => Some((header::WWW_AUTHENTICATE, (**c).clone())),
            ErrorKind::InsufficientScope(c) => Some((header::WWW_AUTHENTICATE, (**c).clone())),
            ErrorKind::Unauthenticated { status, .. }
                if *status == http::StatusCode::SERVICE_UNAVAILABLE =>
            {
                Some((header::RETRY_AFTER, http::HeaderValue::from_static("5")))
            }
            ErrorKind::Overloaded => {
                Some((header::RETRY_AFTER, http::HeaderValue::from_static("1")))
            }
            ErrorKind::RateLimited { retry_after } => {
                Some((header::RETRY_AFTER, http::HeaderValue::from(*retry_after)))
            }
            _ => None,
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a serde_json::Value>,
}

/// Writes `{"jsonrpc":"2.0","id":<id>,"result":` — the caller writes the result object and
/// then calls [`end_result`].
#[inline]
pub fn begin_result(out: &mut Vec<u8>, id: &RawValue) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
}

/// Closes what [`begin_result`] opened.
#[inline]
pub fn end_result(out: &mut Vec<u8>) {
    out.push(b'}');
}

/// A complete error response; `id` is `null` when the request's id could not be read.
pub fn error_response(id: Option<&RawValue>, error: &RpcError) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + error.message.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", |id| id.get()).as_bytes());
    out.extend_from_slice(b",\"error\":");
    let body = ErrorBody {
        code: error.code(),
        message: &error.message,
        data: error.data.as_ref(),
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, &body);
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string literal.
#[inline]
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_and_keeps_null_id() {
        let m: Message =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#).unwrap();
        assert_eq!(m.id.unwrap().get(), "null");
        assert!(!valid_id(m.id.unwrap()));
        let m: Message = serde_json::from_str(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap();
        assert!(m.id.is_none());
        let m: Message =
            serde_json::from_str(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{"k":[1]}}"#)
                .unwrap();
        assert!(valid_id(m.id.unwrap()));
        assert_eq!(m.params.unwrap().get(), r#"{"k":[1]}"#);
    }

    #[test]
    fn error_response_is_valid_json() {
        let e = RpcError::invalid_params("bad \"thing\"").with_data(serde_json::json!({"a": 1}));
        let out = error_response(None, &e);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "bad \"thing\"");
        assert!(v["id"].is_null());
    }
}
