//! Targets: how a validated `tools/call` reaches the system behind a tool.
//!
//! A target only moves bytes (HTTP request out, answer back as an [`UpstreamAnswer`]);
//! mapping the answer to MCP content is shared by all targets and lives in
//! [`crate::catalog::OutputMapping`].

pub mod http;

use bytes::Bytes;

/// What an upstream answered to one successful call, before mapping to MCP content.
#[derive(Debug)]
pub struct UpstreamAnswer {
    /// HTTP status (2xx) of the answer.
    pub status: u16,
    /// The answer's media type without parameters, lower-cased (`application/json`).
    pub media_type: Box<str>,
    /// The answer body, complete (bounded by the target's size cap).
    pub body: Bytes,
    /// True when `media_type` is JSON (`application/json` or `+json`) and `body` parsed.
    pub is_json: bool,
    /// True when the body was cut at the size cap (then `is_json` is false).
    pub truncated: bool,
}

/// Why a call produced no usable answer. Every variant becomes an `isError` tool result.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered with a non-2xx status.
    #[error("upstream answered HTTP {status}{}", excerpt_suffix(.body_excerpt))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// A bounded excerpt of the answer's body (UTF-8, lossy).
        body_excerpt: String,
    },
    /// No answer within the target's timeout.
    #[error("upstream did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Connecting or talking to the upstream failed.
    #[error("could not reach the upstream: {0}")]
    Transport(String),
    /// The arguments could not be turned into a request (e.g. a value of the wrong shape
    /// for its serialization style). Validation normally catches these first.
    #[error("cannot build the upstream request: {0}")]
    Request(String),
}

fn excerpt_suffix(excerpt: &str) -> String {
    if excerpt.is_empty() {
        String::new()
    } else {
        format!(": {excerpt}")
    }
}
