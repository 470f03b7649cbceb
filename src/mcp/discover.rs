//! `server/discover`: supported versions, capabilities and identity, without a handshake.

use super::jsonrpc::{self, RpcError};
use super::{Call, SUPPORTED_VERSIONS, write_result_type};

/// Answers `server/discover` (served in both eras: it has no side effect).
pub(super) fn handle(call: &Call<'_>, out: &mut Vec<u8>) -> Result<(), RpcError> {
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
    out.extend_from_slice(b"\"supportedVersions\":");
    let _ = serde_json::to_writer(&mut *out, &SUPPORTED_VERSIONS);
    out.extend_from_slice(b",\"capabilities\":");
    out.extend_from_slice(super::initialize::CAPABILITIES.as_bytes());
    out.extend_from_slice(b",\"_meta\":{\"io.modelcontextprotocol/serverInfo\":");
    out.extend_from_slice(call.snap.server_info().get().as_bytes());
    out.push(b'}');
    if let Some(instructions) = &call.snap.settings().instructions {
        out.extend_from_slice(b",\"instructions\":");
        jsonrpc::write_json_str(out, instructions);
    }
    super::lists::write_cache_hints(out, call.snap);
    out.push(b'}');
    jsonrpc::end_result(out);
    Ok(())
}
