//! An MCP server written with the Rust SDK (`rmcp`), served by the test over Streamable HTTP
//! on 127.0.0.1 and federated by the gateway: in 2026-07-28 (stateless, notifications on
//! `subscriptions/listen`) and in a handshake revision (a session, notifications on its
//! `GET` stream). Its tools keep their metadata; its `notifications/tools/list_changed`
//! reaches the gateway's clients without waiting for `refresh`; a restarted server (which
//! forgets every session) is recovered.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ServerCapabilities,
    ServerConfig, SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::mcp_target::call;
use crate::support::{Gateway, all_lifecycles, args, client, modern_headers, modern_meta, text_of};

/// The server: a tool list that `grow` extends (announcing it), shared by its sessions.
#[derive(Clone)]
struct Shelf {
    /// Speak only the handshake revisions (so the gateway holds a session).
    legacy: bool,
    tools: Arc<Mutex<Vec<Value>>>,
    /// Bumped by `grow`; every open subscription announces it.
    changes: watch::Sender<u64>,
    /// Open `subscriptions/listen` streams.
    listening: watch::Sender<usize>,
    /// Tools grown so far, across restarts (each restart's list differs from the last).
    grown: Arc<AtomicUsize>,
    /// Calls of `slow` holding until they are cancelled, and those cancelled so far.
    held: watch::Sender<usize>,
    cancelled: watch::Sender<usize>,
    /// `tools/list` requests answered.
    lists: Arc<AtomicUsize>,
}

fn tool_list() -> Vec<Value> {
    vec![
        json!({
            "name": "add",
            "title": "Add",
            "description": "Adds two integers.",
            "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]},
            "outputSchema": {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]},
            "annotations": {"readOnlyHint": true, "idempotentHint": true},
            "icons": [{"src": "https://example.com/add.png", "mimeType": "image/png"}],
            "_meta": {"example.com/owner": "maths"}
        }),
        json!({
            "name": "grow",
            "description": "Adds a tool and announces the change.",
            "inputSchema": {"type": "object"}
        }),
        json!({
            "name": "slow",
            "description": "Reports `steps` progress notifications; with `hold`, then waits until cancelled.",
            "inputSchema": {"type": "object", "properties": {"steps": {"type": "integer"}, "hold": {"type": "boolean"}}}
        }),
    ]
}

impl ServerHandler for Shelf {
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        if self.legacy {
            Cow::Borrowed(&[
                ProtocolVersion::V_2025_11_25,
                ProtocolVersion::V_2025_06_18,
                ProtocolVersion::V_2025_03_26,
            ])
        } else {
            Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.changes.subscribe();
        self.listening.send_modify(|n| *n += 1);
        loop {
            tokio::select! {
                () = context.cancelled() => break,
                changed = changes.changed() => {
                    if changed.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        break;
                    }
                }
            }
        }
        self.listening.send_modify(|n| *n -= 1);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let tools = self.tools.lock().unwrap().clone();
        Ok(serde_json::from_value(json!({ "tools": tools })).unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = request.arguments.unwrap_or_default();
        let result = match request.name.as_ref() {
            "add" => {
                let sum =
                    arguments["a"].as_i64().unwrap_or(0) + arguments["b"].as_i64().unwrap_or(0);
                json!({"content": [{"type": "text", "text": sum.to_string()}], "structuredContent": {"sum": sum}})
            }
            "grow" => {
                let n = self.grown.fetch_add(1, Ordering::Relaxed) + 1;
                let name = format!("grown_{n}");
                self.tools.lock().unwrap().push(json!({
                    "name": name, "description": "A tool that was not there at first.",
                    "inputSchema": {"type": "object"}
                }));
                self.changes.send_modify(|g| *g += 1);
                if self.legacy {
                    // Not part of a request's answer: it goes on the session's GET stream.
                    context.peer.notify_tool_list_changed().await.unwrap();
                }
                json!({"content": [{"type": "text", "text": name}]})
            }
            "slow" => {
                let steps = arguments.get("steps").and_then(Value::as_u64).unwrap_or(0);
                if let Some(token) = context.meta.get_progress_token() {
                    for i in 1..=steps {
                        let update = ProgressNotificationParam::new(token.clone(), i as f64)
                            .with_total(steps as f64)
                            .with_message(format!("step {i}"));
                        context.peer.notify_progress(update).await.unwrap();
                    }
                }
                if arguments.get("hold") == Some(&Value::Bool(true)) {
                    self.held.send_modify(|n| *n += 1);
                    context.ct.cancelled().await;
                    self.cancelled.send_modify(|n| *n += 1);
                    return Err(ErrorData::internal_error("cancelled", None));
                }
                json!({"content": [{"type": "text", "text": format!("done {steps}")}]})
            }
            name if name.starts_with("grown_") => {
                json!({"content": [{"type": "text", "text": format!("{name} here")}]})
            }
            other => {
                return Err(ErrorData::invalid_params(format!("no tool {other}"), None));
            }
        };
        Ok(serde_json::from_value::<CallToolResult>(result)
            .unwrap()
            .into())
    }
}

