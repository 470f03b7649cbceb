//! JSON-RPC as the gateway speaks it to upstream MCP servers: framing requests (with the
//! 2026-07-28 `_meta` spliced into the params), reading responses out of JSON bodies, SSE
//! streams and stdio lines, and the errors of an upstream exchange.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::Progress;

/// `_meta` of every 2026-07-28 request the gateway sends upstream.
pub(super) fn modern_meta() -> String {
    format!(
        "\"_meta\":{{\"io.modelcontextprotocol/protocolVersion\":\"{}\",\"io.modelcontextprotocol/clientCapabilities\":{{}},\"io.modelcontextprotocol/clientInfo\":{{\"name\":\"toolgate\",\"version\":\"{}\"}}}}",
        crate::mcp::MODERN_VERSION,
        crate::VERSION
    )
}

/// `meta` (the `"_meta":{...}` member of [`modern_meta`], or none) with the gateway's
/// `progressToken` for one call added.
fn meta_with_progress(meta: Option<&str>, token: u64) -> String {
    let rest = meta
        .and_then(|m| m.strip_prefix("\"_meta\":{"))
        .filter(|r| *r != "}");
    match rest {
        Some(rest) => format!("\"_meta\":{{\"progressToken\":{token},{rest}"),
        None => format!("\"_meta\":{{\"progressToken\":{token}}}"),
    }
}

/// [`frame`], with the gateway's `progressToken` for the call added to `meta` when given.
pub(super) fn frame_with_progress(
    id: Option<u64>,
    method: &str,
    params: Option<&[u8]>,
    meta: Option<&str>,
    progress: Option<u64>,
) -> Vec<u8> {
    match progress {
        Some(token) => frame(id, method, params, Some(&meta_with_progress(meta, token))),
        None => frame(id, method, params, meta),
    }
}

/// `notifications/cancelled` for request `id`, sent when the gateway stops waiting for it
/// (its caller went away or it timed out).
pub(super) fn cancelled(id: u64) -> Vec<u8> {
    let params = format!(
        "{{\"requestId\":{id},\"reason\":\"the gateway's caller cancelled the call or it timed out\"}}"
    );
    frame(
        None,
        "notifications/cancelled",
        Some(params.as_bytes()),
        None,
    )
}

/// A JSON-RPC request (or, without `id`, a notification) with `params` (a JSON object, or
/// none) and, when given, `meta` spliced in as its first member.
pub(super) fn frame(
    id: Option<u64>,
    method: &str,
    params: Option<&[u8]>,
    meta: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        64 + method.len() + params.map_or(0, <[u8]>::len) + meta.map_or(0, str::len),
    );
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    if let Some(id) = id {
        out.extend_from_slice(format!("\"id\":{id},").as_bytes());
    }
    out.extend_from_slice(b"\"method\":");
    crate::mcp::jsonrpc::write_json_str(&mut out, method);
    match (params, meta) {
        (None, None) => {}
        (None, Some(meta)) => {
            out.extend_from_slice(b",\"params\":{");
            out.extend_from_slice(meta.as_bytes());
            out.push(b'}');
        }
        (Some(params), None) => {
            out.extend_from_slice(b",\"params\":");
            out.extend_from_slice(params);
        }
        (Some(params), Some(meta)) => {
            // `params` is an object: `{` + meta + (`,` + the rest, unless it is empty).
            let inner = params
                .strip_prefix(b"{")
                .unwrap_or(params)
                .trim_ascii_start();
            out.extend_from_slice(b",\"params\":{");
            out.extend_from_slice(meta.as_bytes());
            if inner != b"}" {
                out.push(b',');
            }
            out.extend_from_slice(inner);
        }
    }
    out.push(b'}');
    out
}

/// A JSON-RPC error object from the upstream.
#[derive(Debug, Clone, Deserialize)]
pub struct RpcErrorObject {
    /// Its code.
    pub code: i64,
    /// Its message.
    #[serde(default)]
    pub message: String,
}

/// One message from the upstream, borrowing from its bytes.
#[derive(Deserialize)]
pub(super) struct Incoming<'a> {
    #[serde(default, borrow)]
    pub id: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub result: Option<&'a RawValue>,
    #[serde(default)]
    pub error: Option<RpcErrorObject>,
    #[serde(default, borrow)]
    pub params: Option<&'a RawValue>,
}

impl Incoming<'_> {
    /// The result or error of a response.
    fn outcome(&self) -> Result<Box<RawValue>, McpError> {
        match (self.result, &self.error) {
            (Some(result), _) => Ok(result.to_owned()),
            (None, Some(error)) => Err(McpError::Rpc(error.clone())),
            (None, None) => Err(McpError::Protocol(
                "a response with neither result nor error".into(),
            )),
        }
    }

    /// The params of a `notifications/progress` for `token`.
    pub(super) fn progress_for(&self, token: u64) -> Option<&RawValue> {
        #[derive(Deserialize)]
        struct Token<'a> {
            #[serde(rename = "progressToken", borrow)]
            token: &'a RawValue,
        }
        if self.id.is_some() || self.method.as_deref() != Some("notifications/progress") {
            return None;
        }
        let params = self.params?;
        let named: Token = serde_json::from_str(params.get()).ok()?;
        (named.token.get().trim_matches('"') == token.to_string()).then_some(params)
    }
}

