//! Notification streams: the handshake revisions' `GET /mcp` stream and 2026-07-28
//! `subscriptions/listen`. Each open stream is a small task that forwards
//! `notifications/tools/list_changed` when a reload changes the tool list, sends an SSE
//! comment every 15 s so that proxies keep the connection, and ends (with the listen
//! request's result, in 2026-07-28) when the gateway shuts down. No per-client state
//! survives a stream, so any replica can serve the next one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc, watch};

use super::jsonrpc::{ErrorKind, RpcError};
use super::{Call, McpEndpoint};
use crate::metrics::Metrics;

/// Most notification streams open at once; one more gets 503.
const MAX_STREAMS: usize = 4096;
/// Interval of the keep-alive comments.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// What the endpoint's streams listen to.
pub(super) struct Streams {
    /// The catalog generation; changes when the tool list does.
    tools: watch::Sender<u64>,
    /// Set once at shutdown.
    closing: watch::Sender<bool>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Streams {
    /// Streams starting at catalog `generation`.
    pub(super) fn new(generation: u64, metrics: Arc<Metrics>) -> Self {
        Self {
            tools: watch::Sender::new(generation),
            closing: watch::Sender::new(false),
            slots: Arc::new(Semaphore::new(MAX_STREAMS)),
            metrics,
        }
    }

    /// Tells every stream that the tool list is now `generation`.
    pub(super) fn tools_changed(&self, generation: u64) {
        self.tools.send_replace(generation);
    }

    /// Ends every stream, now and from now on.
    pub(super) fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// What one stream delivers.
pub(super) struct Listen {
    /// The `subscriptions/listen` request id (raw JSON), for 2026-07-28 streams; `None` for
    /// a handshake-era GET stream.
    subscription: Option<String>,
    /// Whether to forward `notifications/tools/list_changed`.
    tools: bool,
}

impl Listen {
    /// A handshake-era GET stream: every notification the server sends.
    pub(super) fn legacy() -> Self {
        Self {
            subscription: None,
            tools: true,
        }
    }
}

/// One SSE `message` event.
fn event(json: &str) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The `_meta` member that tags a subscription's messages, with a leading comma.
fn subscription_meta(id: &str) -> String {
    format!("\"_meta\":{{\"io.modelcontextprotocol/subscriptionId\":{id}}}")
}

/// Opens a stream: its first frames are queued now, the task feeds the rest.
pub(super) fn open(
    endpoint: &McpEndpoint,
    listen: Listen,
) -> Result<mpsc::Receiver<Bytes>, RpcError> {
    let streams = &endpoint.streams;
    if *streams.closing.borrow() {
        return Err(RpcError::new(
            ErrorKind::Overloaded,
            "the gateway is shutting down: reconnect to another replica",
        ));
    }
    let Ok(permit) = streams.slots.clone().try_acquire_owned() else {
        return Err(RpcError::new(
            ErrorKind::Overloaded,
            format!("too many notification streams are open (at most {MAX_STREAMS})"),
        ));
    };
    let (tx, rx) = mpsc::channel(8);
    if let Some(id) = &listen.subscription {
        let granted = if listen.tools {
            "{\"toolsListChanged\":true}"
        } else {
            "{}"
        };
        let ack = format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{{{},\"notifications\":{granted}}}}}",
            subscription_meta(id)
        );
        // The channel is empty: the first frame always fits.
        let _ = tx.try_send(event(&ack));
    } else {
        // Headers and a first byte promptly, so that the client knows the stream is up.
        let _ = tx.try_send(Bytes::from_static(b": stream open\n\n"));
    }
    let changed = match &listen.subscription {
        Some(id) => event(&format!(
            "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\",\"params\":{{{}}}}}",
            subscription_meta(id)
        )),
        None => event("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}"),
    };
    let finished = listen.subscription.as_ref().map(|id| {
        event(&format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"resultType\":\"complete\",{}}}}}",
            subscription_meta(id)
        ))
    });
    let mut tools = streams.tools.subscribe();
    let mut closing = streams.closing.subscribe();
    let gauge = streams.metrics.notification_streams.clone();
    let wants_tools = listen.tools;
    tokio::spawn(async move {
        let _permit = permit;
        gauge.inc();
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
        loop {
            tokio::select! {
                changed_now = tools.changed(), if wants_tools => {
                    if changed_now.is_err() || tx.send(changed.clone()).await.is_err() {
                        break;
                    }
                }
                () = async { drop(closing.wait_for(|c| *c).await) } => {
                    if let Some(last) = finished {
                        let _ = tx.send(last).await;
                    }
                    break;
                }
                () = tx.closed() => break,
                _ = keepalive.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        break;
                    }
                }
            }
        }
        gauge.dec();
    });
    Ok(rx)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListenParams {
    notifications: Option<Filter>,
}

/// The notification filter of `subscriptions/listen` (every field opt-in).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    tools_list_changed: bool,
}

/// `subscriptions/listen` (2026-07-28): acknowledges the subset of the filter this server
/// honors (tool list changes; its prompt and resource lists never change) and keeps the
/// response open as the stream.
pub(super) fn listen(
    endpoint: &McpEndpoint,
    call: &Call<'_>,
    params: Option<&RawValue>,
) -> Result<mpsc::Receiver<Bytes>, RpcError> {
    let params: ListenParams = params
        .map(|p| serde_json::from_str(p.get()))
        .transpose()
        .map_err(|e| RpcError::invalid_params(format!("invalid subscriptions/listen params: {e}")))?
        .unwrap_or(ListenParams {
            notifications: None,
        });
    let Some(filter) = params.notifications else {
        return Err(RpcError::invalid_params(
            "subscriptions/listen requires params.notifications (e.g. {\"toolsListChanged\": true})",
        ));
    };
    if !super::transport::accepts_sse(call.headers) {
        return Err(RpcError::new(
            ErrorKind::Refused(http::StatusCode::NOT_ACCEPTABLE),
            "subscriptions/listen answers with an SSE stream: the Accept header must list text/event-stream",
        ));
    }
    open(
        endpoint,
        Listen {
            subscription: Some(call.id.get().to_string()),
            tools: filter.tools_list_changed,
        },
    )
}
