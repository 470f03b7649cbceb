//! An upstream MCP server over the HTTP+SSE transport of the 2024-11-05 revision, for servers
//! that do not speak Streamable HTTP yet: one `GET` opens an event stream whose first event
//! (`endpoint`) says where to POST messages; answers come back on the stream. The gateway
//! keeps one such connection per upstream, shares it between callers (requests multiplexed
//! by id), and opens a new one (with a new handshake) when it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::Progress;
use super::wire::{self, InFlight, McpError};
use crate::auth::outbound::CredentialProvider;
use crate::mcp::LEGACY_VERSIONS;
use crate::targets::http::HttpClient;

/// One open event stream.
struct Connection {
    /// Where messages are posted.
    post: Uri,
    pending: Arc<InFlight>,
    alive: Arc<AtomicBool>,
    reader: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// An HTTP+SSE upstream.
pub(super) struct SseUpstream {
    url: Uri,
    http: HttpClient,
    credentials: Option<CredentialProvider>,
    current: tokio::sync::Mutex<Option<Arc<Connection>>>,
    next_id: AtomicU64,
    version: Mutex<Option<&'static str>>,
    /// Woken by the server's `notifications/tools/list_changed`.
    list_changed: Arc<tokio::sync::Notify>,
}

impl SseUpstream {
    pub(super) fn new(
        url: Uri,
        http: HttpClient,
        credentials: Option<CredentialProvider>,
        list_changed: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            list_changed,
            url,
            http,
            credentials,
            current: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            version: Mutex::new(None),
        }
    }

    /// The revision negotiated on the current connection.
    pub(super) fn version(&self) -> Option<&'static str> {
        *self.version.lock().expect("not poisoned")
    }

    /// Whether `url` serves the HTTP+SSE transport (its stream announces an endpoint).
    pub(super) async fn probe(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.connection())
            .await
            .is_ok_and(|c| c.is_ok())
    }

    /// Sends one request and returns its result.
    pub(super) async fn request(
        &self,
        method: &str,
        params: &[u8],
        timeout: Duration,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let work = async {
            let connection = self.connection().await?;
            self.call(&connection, method, Some(params), progress).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(McpError::Timeout(timeout)))
    }

    /// Sends request `method` and waits for its answer on the stream. When the wait is
    /// given up (the caller went away, or the timeout passed), the server is sent
    /// `notifications/cancelled`.
    async fn call(
        &self,
        connection: &Connection,
        method: &str,
        params: Option<&[u8]>,
        progress: Option<(u64, &Progress)>,
    ) -> Result<Box<RawValue>, McpError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let token = progress.map(|(t, _)| t);
        let rx = connection.pending.wait(id, progress);
        let mut guard = Cancel {
            upstream: self,
            connection,
            id,
            token,
            armed: method != "initialize",
        };
        let sent = self
            .post(
                &connection.post,
                wire::frame_with_progress(Some(id), method, params, None, token),
            )
            .await;
        if let Err(e) = sent {
            guard.armed = false;
            connection.pending.forget(id, token);
            return Err(e);
        }
        let outcome = rx.await;
        guard.armed = false;
        connection.pending.forget(id, token);
        outcome.unwrap_or_else(|_| {
            Err(McpError::Transport(
                "the event stream of the upstream ended".into(),
            ))
        })
    }

    /// POSTs one message to the endpoint the stream announced.
    async fn post(&self, to: &Uri, body: Vec<u8>) -> Result<(), McpError> {
        post_message(&self.http, self.credentials.as_ref(), to, body).await
    }

    /// The open connection, opened (and initialized) when there is none.
    async fn connection(&self) -> Result<Arc<Connection>, McpError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref()
            && c.alive.load(Ordering::Relaxed)
        {
            return Ok(c.clone());
        }
        *current = None;
        let connection = Arc::new(self.open().await?);
        let params = format!(
            "{{\"protocolVersion\":\"{}\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"toolgate\",\"version\":\"{}\"}}}}",
            LEGACY_VERSIONS[0],
            crate::VERSION
        );
        let result = self
            .call(&connection, "initialize", Some(params.as_bytes()), None)
            .await?;
        let version = serde_json::from_str::<serde_json::Value>(result.get())
            .ok()
            .and_then(|r| r.get("protocolVersion")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        let version = LEGACY_VERSIONS
            .iter()
            .copied()
            .find(|v| *v == version)
            .ok_or_else(|| {
                McpError::Protocol(format!(
                    "the server speaks protocol `{version}`, which the gateway does not"
                ))
            })?;
        *self.version.lock().expect("not poisoned") = Some(version);
        self.post(
            &connection.post,
            wire::frame(None, "notifications/initialized", None, None),
        )
        .await?;
        *current = Some(connection.clone());
        Ok(connection)
    }

    /// Opens the event stream and waits for its `endpoint` event.
    async fn open(&self) -> Result<Connection, McpError> {
        let builder = Request::get(&self.url).header(ACCEPT, "text/event-stream");
        let builder = super::http::with_credentials(builder, &self.url, self.credentials.as_ref())?;
        let request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| McpError::Protocol(e.to_string()))?;
        let response = self
            .http
            .request_streaming(request)
            .await
            .map_err(|e| McpError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(McpError::Status {
                status,
                excerpt: String::new(),
            });
        }
        let mut body = response.into_body();
        let pending: Arc<InFlight> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (endpoint_tx, endpoint_rx) = oneshot::channel::<String>();
        let (reader_pending, reader_alive) = (pending.clone(), alive.clone());
        let list_changed = self.list_changed.clone();
        let reader = tokio::spawn(async move {
            let mut endpoint_tx = Some(endpoint_tx);
            let mut buffer = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                buffer.extend_from_slice(&data);
                for (event, payload) in take_named_events(&mut buffer) {
                    if event == "endpoint" {
                        if let Some(tx) = endpoint_tx.take() {
                            let _ = tx.send(String::from_utf8_lossy(&payload).trim().to_string());
                        }
                        continue;
                    }
                    let Ok(message) = serde_json::from_slice::<wire::Incoming>(&payload) else {
                        continue;
                    };
                    if reader_pending.deliver(&message) {
                        continue;
                    }
                    if message.method.as_deref() == Some("notifications/tools/list_changed") {
                        list_changed.notify_one();
                    }
                }
            }
            reader_alive.store(false, Ordering::Relaxed);
            reader_pending.fail_all(&McpError::Transport(
                "the event stream of the upstream ended".into(),
            ));
        });
        let endpoint = endpoint_rx.await.map_err(|_| {
            McpError::Protocol("the event stream ended before its `endpoint` event".into())
        })?;
        let post = resolve(&self.url, &endpoint).ok_or_else(|| {
            McpError::Protocol(format!(
                "the `endpoint` event `{endpoint}` is not a usable URL"
            ))
        })?;
        Ok(Connection {
            post,
            pending,
            alive,
            reader: reader.abort_handle(),
        })
    }
}