/// A running server; dropping it (or `stop`) closes its listener and every connection.
struct RmcpServer {
    task: tokio::task::JoinHandle<()>,
    shelf: Shelf,
    /// `GET` requests seen (notification streams of sessions).
    gets: watch::Sender<usize>,
}

impl RmcpServer {
    async fn start(port: u16, legacy: bool, grown: Arc<AtomicUsize>) -> Self {
        let shelf = Shelf {
            legacy,
            tools: Arc::new(Mutex::new(tool_list())),
            changes: watch::Sender::new(0),
            listening: watch::Sender::new(0),
            grown,
            held: watch::Sender::new(0),
            cancelled: watch::Sender::new(0),
            lists: Arc::default(),
        };
        let factory = shelf.clone();
        let service: StreamableHttpService<Shelf, LocalSessionManager> = StreamableHttpService::new(
            move || Ok(factory.clone()),
            Default::default(),
            StreamableHttpServerConfig::default().with_legacy_session_mode(true),
        );
        let gets = watch::Sender::new(0usize);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let seen = gets.clone();
        let task = tokio::spawn(async move {
            // Connections live in the set, so that aborting this task ends them too.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (service, seen) = (service.clone(), seen.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            if request.method() == http::Method::GET {
                                seen.send_modify(|n| *n += 1);
                            }
                            let mut service = service.clone();
                            tower::Service::call(&mut service, request)
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self { task, shelf, gets }
    }

    /// Waits until the gateway listens to this server's notifications.
    async fn listened_to(&self) {
        let wait = async {
            if self.shelf.legacy {
                let _ = self.gets.subscribe().wait_for(|n| *n >= 1).await;
            } else {
                let _ = self.shelf.listening.subscribe().wait_for(|n| *n >= 1).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the gateway opens a notification stream within 30 s");
    }

    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Reads the gateway's notification stream until a `notifications/tools/list_changed`.
pub(crate) async fn announced(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
) {
    let mut seen = String::new();
    while !seen.contains("notifications/tools/list_changed") {
        let chunk = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("a list_changed within 30 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn tool_names(gateway: &Gateway) -> Vec<String> {
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let names = mcp
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    mcp.cancel().await.unwrap();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_server_is_federated_with_its_notifications_in_both_eras() {
    for legacy in [false, true] {
        let era = if legacy { "handshake" } else { "2026-07-28" };
        let port = crate::support::free_port();
        let grown = Arc::new(AtomicUsize::new(0));
        let server = RmcpServer::start(port, legacy, grown.clone()).await;
        // `refresh: 1h`: any change seen below came from the server's notification.
        let yaml = format!(
            "targets:\n  - name: rs\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\", refresh: 1h }}\n"
        );
        let gateway = Gateway::start(&yaml, &[]).await;
        for (revision, lifecycle) in all_lifecycles() {
            let mcp = client(&gateway.url(), lifecycle).await;
            let tools = mcp.list_all_tools().await.unwrap();
            let add = tools
                .iter()
                .find(|t| t.name == "rs___add")
                .unwrap_or_else(|| panic!("{era} {revision}: {tools:?}"));
            let add = serde_json::to_value(add).unwrap();
            assert_eq!(add["title"], "Add", "{era} {revision}: {add}");
            assert_eq!(add["annotations"]["readOnlyHint"], true, "{add}");
            assert_eq!(add["outputSchema"]["properties"]["sum"]["type"], "integer");
            if revision != "2025-03-26" {
                assert_eq!(
                    add["icons"][0]["src"], "https://example.com/add.png",
                    "{revision}: {add}"
                );
            }
            assert_eq!(
                add["_meta"]["example.com/owner"], "maths",
                "{revision}: {add}"
            );
            let sum = mcp
                .call_tool(
                    CallToolRequestParams::new("rs___add")
                        .with_arguments(args(json!({"a": 2, "b": 3}))),
                )
                .await
                .unwrap();
            assert_eq!(
                sum.structured_content,
                Some(json!({"sum": 5})),
                "{era} {revision}"
            );
            mcp.cancel().await.unwrap();
        }

        // The server announces a new tool; the gateway re-lists and tells its own clients.
        // Then the server restarts (forgetting every session): the gateway recovers the
        // calls and listens again, so the second announcement arrives too.
        let mut server = server;
        for round in 1..=2 {
            let mut stream = reqwest::Client::new()
                .get(gateway.url())
                .header("accept", "text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .send()
                .await
                .unwrap()
                .bytes_stream();
            if round == 2 {
                server.stop().await;
                server = RmcpServer::start(port, legacy, grown.clone()).await;
                let sum = call(&gateway, "rs___add", json!({"a": 1, "b": 2})).await;
                assert_eq!(
                    sum.structured_content,
                    Some(json!({"sum": 3})),
                    "{era}: {sum:?}"
                );
            }
            server.listened_to().await;
            let name = text_of(&call(&gateway, "rs___grow", json!({})).await);
            assert_eq!(name, format!("grown_{}", grown.load(Ordering::Relaxed)));
            announced(&mut stream).await;
            let names = tool_names(&gateway).await;
            let federated = format!("rs___{name}");
            assert!(names.contains(&federated), "{era} round {round}: {names:?}");
            assert_eq!(
                text_of(&call(&gateway, &federated, json!({})).await),
                format!("{name} here")
            );
        }
        server.stop().await;
    }
}

/// `listing: dynamic`: every `tools/list` asks the server, so a tool it adds or removes
/// without announcing anything is seen at once (and a tool never listed can be called),
/// while a gateway with a `listing: default` target of the same server keeps its copy until
/// `refresh`. The reload that serves the change re-lists only that server: another MCP
/// target of the gateway is kept as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamically_listed_server_is_asked_on_every_list() {
    for legacy in [false, true] {
        let era = if legacy { "handshake" } else { "2026-07-28" };
        let port = crate::support::free_port();
        let server = RmcpServer::start(port, legacy, Arc::new(AtomicUsize::new(0))).await;
        let other_port = crate::support::free_port();
        let other = RmcpServer::start(other_port, legacy, Arc::new(AtomicUsize::new(0))).await;
        let yaml = format!(
            "targets:\n  - name: live\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\", listing: dynamic, refresh: 1h }}\n"
        );
        let gateway = Gateway::start(
            &format!("{yaml}  - name: other\n    mcp: {{ url: \"http://127.0.0.1:{other_port}/mcp\", refresh: 1h }}\n"),
            &[],
        )
        .await;
        let copy = Gateway::start(&yaml.replace("listing: dynamic, ", ""), &[]).await;
        let other_lists = other.shelf.lists.load(Ordering::Relaxed);
        let quiet = |name: &str| {
            server.shelf.tools.lock().unwrap().push(json!({
                "name": name, "description": "Added without a notification.",
                "inputSchema": {"type": "object"}
            }));
        };
        quiet("grown_listed");
        let names = tool_names(&gateway).await;
        assert!(
            names.contains(&"live___grown_listed".to_string()),
            "{era}: {names:?}"
        );
        let copied = tool_names(&copy).await;
        assert!(
            copied.contains(&"live___add".to_string())
                && !copied.contains(&"live___grown_listed".to_string()),
            "{era}: the default listing keeps its copy: {copied:?}"
        );
        assert_eq!(
            text_of(&call(&gateway, "live___grown_listed", json!({})).await),
            "grown_listed here"
        );
        assert!(
            names.contains(&"other___add".to_string()),
            "{era}: {names:?}"
        );
        assert_eq!(
            other.shelf.lists.load(Ordering::Relaxed),
            other_lists,
            "{era}: the reload kept the unchanged target without asking its server"
        );

        // Called before any list shows it: the unknown name makes the gateway ask.
        quiet("grown_unlisted");
        assert_eq!(
            text_of(&call(&gateway, "live___grown_unlisted", json!({})).await),
            "grown_unlisted here",
            "{era}"
        );

        // Removed upstream: gone from the next list, and calling it is an unknown tool.
        server
            .shelf
            .tools
            .lock()
            .unwrap()
            .retain(|t| t["name"] != "grown_listed");
        let names = tool_names(&gateway).await;
        assert!(
            !names.contains(&"live___grown_listed".to_string()),
            "{era}: {names:?}"
        );
        assert!(
            names.contains(&"live___add".to_string()),
            "{era}: {names:?}"
        );
        let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
        let error = mcp
            .call_tool(CallToolRequestParams::new("live___grown_listed"))
            .await
            .expect_err("a removed tool is unknown");
        assert!(error.to_string().contains("Unknown tool"), "{era}: {error}");
        mcp.cancel().await.unwrap();
        server.stop().await;
        other.stop().await;
    }
}

/// Waits (30 s at most) until `counter` reaches `n`.
async fn reaches(counter: &watch::Sender<usize>, n: usize, what: &str) {
    tokio::time::timeout(
        Duration::from_secs(30),
        counter.subscribe().wait_for(|c| *c >= n),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} within 30 s"))
    .unwrap();
}

/// A raw `tools/call` of `tool` through the gateway, in the client revision `modern` or
/// 2025-11-25, asking for progress with token `p-<n>` when `token` is given.
pub(crate) async fn raw_call(
    gateway: &Gateway,
    modern: bool,
    tool: &str,
    arguments: Value,
    token: Option<u32>,
) -> reqwest::Response {
    let mut meta = if modern { modern_meta() } else { json!({}) };
    if let Some(n) = token {
        meta["progressToken"] = json!(format!("p-{n}"));
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta}});
    let headers = if modern {
        modern_headers("tools/call", Some(tool))
    } else {
        vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2025-11-25"),
        ]
    };
    let mut request = reqwest::Client::new().post(gateway.url());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    request.body(body.to_string()).send().await.unwrap()
}

/// The JSON messages of an SSE body.
pub(crate) fn sse_messages(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            serde_json::from_str(&data).ok()
        })
        .collect()
}

/// A client that asks for progress (`_meta.progressToken`) gets the upstream's progress
/// notifications, with its own token, on the SSE answer before the result. A call the
/// gateway stops waiting for is cancelled upstream: when its client closes the stream, and
/// when the target's timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_relayed_and_cancellation_reaches_the_upstream() {
    for legacy in [false, true] {
        let era = if legacy { "handshake" } else { "2026-07-28" };
        let port = crate::support::free_port();
        let server = RmcpServer::start(port, legacy, Arc::new(AtomicUsize::new(0))).await;
        let yaml = format!(
            "targets:\n  - name: rs\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\" }}\n  - name: short\n    timeout: 1s\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\" }}\n"
        );
        let gateway = Gateway::start(&yaml, &[]).await;
        for (n, modern) in [(1, true), (2, false)] {
            let client_era = if modern { "2026-07-28" } else { "2025-11-25" };
            let response =
                raw_call(&gateway, modern, "rs___slow", json!({"steps": 3}), Some(n)).await;
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "text/event-stream",
                "{era} upstream, {client_era} client"
            );
            let messages = sse_messages(&response.text().await.unwrap());
            let progress: Vec<_> = messages
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .collect();
            assert_eq!(progress.len(), 3, "{era}/{client_era}: {messages:?}");
            for (i, p) in progress.iter().enumerate() {
                let step = i as u64 + 1;
                assert_eq!(p["params"]["progressToken"], format!("p-{n}"), "{p}");
                assert_eq!(p["params"]["progress"], step as f64, "{p}");
                assert_eq!(p["params"]["total"], 3.0, "{p}");
                assert_eq!(p["params"]["message"], format!("step {step}"), "{p}");
            }
            let last = messages.last().unwrap();
            assert_eq!(
                last["id"], 7,
                "{era}/{client_era}: the response comes last: {messages:?}"
            );
            assert_eq!(last["result"]["content"][0]["text"], "done 3", "{last}");
        }
        // Without a progress token the answer is plain JSON, as before.
        let response = raw_call(&gateway, true, "rs___slow", json!({"steps": 2}), None).await;
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"]["content"][0]["text"], "done 2", "{body}");

        // The client closes the stream: the upstream's handler is cancelled.
        let response = raw_call(
            &gateway,
            true,
            "rs___slow",
            json!({"steps": 1, "hold": true}),
            Some(3),
        )
        .await;
        let mut stream = response.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the first progress within 30 s")
            .unwrap()
            .unwrap();
        assert!(String::from_utf8_lossy(&first).contains("p-3"), "{first:?}");
        reaches(&server.shelf.held, 1, "the call held upstream").await;
        drop(stream);
        reaches(
            &server.shelf.cancelled,
            1,
            &format!("{era}: the upstream told of the closed stream"),
        )
        .await;

        // A plain call (no progress asked) whose client goes away before the answer.
        let url = gateway.url();
        let client_task = tokio::spawn(async move {
            let body = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                "params": {"name": "rs___slow", "arguments": {"hold": true}, "_meta": modern_meta()}});
            let mut request = reqwest::Client::new().post(url);
            for (k, v) in modern_headers("tools/call", Some("rs___slow")) {
                request = request.header(k, v);
            }
            let _ = request.body(body.to_string()).send().await;
        });
        reaches(&server.shelf.held, 2, "the plain call held upstream").await;
        client_task.abort();
        reaches(
            &server.shelf.cancelled,
            2,
            &format!("{era}: the upstream told of the client gone"),
        )
        .await;

        // The target's timeout passes: the gateway answers isError and cancels upstream.
        let timed_out = call(&gateway, "short___slow", json!({"hold": true})).await;
        assert_eq!(timed_out.is_error, Some(true), "{timed_out:?}");
        assert!(
            text_of(&timed_out).contains("did not answer"),
            "{timed_out:?}"
        );
        reaches(
            &server.shelf.cancelled,
            2,
            &format!("{era}: the upstream told of the timeout"),
        )
        .await;
        server.stop().await;
    }
}