/// The answer a request in flight waits for.
type Waiter = oneshot::Sender<Result<Box<RawValue>, McpError>>;

/// The requests in flight on a connection that carries many callers' requests (a stdio
/// process, an HTTP+SSE stream): each waits for its response by id, and its progress
/// notifications go to its caller by token.
#[derive(Default)]
pub(super) struct InFlight {
    waiting: Mutex<HashMap<u64, Waiter>>,
    progress: Mutex<HashMap<u64, Progress>>,
}

impl InFlight {
    /// Registers request `id` (and the progress of its call); the receiver gets its answer.
    pub(super) fn wait(
        &self,
        id: u64,
        progress: Option<(u64, &Progress)>,
    ) -> oneshot::Receiver<Result<Box<RawValue>, McpError>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("not poisoned").insert(id, tx);
        if let Some((token, relay)) = progress {
            self.progress
                .lock()
                .expect("not poisoned")
                .insert(token, relay.clone());
        }
        rx
    }

    /// Stops waiting for `id`; whether it was still waited for (no answer came).
    pub(super) fn forget(&self, id: u64, progress: Option<u64>) -> bool {
        if let Some(token) = progress {
            self.progress.lock().expect("not poisoned").remove(&token);
        }
        self.waiting
            .lock()
            .expect("not poisoned")
            .remove(&id)
            .is_some()
    }

    /// Routes one message read from the connection: a response to its caller, a progress
    /// notification to its call's stream. Whether it was one of those.
    pub(super) fn deliver(&self, message: &Incoming<'_>) -> bool {
        match (&message.method, message.id) {
            (None, Some(id)) => {
                if let Ok(id) = id.get().parse::<u64>()
                    && let Some(tx) = self.waiting.lock().expect("not poisoned").remove(&id)
                {
                    let _ = tx.send(message.outcome());
                }
                true
            }
            (Some(method), None) if method == "notifications/progress" => {
                let progress = self.progress.lock().expect("not poisoned");
                if !progress.is_empty()
                    && let Some(params) = message.params
                    && let Some((_, relay)) = progress
                        .iter()
                        .find(|(token, _)| message.progress_for(**token).is_some())
                {
                    relay.relay(params);
                }
                true
            }
            _ => false,
        }
    }

    /// Fails every request still waiting (the connection is gone).
    pub(super) fn fail_all(&self, error: &McpError) {
        let waiting: Vec<_> = self.waiting.lock().expect("not poisoned").drain().collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(error.clone()));
        }
        self.progress.lock().expect("not poisoned").clear();
    }
}

/// Why an exchange with an upstream MCP server gave no result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum McpError {
    /// Connecting, writing or reading failed (the process exited, the connection broke).
    #[error("could not reach the upstream MCP server: {0}")]
    Transport(String),
    /// No answer in time.
    #[error("the upstream MCP server did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The upstream answered with a JSON-RPC error.
    #[error("the upstream MCP server answered error {}: {}", .0.code, .0.message)]
    Rpc(RpcErrorObject),
    /// An HTTP status that carries no JSON-RPC answer.
    #[error("the upstream MCP server answered HTTP {status}{}", if .excerpt.is_empty() { String::new() } else { format!(": {}", .excerpt) })]
    Status {
        /// The status.
        status: u16,
        /// A bounded excerpt of the body.
        excerpt: String,
    },
    /// Something that is not MCP came back.
    #[error("the upstream MCP server broke the protocol: {0}")]
    Protocol(String),
    /// The target's credentials could not be obtained.
    #[error("cannot authenticate to the upstream MCP server: {0}")]
    Credentials(String),
}

impl McpError {
    /// Whether the upstream is down (as opposed to refusing this one request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, McpError::Transport(_) | McpError::Timeout(_))
    }
}

/// The result (or error) of the response to request `id` in `message`, if it is that
/// response.
pub(super) fn response_to(message: &[u8], id: u64) -> Option<Result<Box<RawValue>, McpError>> {
    let incoming: Incoming = serde_json::from_slice(message).ok()?;
    if incoming.method.is_some() || incoming.id?.get() != id.to_string() {
        return None;
    }
    Some(incoming.outcome())
}

/// Whether `message` is the server's `notifications/tools/list_changed`.
pub(super) fn is_tools_list_changed(message: &[u8]) -> bool {
    // Most messages are answers: skip the parse for them.
    message.windows(18).any(|w| w == b"tools/list_changed")
        && serde_json::from_slice::<Incoming>(message).is_ok_and(|m| {
            m.id.is_none() && m.method.as_deref() == Some("notifications/tools/list_changed")
        })
}

