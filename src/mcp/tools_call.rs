//! `tools/call`: look the tool up, validate the arguments with its compiled validator, run
//! its binding, and map the answer to MCP content. Tool failures (bad arguments, upstream
//! errors, timeouts) are results with `isError: true`; only protocol problems (unknown
//! tool, malformed params) are JSON-RPC errors.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::jsonrpc::{self, RpcError};
use super::{Call, Era, McpEndpoint, header_str, write_result_type};
use crate::catalog::{OutputMapping, Tool, ToolBinding};
use crate::targets::{UpstreamAnswer, UpstreamError};

#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<Value>,
}

/// Most validation problems listed in one result; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// Answers `tools/call`.
pub(super) async fn handle(
    endpoint: &McpEndpoint,
    call: &Call<'_>,
    params: Option<&RawValue>,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let Some(params) = params else {
        return Err(RpcError::invalid_params(
            "tools/call requires params with the tool `name`",
        ));
    };
    let params: CallParams = serde_json::from_str(params.get())
        .map_err(|e| RpcError::invalid_params(format!("invalid tools/call params: {e}")))?;
    if call.era == Era::Modern {
        check_name_header(call, &params.name)?;
    }
    let Some(tool) = endpoint.catalog().get(&params.name) else {
        return Err(
            RpcError::invalid_params(format!("Unknown tool: {}", params.name))
                .with_data(serde_json::json!({ "name": params.name })),
        );
    };
    let arguments = match params.arguments {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    if !tool.validator.is_valid(&arguments) {
        write_error_result(out, call, &validation_report(tool, &arguments));
        return Ok(());
    }
    let Value::Object(arguments) = &arguments else {
        // The input schema is always `type: object`, so validation rejected anything else.
        write_error_result(out, call, "arguments must be an object");
        return Ok(());
    };
    match &tool.binding {
        ToolBinding::Http { target, operation } => {
            match endpoint.http.call(target, operation, arguments).await {
                Ok(answer) => write_answer(out, call, tool, &answer),
                Err(error) => write_upstream_error(out, call, tool, &error),
            }
        }
    }
    Ok(())
}

/// Checks `Mcp-Name` against `params.name` (2026-07-28), decoding the base64 sentinel form.
fn check_name_header(call: &Call<'_>, name: &str) -> Result<(), RpcError> {
    let Some(header) = header_str(call.headers, "mcp-name") else {
        return Err(RpcError::header_mismatch(
            "the Mcp-Name header is required for tools/call",
        ));
    };
    let decoded: Cow<str> = match header
        .strip_prefix("=?base64?")
        .and_then(|h| h.strip_suffix("?="))
    {
        Some(encoded) => {
            let bytes = STANDARD
                .decode(encoded)
                .map_err(|_| RpcError::header_mismatch("the Mcp-Name header has invalid base64"))?;
            Cow::Owned(
                String::from_utf8(bytes)
                    .map_err(|_| RpcError::header_mismatch("the Mcp-Name header is not UTF-8"))?,
            )
        }
        None => Cow::Borrowed(header),
    };
    if decoded != name {
        return Err(RpcError::header_mismatch(format!(
            "Header mismatch: Mcp-Name header value '{decoded}' does not match body value '{name}'"
        )));
    }
    Ok(())
}

/// Lists each schema violation with its JSON pointer, for the model to correct its call.
fn validation_report(tool: &Tool, arguments: &Value) -> String {
    let mut text = format!("Invalid arguments for tool {}:", tool.name);
    let mut count = 0;
    for error in tool.validator.iter_errors(arguments) {
        count += 1;
        if count <= MAX_LISTED_PROBLEMS {
            let pointer = error.instance_path().to_string();
            let at = if pointer.is_empty() {
                "(root)".to_string()
            } else {
                pointer
            };
            text.push_str(&format!("\n- at {at}: {error}"));
        }
    }
    if count > MAX_LISTED_PROBLEMS {
        text.push_str(&format!("\n- ... and {} more", count - MAX_LISTED_PROBLEMS));
    }
    text.push_str("\nThe upstream was not called. Fix the arguments to match the tool's inputSchema and call again.");
    text
}

fn begin_tool_result(out: &mut Vec<u8>, call: &Call<'_>) {
    jsonrpc::begin_result(out, call.id);
    out.push(b'{');
    write_result_type(out, call.era);
}

/// A result with one text block and `isError: true`.
fn write_error_result(out: &mut Vec<u8>, call: &Call<'_>, text: &str) {
    begin_tool_result(out, call);
    out.extend_from_slice(b"\"content\":[{\"type\":\"text\",\"text\":");
    jsonrpc::write_json_str(out, text);
    out.extend_from_slice(b"}],\"isError\":true}");
    jsonrpc::end_result(out);
}

fn write_upstream_error(out: &mut Vec<u8>, call: &Call<'_>, tool: &Tool, error: &UpstreamError) {
    tracing::debug!(tool = %tool.name, %error, "tool call failed upstream");
    write_error_result(out, call, &format!("Tool {} failed: {error}", tool.name));
}

/// Maps a successful upstream answer to MCP content: JSON gives `structuredContent` plus a
/// text block with the same JSON; images and audio give their content types; other binary
/// gives an embedded resource; anything else is text.
pub(super) fn write_answer(
    out: &mut Vec<u8>,
    call: &Call<'_>,
    tool: &Tool,
    answer: &UpstreamAnswer,
) {
    out.reserve(answer.body.len() * 2 + 128);
    begin_tool_result(out, call);
    out.extend_from_slice(b"\"content\":[");
    let media = &*answer.media_type;
    if answer.body.is_empty() {
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(out, &format!("HTTP {} (no content)", answer.status));
        out.push(b'}');
    } else if answer.is_json {
        // JSON parsed upstream-side, so it is valid UTF-8.
        let text = std::str::from_utf8(&answer.body).unwrap_or_default();
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(out, text);
        out.extend_from_slice(b"}]");
        write_structured(out, &tool.output, text);
        out.extend_from_slice(b",\"isError\":false}");
        jsonrpc::end_result(out);
        return;
    } else if let Some(kind) = binary_kind(media) {
        let data = STANDARD.encode(&answer.body);
        match kind {
            BinaryKind::Image | BinaryKind::Audio => {
                out.extend_from_slice(if kind == BinaryKind::Image {
                    b"{\"type\":\"image\",\"data\":"
                } else {
                    b"{\"type\":\"audio\",\"data\":"
                });
                jsonrpc::write_json_str(out, &data);
                out.extend_from_slice(b",\"mimeType\":");
                jsonrpc::write_json_str(out, media);
                out.push(b'}');
            }
            BinaryKind::Other => {
                out.extend_from_slice(b"{\"type\":\"resource\",\"resource\":{\"uri\":");
                jsonrpc::write_json_str(out, &format!("toolgate://{}/answer", tool.name));
                out.extend_from_slice(b",\"mimeType\":");
                jsonrpc::write_json_str(out, media);
                out.extend_from_slice(b",\"blob\":");
                jsonrpc::write_json_str(out, &data);
                out.extend_from_slice(b"}}");
            }
        }
    } else {
        out.extend_from_slice(b"{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(out, &String::from_utf8_lossy(&answer.body));
        out.push(b'}');
    }
    if answer.truncated {
        out.extend_from_slice(b",{\"type\":\"text\",\"text\":");
        jsonrpc::write_json_str(
            out,
            &format!(
                "[The answer was cut at {} bytes: it exceeded the gateway's response size limit.]",
                answer.body.len()
            ),
        );
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"isError\":false}");
    jsonrpc::end_result(out);
}

/// Writes `,"structuredContent":...` for a JSON answer when it can conform: wrapped when
/// the tool wraps, as is when it is an object.
fn write_structured(out: &mut Vec<u8>, output: &OutputMapping, json: &str) {
    if let Some(key) = &output.wrap {
        out.extend_from_slice(b",\"structuredContent\":{");
        jsonrpc::write_json_str(out, key);
        out.push(b':');
        out.extend_from_slice(json.as_bytes());
        out.push(b'}');
    } else if json.trim_start().starts_with('{') {
        out.extend_from_slice(b",\"structuredContent\":");
        out.extend_from_slice(json.as_bytes());
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BinaryKind {
    Image,
    Audio,
    Other,
}

/// Whether a media type is binary (not text-like), and which MCP content it becomes.
fn binary_kind(media: &str) -> Option<BinaryKind> {
    if media.starts_with("image/") && media != "image/svg+xml" {
        return Some(BinaryKind::Image);
    }
    if media.starts_with("audio/") {
        return Some(BinaryKind::Audio);
    }
    let textual = media.is_empty()
        || media.starts_with("text/")
        || media.ends_with("+json")
        || media.ends_with("+xml")
        || matches!(
            media,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/yaml"
                | "application/x-yaml"
                | "application/x-www-form-urlencoded"
                | "application/problem+json"
                | "application/graphql"
                | "image/svg+xml"
        );
    (!textual).then_some(BinaryKind::Other)
}
