//! `tools/list`: pages of pre-serialized tool definitions in catalog order, with an opaque
//! cursor (the offset, base64url).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::value::RawValue;

use super::jsonrpc::{self, RpcError};
use super::{Call, Era, McpEndpoint, write_result_type};

/// Encodes a page offset as a cursor.
fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("tools:{offset}"))
}

/// Decodes a cursor made by [`encode_cursor`].
fn decode_cursor(cursor: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("tools:")?
        .parse()
        .ok()
}

/// Answers `tools/list`.
pub(super) fn handle(
    endpoint: &McpEndpoint,
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let params = super::lists::parse_params(params)?;
    let all = endpoint.catalog().tools();
    let inbound = endpoint.settings().inbound.as_deref();
    // With per-tool scopes, a caller sees only the tools it may call (pages and cursors
    // count over that view).
    let visible: Vec<std::sync::Arc<crate::catalog::Tool>>;
    let tools = match inbound {
        Some(auth) if auth.has_tool_scopes() => {
            visible = all
                .iter()
                .filter(|t| auth.missing_tool_scopes(call.caller, &t.name).is_none())
                .cloned()
                .collect();
            &visible[..]
        }
        _ => all,
    };
    let start = match params.cursor.as_deref() {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some(offset) if offset <= tools.len() => offset,
            _ => {
                return Err(RpcError::invalid_params(
                    "invalid cursor: restart listing without a cursor",
                ));
            }
        },
    };
    let end = (start + endpoint.settings().page_size).min(tools.len());
    let page = &tools[start..end];
    out.reserve(
        page.iter()
            .map(|t| t.definition.get().len() + 1)
            .sum::<usize>()
            + 128,
    );
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    out.extend_from_slice(b"\"tools\":[");
    for (i, tool) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(tool.definition.get().as_bytes());
    }
    out.push(b']');
    if end < tools.len() {
        out.extend_from_slice(b",\"nextCursor\":");
        jsonrpc::write_json_str(out, &encode_cursor(end));
    }
    if call.era == Era::Modern {
        // With inbound auth, what a caller sees depends on its token: not for shared caches.
        super::lists::write_scoped_cache_hints(out, endpoint, inbound.is_some());
    }
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(200)), Some(200));
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("other:1")), None);
    }
}
