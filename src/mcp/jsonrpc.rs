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

/// A JSON-RPC error with the HTTP status it travels with.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// JSON-RPC error code.
    pub code: i32,
    /// Human-readable message.
    pub message: Cow<'static, str>,
    /// Optional structured data.
    pub data: Option<serde_json::Value>,
    /// HTTP status of the response carrying it.
    pub status: http::StatusCode,
    /// A `WWW-Authenticate` challenge to send with it (403 `insufficient_scope`).
    pub challenge: Option<Box<http::HeaderValue>>,
}

impl RpcError {
    /// An error sent with HTTP 200 (method-level failures).
    pub fn new(code: i32, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
            status: http::StatusCode::OK,
            challenge: None,
        }
    }

    /// The same error with another HTTP status.
    pub fn with_status(mut self, status: http::StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same error with data.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Invalid params (HTTP 200).
    pub fn invalid_params(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }

    /// A `HeaderMismatch` (HTTP 400).
    pub fn header_mismatch(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(code::HEADER_MISMATCH, message).with_status(http::StatusCode::BAD_REQUEST)
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
        code: error.code,
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
