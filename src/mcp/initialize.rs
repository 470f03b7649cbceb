//! `initialize` (handshake revisions): version negotiation and capabilities. The handshake
//! leaves no state behind: with `gateway.session`, the transport hands out a signed,
//! self-contained session id (see [`super::session`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{self, RpcError};
use super::{Call, LEGACY_VERSIONS};

/// What the server offers: tools whose list changes on reload (notified on the
/// handshake-era GET stream and on 2026-07-28 `subscriptions/listen` streams), plus empty
/// prompt and resource lists (clients and the conformance suite probe them; answering with
/// empty lists beats `-32601`).
pub(super) const CAPABILITIES: &str = r#"{"tools":{"listChanged":true},"prompts":{"listChanged":false},"resources":{"subscribe":false,"listChanged":false}}"#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams<'a> {
    #[serde(borrow)]
    protocol_version: Option<Cow<'a, str>>,
}

/// Answers `initialize`: the requested revision when supported, else the newest handshake
/// revision (the client then decides whether it can continue). Returns the revision.
pub(super) fn handle(
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<&'static str, RpcError> {
    let params: InitializeParams = match params {
        Some(p) => serde_json::from_str(p.get())
            .map_err(|e| RpcError::invalid_params(format!("invalid initialize params: {e}")))?,
        None => {
            return Err(RpcError::invalid_params(
                "initialize requires params with protocolVersion",
            ));
        }
    };
    let Some(requested) = params.protocol_version else {
        return Err(RpcError::invalid_params(
            "initialize requires params.protocolVersion",
        ));
    };
    let version = LEGACY_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(LEGACY_VERSIONS[0]);
    jsonrpc::begin_result(out, call.id);
    out.extend_from_slice(b"{\"protocolVersion\":");
    jsonrpc::write_json_str(out, version);
    out.extend_from_slice(b",\"capabilities\":");
    out.extend_from_slice(CAPABILITIES.as_bytes());
    out.extend_from_slice(b",\"serverInfo\":");
    out.extend_from_slice(call.snap.server_info().get().as_bytes());
    if let Some(instructions) = &call.snap.settings().instructions {
        out.extend_from_slice(b",\"instructions\":");
        jsonrpc::write_json_str(out, instructions);
    }
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(version)
}