/// A handshake-era client cancels by `notifications/cancelled` (the gateway keeps no
/// session, so the call is found by the authenticated caller and the request id): its
/// call ends with a cancellation answer and the upstream's handler is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_client_cancels_its_own_call_by_notification() {
    const RESOURCE: &str = "https://gateway.test/mcp";
    let idp = crate::support::idp::Idp::start().await;
    let port = crate::support::free_port();
    let server = RmcpServer::start(port, true, Arc::new(AtomicUsize::new(0))).await;
    let yaml = format!(
        "inbound:\n  resource: {RESOURCE}\n  jwt:\n    discovery_url: {}\n    audiences: [{RESOURCE}]\ntargets:\n  - name: rs\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\" }}\n",
        idp.discovery_url()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    let token = idp.token("agent-1", RESOURCE, "").await;
    let post = |body: Value| {
        reqwest::Client::new()
            .post(gateway.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
    };
    let held = post(json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
        "params": {"name": "rs___slow", "arguments": {"hold": true}}}));
    let held = tokio::spawn(async move { held.await.unwrap().text().await.unwrap() });
    reaches(&server.shelf.held, 1, "the call held upstream").await;
    let cancel = post(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 41, "reason": "the user pressed stop"}}),
    )
    .await
    .unwrap();
    assert_eq!(cancel.status(), 202);
    let answer = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .expect("the cancelled call is answered within 30 s")
        .unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["id"], 41, "{answer}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("cancelled by its client"),
        "{answer}"
    );
    reaches(
        &server.shelf.cancelled,
        1,
        "the upstream's handler cancelled",
    )
    .await;
    server.stop().await;
}
