//! Targets: how a validated `tools/call` reaches the system behind a tool.
//!
//! A target only moves bytes (HTTP request out, answer back as an [`UpstreamAnswer`]);
//! mapping the answer to MCP content is shared by all targets and lives in
//! [`crate::catalog::OutputMapping`].

pub mod http;
pub mod lambda;

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
    /// What the upstream's `Cache-Control` allows.
    pub cache: CacheDirectives,
}

/// The parts of an answer's `Cache-Control` that the response cache obeys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheDirectives {
    /// `no-store` (or `no-cache`: it may not be served without revalidation).
    pub no_store: bool,
    /// `private`: only for the caller it was made for.
    pub private: bool,
    /// `max-age` (or `s-maxage`, which wins for a shared cache).
    pub max_age: Option<std::time::Duration>,
}

impl CacheDirectives {
    /// Parses `Cache-Control` header values.
    pub fn parse<'a>(values: impl Iterator<Item = &'a ::http::HeaderValue>) -> Self {
        let mut d = Self::default();
        let mut s_maxage = None;
        for value in values {
            for directive in value.to_str().unwrap_or("").split(',') {
                let directive = directive.trim();
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = || {
                    arg.and_then(|a| a.parse::<u64>().ok())
                        .map(std::time::Duration::from_secs)
                };
                match name.to_ascii_lowercase().as_str() {
                    "no-store" | "no-cache" => d.no_store = true,
                    "private" => d.private = true,
                    "max-age" => d.max_age = seconds().or(d.max_age),
                    "s-maxage" => s_maxage = seconds(),
                    _ => {}
                }
            }
        }
        if s_maxage.is_some() {
            d.max_age = s_maxage;
        }
        d
    }
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
    /// The target's credentials could not be obtained (OAuth2 token endpoint down or
    /// refusing, no caller token to forward).
    #[error("cannot authenticate to the upstream: {0}")]
    Credentials(String),
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

#[cfg(test)]
mod tests {
    use super::CacheDirectives;
    use http::HeaderValue;
    use std::time::Duration;

    fn parse(values: &[&'static str]) -> CacheDirectives {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        CacheDirectives::parse(values.iter())
    }

    #[test]
    fn cache_control_directives() {
        assert_eq!(parse(&[]), CacheDirectives::default());
        assert!(parse(&["no-store"]).no_store);
        assert!(parse(&["No-Cache"]).no_store);
        assert!(parse(&["public, max-age=30", "private"]).private);
        assert_eq!(
            parse(&["max-age=30"]).max_age,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&["max-age=30, s-maxage=5"]).max_age,
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse(&["max-age=\"7\""]).max_age,
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse(&["max-age=soon"]).max_age, None);
    }
}
