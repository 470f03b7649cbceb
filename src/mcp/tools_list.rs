//! `tools/list`: pages of pre-serialized tool definitions in catalog order, with an opaque
//! cursor (the catalog's generation and the offset, base64url). A cursor from another
//! generation (the tool list changed since) is refused rather than answered with a page
//! of a different list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::value::RawValue;

use super::jsonrpc::{self, RpcError};
use super::{Call, Era, write_result_type};
use crate::config::SearchListing;

/// Encodes a page offset in the list of `generation` as a cursor.
fn encode_cursor(generation: u64, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("tools:{generation:016x}:{offset}"))
}

/// Decodes a cursor made by [`encode_cursor`]: generation and offset.
fn decode_cursor(cursor: &str) -> Option<(u64, usize)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?.strip_prefix("tools:")?;
    let (generation, offset) = text.split_once(':')?;
    Some((
        u64::from_str_radix(generation, 16).ok()?,
        offset.parse().ok()?,
    ))
}

/// Answers `tools/list`.
pub(super) fn handle(
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let params = super::lists::parse_params(params)?;
    let catalog = call.snap.catalog();
    let search = catalog.search();
    let search_only = search.is_some_and(|s| s.listing() == SearchListing::SearchOnly);
    // When some tool is not open to everyone, a caller sees only the tools it may call
    // (pages and cursors count over that view); `search_only` lists only the pinned tools.
    let visible: Vec<std::sync::Arc<crate::catalog::Tool>>;
    let policy = call.snap.settings().policy.as_deref();
    let tools = if search_only || catalog.has_policies() || policy.is_some() {
        let all = catalog.tools();
        let candidates: Box<dyn Iterator<Item = &std::sync::Arc<crate::catalog::Tool>>> =
            match search.filter(|_| search_only) {
                Some(s) => Box::new(s.pinned().iter().map(|&i| &all[i])),
                None => Box::new(all.iter()),
            };
        visible = candidates
            .filter(|t| t.policy.missing(call.caller).is_none())
            .filter(|t| crate::policy::visible(policy, call.caller, t))
            .cloned()
            .collect();
        &visible[..]
    } else {
        catalog.tools()
    };
    // The search tool comes first, on the first page.
    let lead = search.map(|s| s.definition());
    let total = tools.len() + usize::from(lead.is_some());
    let generation = catalog.generation();
    let start = match params.cursor.as_deref() {
        None => 0,
        Some(c) => match decode_cursor(c) {
            Some((g, offset)) if g == generation && offset <= total => offset,
            Some((_, _)) => {
                return Err(RpcError::invalid_params(
                    "stale cursor: the tool list changed since this cursor was issued (the gateway reloaded); list again without a cursor",
                ));
            }
            None => {
                return Err(RpcError::invalid_params(
                    "invalid cursor: restart listing without a cursor",
                ));
            }
        },
    };
    let end = (start + call.snap.settings().page_size).min(total);
    let skip = usize::from(lead.is_some());
    let lead = lead.filter(|_| start == 0);
    let page = &tools[start.saturating_sub(skip)..end - skip.min(end)];
    out.reserve(
        page.iter()
            .map(|t| t.definition.get().len() + 1)
            .sum::<usize>()
            + lead.map_or(0, |d| d.get().len())
            + 128,
    );
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    out.extend_from_slice(b"\"tools\":[");
    if let Some(definition) = lead {
        out.extend_from_slice(definition.get().as_bytes());
        if !page.is_empty() {
            out.push(b',');
        }
    }
    for (i, tool) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(tool.definition.get().as_bytes());
    }
    out.push(b']');
    if end < total {
        out.extend_from_slice(b",\"nextCursor\":");
        jsonrpc::write_json_str(out, &encode_cursor(generation, end));
    }
    if call.era == Era::Modern {
        // With inbound auth, what a caller sees depends on its token: not for shared caches.
        let private = call.snap.settings().inbound.is_some();
        if catalog.dynamic().is_empty() {
            super::lists::write_scoped_cache_hints(out, call.snap, private);
        } else {
            // Dynamically listed upstreams are asked on every list: nothing to keep.
            out.extend_from_slice(b",\"ttlMs\":0");
            out.extend_from_slice(if private {
                b",\"cacheScope\":\"private\""
            } else {
                b",\"cacheScope\":\"public\""
            });
        }
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
        assert_eq!(decode_cursor(&encode_cursor(7, 200)), Some((7, 200)));
        assert_eq!(
            decode_cursor(&encode_cursor(u64::MAX, 0)),
            Some((u64::MAX, 0))
        );
        assert_eq!(decode_cursor("not-a-cursor"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("other:1")), None);
    }
}
