//! `prompts/list`, `resources/list`, `resources/templates/list`, `prompts/get` and
//! `resources/read`: the prompts and resources of the upstream MCP servers (empty lists
//! without any), with the 2026-07-28 caching hints. Reads and gets are forwarded to the
//! server that offers them.

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

/// Answers a list of the upstream MCP servers' prompts, resources or templates (one page),
/// each shown only to callers its target's scopes admit.
pub(super) fn list(
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
    let offerings = call.snap.catalog().offerings();
    let (key, items): (&[u8], _) = match method {
        "prompts/list" => (b"prompts", &offerings.prompts),
        "resources/list" => (b"resources", &offerings.resources),
        _ => (b"resourceTemplates", &offerings.templates),
    };
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":[");
    let mut first = true;
    let mut private = false;
    for item in items.iter() {
        private |= !item.policy.is_open();
        if item.policy.missing(call.caller).is_some() {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(item.definition.get().as_bytes());
    }
    out.push(b']');
    if call.era == Era::Modern {
        write_scoped_cache_hints(out, call.snap, private);
    }
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(())
}

#[derive(Deserialize)]
struct GetParams<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Writes the result members of an upstream answer, without its `resultType`.
fn write_upstream_result(
    call: &Call<'_>,
    result: &RawValue,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let members: indexmap::IndexMap<std::borrow::Cow<'_, str>, &RawValue> =
        serde_json::from_str(result.get()).map_err(|e| {
            RpcError::new(
                super::jsonrpc::ErrorKind::Internal,
                format!("the upstream MCP server answered no result object: {e}"),
            )
        })?;
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    let mut first = true;
    for (name, value) in &members {
        if name == "resultType" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        jsonrpc::write_json_str(out, name);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
    }
    if first && call.era == Era::Modern {
        // No member followed the `resultType` and its comma.
        out.pop();
    }
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(())
}

/// An upstream's refusal as the gateway's answer: its invalid-params as ours, anything else
/// as an internal error that names the server's reason.
fn upstream_error(error: crate::targets::mcp::McpError) -> RpcError {
    match error {
        crate::targets::mcp::McpError::Rpc(e) if e.code == -32602 => {
            RpcError::invalid_params(e.message)
        }
        other => RpcError::new(super::jsonrpc::ErrorKind::Internal, other.to_string()),
    }
}

/// `prompts/get`: forwarded to the server that offers the prompt.
pub(super) async fn get_prompt(
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let params: GetParams = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .ok_or_else(|| RpcError::invalid_params("prompts/get requires params.name"))?;
    let prompt = call
        .snap
        .catalog()
        .prompt(&params.name)
        .filter(|p| p.policy.missing(call.caller).is_none())
        .ok_or_else(|| {
            RpcError::invalid_params(format!("Unknown prompt: {}", params.name))
                .with_data(serde_json::json!({ "name": params.name }))
        })?;
    let result = prompt
        .source
        .get_prompt(&prompt.upstream_key, params.arguments, call.caller)
        .await
        .map_err(upstream_error)?;
    write_upstream_result(call, &result, out)
}

/// Rewrites the `uri` of each of `contents` from the upstream's to the gateway's.
fn rewrite_contents(result: &RawValue, target: &str) -> Option<Box<RawValue>> {
    let mut value: serde_json::Value = serde_json::from_str(result.get()).ok()?;
    if let Some(contents) = value.get_mut("contents").and_then(|c| c.as_array_mut()) {
        for item in contents {
            if let Some(uri) = item.get("uri").and_then(|u| u.as_str()) {
                item["uri"] = serde_json::Value::String(crate::catalog::gateway_uri(target, uri));
            }
        }
    }
    serde_json::value::to_raw_value(&value).ok()
}

#[derive(Deserialize)]
struct ReadParams<'a> {
    #[serde(borrow)]
    uri: std::borrow::Cow<'a, str>,
}

/// Answers `resources/read`: forwarded to the server whose resource (or template) the URI
/// names, its contents' URIs given back in the gateway's form; any other URI is not found:
/// -32602 with the requested URI in `data.uri` (SEP-2164).
pub(super) async fn read(
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let params: ReadParams = params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .ok_or_else(|| RpcError::invalid_params("resources/read requires params.uri"))?;
    let not_found = || {
        RpcError::invalid_params(format!("resource not found: {}", params.uri))
            .with_data(serde_json::json!({ "uri": params.uri }))
    };
    let catalog = call.snap.catalog();
    let Some((source, upstream_uri, policy)) = catalog.resource_source(&params.uri) else {
        return Err(not_found());
    };
    if policy.missing(call.caller).is_some() {
        return Err(not_found());
    }
    let target = crate::catalog::upstream_uri(&params.uri).map_or("", |(t, _)| t);
    let result = source
        .read_resource(&upstream_uri, call.caller)
        .await
        .map_err(upstream_error)?;
    let result = rewrite_contents(&result, target).unwrap_or(result);
    write_upstream_result(call, &result, out)
}