/// POSTs one message to `to` with the target's static credentials.
async fn post_message(
    http: &HttpClient,
    credentials: Option<&CredentialProvider>,
    to: &Uri,
    body: Vec<u8>,
) -> Result<(), McpError> {
    let builder = Request::post(to).header(CONTENT_TYPE, "application/json");
    let builder = super::http::with_credentials(builder, to, credentials)?;
    let request = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| McpError::Protocol(e.to_string()))?;
    let response = http
        .request_streaming(request)
        .await
        .map_err(|e| McpError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(McpError::Status {
            status,
            excerpt: String::new(),
        })
    }
}

/// Tells the server that the gateway stopped waiting for request `id`, when dropped while
/// still armed.
struct Cancel<'a> {
    upstream: &'a SseUpstream,
    connection: &'a Connection,
    id: u64,
    token: Option<u64>,
    armed: bool,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        if !self.armed || !self.connection.pending.forget(self.id, self.token) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let u = self.upstream;
        let (http, credentials) = (u.http.clone(), u.credentials.clone());
        let (to, id) = (self.connection.post.clone(), self.id);
        runtime.spawn(async move {
            let _ = post_message(&http, credentials.as_ref(), &to, wire::cancelled(id)).await;
        });
    }
}

/// `endpoint` relative to the stream's URL (same scheme and authority).
fn resolve(base: &Uri, endpoint: &str) -> Option<Uri> {
    if endpoint.contains("://") {
        let uri: Uri = endpoint.parse().ok()?;
        // Messages go to the server that streams, never elsewhere.
        return (uri.authority() == base.authority()).then_some(uri);
    }
    let path = if endpoint.starts_with('/') {
        endpoint.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{endpoint}")
    };
    let mut parts = base.clone().into_parts();
    parts.path_and_query = path.parse().ok();
    Uri::from_parts(parts).ok()
}

/// Complete SSE events of `buffer` with their `event` name (`message` by default).
fn take_named_events(buffer: &mut Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let end = wire::find_event_end(buffer);
        let Some((end, separator)) = end else {
            return out;
        };
        let event: Vec<u8> = buffer.drain(..end + separator).collect();
        let mut name = String::from("message");
        let mut data = Vec::new();
        for line in event[..end].split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(v) = line.strip_prefix(b"event:") {
                name = String::from_utf8_lossy(v).trim().to_string();
            } else if let Some(v) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(v.strip_prefix(b" ").unwrap_or(v));
            }
        }
        if !data.is_empty() {
            out.push((name, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_stream_and_stay_on_its_server() {
        let base: Uri = "http://127.0.0.1:9/sse".parse().unwrap();
        assert_eq!(
            resolve(&base, "/messages/?session_id=ab")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9/messages/?session_id=ab"
        );
        assert_eq!(
            resolve(&base, "http://127.0.0.1:9/m").unwrap().to_string(),
            "http://127.0.0.1:9/m"
        );
        assert!(resolve(&base, "http://evil.example.com/m").is_none());
    }

    #[test]
    fn named_events() {
        let mut buffer = b"event: endpoint\r\ndata: /messages/?s=1\r\n\r\ndata: {}\n\n".to_vec();
        let events = take_named_events(&mut buffer);
        assert_eq!(
            events[0],
            ("endpoint".to_string(), b"/messages/?s=1".to_vec())
        );
        assert_eq!(events[1], ("message".to_string(), b"{}".to_vec()));
    }
}
