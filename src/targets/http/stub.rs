//! Placeholder until the real client lands (same signatures).
use serde_json::{Map, Value};

use super::{HttpOperation, HttpTarget};
use crate::targets::{UpstreamAnswer, UpstreamError};

/// The pooled upstream client.
#[derive(Clone, Debug)]
pub struct HttpClient;

impl HttpClient {
    /// Builds the client.
    pub fn new() -> Result<Self, std::io::Error> {
        Ok(Self)
    }

    /// Calls the upstream.
    pub async fn call(
        &self,
        _target: &HttpTarget,
        _op: &HttpOperation,
        _args: &Map<String, Value>,
    ) -> Result<UpstreamAnswer, UpstreamError> {
        Err(UpstreamError::Transport("not implemented".into()))
    }
}