/// Takes the complete SSE events out of `buffer` and returns the `data` of each (lines
/// joined by `\n`); what follows the last blank line stays in the buffer.
pub(super) fn take_sse_events(buffer: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    loop {
        let end = find_event_end(buffer);
        let Some((end, separator)) = end else {
            return events;
        };
        let event: Vec<u8> = buffer.drain(..end + separator).collect();
        let mut data = Vec::new();
        for line in event[..end].split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(value) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
            }
        }
        if !data.is_empty() {
            events.push(data);
        }
    }
}

/// Where the first event of `buffer` ends (its blank-line separator's start and length).
pub(super) fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_splice_meta_into_params() {
        let meta = "\"_meta\":{}";
        assert_eq!(
            String::from_utf8(frame(
                Some(3),
                "tools/call",
                Some(br#"{"name":"a"}"#),
                Some(meta)
            ))
            .unwrap(),
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"_meta":{},"name":"a"}}"#
        );
        assert_eq!(
            String::from_utf8(frame(Some(1), "tools/list", Some(b"{}"), Some(meta))).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{}}}"#
        );
        assert_eq!(
            String::from_utf8(frame(None, "notifications/initialized", None, None)).unwrap(),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
        let value: serde_json::Value =
            serde_json::from_slice(&frame(Some(2), "ping", None, Some(meta))).unwrap();
        assert_eq!(value["params"], serde_json::json!({"_meta": {}}));
    }

    #[test]
    fn the_gateway_progress_token_goes_into_meta_and_is_recognized() {
        let modern = modern_meta();
        for meta in [None, Some(modern.as_str())] {
            let framed: serde_json::Value = serde_json::from_slice(&frame_with_progress(
                Some(3),
                "tools/call",
                Some(br#"{"name":"t","arguments":{}}"#),
                meta,
                Some(42),
            ))
            .unwrap();
            let params = &framed["params"];
            assert_eq!(params["_meta"]["progressToken"], 42, "{framed}");
            assert_eq!(params["name"], "t", "{framed}");
            assert_eq!(
                params["_meta"]
                    .get("io.modelcontextprotocol/protocolVersion")
                    .is_some(),
                meta.is_some(),
                "{framed}"
            );
        }
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":42,"progress":1}}"#;
        let incoming: Incoming = serde_json::from_slice(note).unwrap();
        assert!(incoming.progress_for(42).is_some());
        assert!(incoming.progress_for(4).is_none(), "another call's token");
        let answer: Incoming =
            serde_json::from_slice(br#"{"jsonrpc":"2.0","id":42,"result":{}}"#).unwrap();
        assert!(
            answer.progress_for(42).is_none(),
            "a response is no progress"
        );
    }

    #[tokio::test]
    async fn progress_reaches_the_caller_with_its_own_token_on_one_sse_line() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let token = RawValue::from_string(r#""client-7""#.into()).unwrap();
        let relay = Progress::new(&token, tx);
        let params = RawValue::from_string(
            "{\"progressToken\":42,\n \"progress\": 2,\"total\":4,\"message\":\"half\"}".into(),
        )
        .unwrap();
        relay.relay(&params);
        let event = String::from_utf8(rx.recv().await.unwrap().to_vec()).unwrap();
        let data = event
            .strip_prefix("event: message\ndata: ")
            .and_then(|d| d.strip_suffix("\n\n"))
            .expect("one SSE event");
        assert!(!data.contains('\n'), "{event:?}");
        let message: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(message["method"], "notifications/progress");
        assert_eq!(message["params"]["progressToken"], "client-7");
        assert_eq!(message["params"]["progress"], 2);
        assert_eq!(message["params"]["total"], 4);
        assert_eq!(message["params"]["message"], "half");
    }

    #[test]
    fn responses_are_matched_by_id() {
        let ok = br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#;
        assert_eq!(
            response_to(ok, 7).unwrap().unwrap().get(),
            r#"{"tools":[]}"#
        );
        assert!(response_to(ok, 8).is_none());
        let note = br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#;
        assert!(response_to(note, 7).is_none());
        let err = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Unknown tool"}}"#;
        assert!(matches!(response_to(err, 7), Some(Err(McpError::Rpc(e))) if e.code == -32602));
    }

    #[test]
    fn list_changed_notifications_are_told_apart() {
        assert!(is_tools_list_changed(
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#
        ));
        assert!(!is_tools_list_changed(
            br#"{"jsonrpc":"2.0","id":1,"result":{"text":"notifications/tools/list_changed"}}"#
        ));
        assert!(!is_tools_list_changed(
            br#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed"}"#
        ));
    }

    #[test]
    fn sse_events_are_split_on_blank_lines() {
        let mut buffer = b"event: message\ndata: {\"a\":1}\n\n: comment\n\ndata: {\"b\":\r\ndata: 2}\r\n\r\ndata: part".to_vec();
        let events = take_sse_events(&mut buffer);
        assert_eq!(events, vec![b"{\"a\":1}".to_vec(), b"{\"b\":\n2}".to_vec()]);
        assert_eq!(buffer, b"data: part");
    }
}
