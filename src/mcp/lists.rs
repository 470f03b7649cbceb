//! `prompts/list`, `resources/list`, `resources/templates/list`: always empty (the gateway
//! serves tools), with the 2026-07-28 caching hints; `resources/read`: always not found.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonrpc::{self, RpcError};
use super::{Call, Era, Snapshot, write_result_type};

#[derive(Deserialize, Default)]
pub(super) struct ListParams<'a> {
    #[serde(borrow, default)]
    pub cursor: Option<std::borrow::Cow<'a, str>>,
}

/// Parses the params of a list method.
pub(super) fn parse_params(params: Option<&RawValue>) -> Result<ListParams<'_>, RpcError> {
    match params {
        Some(p) => serde_json::from_str(p.get())
            .map_err(|e| RpcError::invalid_params(format!("invalid params: {e}"))),
        None => Ok(ListParams::default()),
    }
}

/// Writes `,"ttlMs":N,"cacheScope":"public"` (modern era only, where they are required).
pub(super) fn write_cache_hints(out: &mut Vec<u8>, snap: &Snapshot) {
    write_scoped_cache_hints(out, snap, false);
}

/// The same, with `"cacheScope":"private"` when the answer depends on the caller.
pub(super) fn write_scoped_cache_hints(out: &mut Vec<u8>, snap: &Snapshot, private: bool) {
    out.extend_from_slice(b",\"ttlMs\":");
    out.extend_from_slice(snap.settings().list_ttl_ms.to_string().as_bytes());
    out.extend_from_slice(if private {
        b",\"cacheScope\":\"private\""
    } else {
        b",\"cacheScope\":\"public\""
    });
}

/// Answers an empty list.
pub(super) fn empty(
    call: &Call<'_>,
    method: &str,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let params = parse_params(params)?;
    if params.cursor.is_some() {
        return Err(RpcError::invalid_params(
            "invalid cursor: this list has a single page",
        ));
    }
    let key: &[u8] = match method {
        "prompts/list" => b"prompts",
        "resources/list" => b"resources",
        _ => b"resourceTemplates",
    };
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":[]");
    if call.era == Era::Modern {
        write_cache_hints(out, call.snap);
    }
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(())
}

#[derive(Deserialize)]
struct ReadParams<'a> {
    #[serde(borrow)]
    uri: std::borrow::Cow<'a, str>,
}

/// Answers `resources/read`: no resource exists, so -32602 with the requested URI in
/// `data.uri` (SEP-2164).
pub(super) fn read(params: Option<&RawValue>) -> Result<(), RpcError> {
    let params: ReadParams = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .ok_or_else(|| RpcError::invalid_params("resources/read requires params.uri"))?;
    Err(RpcError::invalid_params(format!(
        "resource not found: {} (this server has no resources)",
        params.uri
    ))
    .with_data(serde_json::json!({ "uri": params.uri })))
}
