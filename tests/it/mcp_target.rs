//! MCP server targets against a real MCP server written with the official Python SDK
//! (`tests/fixtures/mcp/python_server.py`, mcp 2.x from the interop venv), over Streamable
//! HTTP (with sessions, and stateless) and stdio: federated tools in every client revision,
//! an upstream killed and restarted, an expired upstream session, a crashed stdio process,
//! an upstream down at start, what the upstream sees of the client, and the HTTP+SSE
//! transport of 2024-11-05.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::support::{Gateway, all_lifecycles, args, client, free_port, text_of};

/// The interop venv's Python, which has the MCP SDK (`./test.sh` installs it first).
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/.venv/bin/python");
    assert!(
        python.exists(),
        "the MCP target tests need the Python MCP SDK in {}: run `tests/interop/run.sh --install-only` (./test.sh does)",
        python.display()
    );
    python
}

fn server_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp/python_server.py")
}

/// A Python MCP server over Streamable HTTP, killed when dropped.
struct PyServer {
    child: Child,
    port: u16,
    arguments: Vec<String>,
}

impl PyServer {
    /// Starts one on `port` and waits for uvicorn to say it listens.
    fn start(port: u16, stateless: bool) -> PyServer {
        let mut arguments = vec!["streamable-http".to_string(), port.to_string()];
        if stateless {
            arguments.push("--stateless".into());
        }
        PyServer::spawn(port, arguments)
    }

    /// Starts one speaking the HTTP+SSE transport of 2024-11-05 (stream at `/sse`).
    fn start_sse(port: u16) -> PyServer {
        PyServer::spawn(port, vec!["sse".to_string(), port.to_string()])
    }

    fn spawn(port: u16, arguments: Vec<String>) -> PyServer {
        let mut child = Command::new(python())
            .arg(server_script())
            .args(&arguments)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python MCP server");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .expect("the Python MCP server printed that it runs")
                .unwrap();
            if line.contains("Uvicorn running on") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        PyServer {
            child,
            port,
            arguments,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills it and starts a new one on the same port (its sessions are gone).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = PyServer::spawn(self.port, std::mem::take(&mut self.arguments));
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn call(
    gateway: &Gateway,
    tool: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let result = mcp
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap();
    mcp.cancel().await.unwrap();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tools_are_served_in_every_client_revision() {
    // Negotiated (the SDK speaks 2026-07-28), and each handshake revision with sessions.
    for (stateless, version) in [
        (true, None),
        (false, None),
        (false, Some("2025-11-25")),
        (false, Some("2025-06-18")),
        (false, Some("2025-03-26")),
    ] {
        let server = tokio::task::block_in_place(|| PyServer::start(free_port(), stateless));
        let pinned = version.map_or(String::new(), |v| format!(", protocol_version: \"{v}\""));
        let yaml = format!(
            "targets:\n  - name: py\n    mcp: {{ url: \"{}\"{pinned} }}\n",
            server.url()
        );
        let gateway = Gateway::start(&yaml, &[]).await;
        for (revision, lifecycle) in all_lifecycles() {
            let mcp = client(&gateway.url(), lifecycle).await;
            let tools = mcp.list_all_tools().await.unwrap();
            let add = tools
                .iter()
                .find(|t| t.name == "py___add")
                .unwrap_or_else(|| panic!("{revision}: {tools:?}"));
            assert_eq!(add.description.as_deref(), Some("Add two integers."));
            assert_eq!(
                add.output_schema.as_ref().unwrap()["properties"]["sum"]["type"],
                "integer",
                "{revision}: the upstream's outputSchema is kept"
            );
            let sum = mcp
                .call_tool(
                    CallToolRequestParams::new("py___add")
                        .with_arguments(args(json!({"a": 2, "b": 3}))),
                )
                .await
                .unwrap();
            assert_eq!(sum.is_error, Some(false), "{revision}: {sum:?}");
            assert_eq!(
                sum.structured_content,
                Some(json!({"sum": 5})),
                "{revision}"
            );
            let echo = mcp
                .call_tool(
                    CallToolRequestParams::new("py___echo")
                        .with_arguments(args(json!({"text": "héllo"}))),
                )
                .await
                .unwrap();
            assert_eq!(text_of(&echo), "héllo", "{revision}");
            // The upstream's own refusal is a tool error, not a protocol error.
            let bad = mcp
                .call_tool(
                    CallToolRequestParams::new("py___add")
                        .with_arguments(args(json!({"a": "two", "b": 3}))),
                )
                .await
                .unwrap();
            assert_eq!(
                bad.is_error,
                Some(true),
                "{revision}: arguments are validated first"
            );
            mcp.cancel().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_sees_the_gateway_not_the_client() {
    let server = tokio::task::block_in_place(|| PyServer::start(free_port(), false));
    let yaml = format!(
        "targets:\n  - name: py\n    mcp: {{ url: \"{}\", protocol_version: \"2025-11-25\" }}\n    credentials: {{ bearer: upstream-secret }}\n",
        server.url()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    let (status, _, body) = crate::support::post_raw(
        &gateway.url(),
        &[
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
            ("authorization", "Bearer the-callers-token"),
            ("mcp-session-id", "the-callers-session"),
            ("x-forwarded-for", "10.9.8.7"),
            ("cookie", "caller=1"),
        ],
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "py___headers", "arguments": {}}})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: Value =
        serde_json::from_str(body["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen["authorization"], "Bearer upstream-secret", "{seen}");
    assert!(
        seen["mcp-session-id"]
            .as_str()
            .is_some_and(|s| s != "the-callers-session"),
        "the gateway's own upstream session: {seen}"
    );
    assert!(
        seen.get("x-forwarded-for").is_none() && seen.get("cookie").is_none(),
        "{seen}"
    );
    assert!(
        seen["user-agent"]
            .as_str()
            .unwrap()
            .starts_with("toolgate/"),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_upstream_and_an_expired_session_are_recovered() {
    let mut server = tokio::task::block_in_place(|| PyServer::start(free_port(), false));
    let yaml = format!(
        // A handshake revision, so that the gateway holds an upstream session.
        "targets:\n  - name: py\n    mcp: {{ url: \"{}\", protocol_version: \"2025-11-25\" }}\n    timeout: 5s\n",
        server.url()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    let first = call(&gateway, "py___add", json!({"a": 1, "b": 1})).await;
    assert_eq!(first.structured_content, Some(json!({"sum": 2})));

    // Killed: calls fail as tool errors that say why, and the gateway keeps serving.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let down = call(&gateway, "py___add", json!({"a": 1, "b": 2})).await;
    assert_eq!(down.is_error, Some(true));
    assert!(
        text_of(&down).contains("could not reach"),
        "{}",
        text_of(&down)
    );
    let ready = reqwest::get(format!("http://{}/readyz", gateway.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "failure: open keeps the gateway ready");
    assert!(
        ready
            .text()
            .await
            .unwrap()
            .contains("degraded: upstream of target `py`")
    );

    // Back, with none of the old sessions: the gateway's session is renewed on the 404.
    tokio::task::block_in_place(|| server.restart());
    let again = call(&gateway, "py___add", json!({"a": 2, "b": 2})).await;
    assert_eq!(
        again.structured_content,
        Some(json!({"sum": 4})),
        "{again:?}"
    );
    // An expired session on a live server, likewise.
    tokio::task::block_in_place(|| server.restart());
    let renewed = call(&gateway, "py___add", json!({"a": 3, "b": 3})).await;
    assert_eq!(
        renewed.structured_content,
        Some(json!({"sum": 6})),
        "{renewed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_servers_are_spawned_supervised_and_shared() {
    let yaml = format!(
        "targets:\n  - name: local\n    mcp:\n      command: \"{}\"\n      args: [\"{}\", stdio]\n      env: {{ PYTHONUNBUFFERED: \"1\" }}\n",
        python().display(),
        server_script().display()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    let pid = |r: &rmcp::model::CallToolResult| text_of(r).parse::<u32>().expect("a pid");
    let first = pid(&call(&gateway, "local___pid", json!({})).await);
    assert_eq!(
        pid(&call(&gateway, "local___pid", json!({})).await),
        first,
        "one process for every caller"
    );
    let sum = call(&gateway, "local___add", json!({"a": 20, "b": 22})).await;
    assert_eq!(sum.structured_content, Some(json!({"sum": 42})));

    let crashed = call(&gateway, "local___crash", json!({})).await;
    assert_eq!(crashed.is_error, Some(true), "{crashed:?}");
    assert!(
        text_of(&crashed).contains("exited"),
        "{}",
        text_of(&crashed)
    );
    let second = pid(&call(&gateway, "local___pid", json!({})).await);
    assert_ne!(second, first, "started again on the next request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_down_at_start_does_not_stop_the_gateway() {
    let port = free_port();
    let yaml = format!(
        "targets:\n  - name: later\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\", refresh: 1s }}\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"http://127.0.0.1:9/api\" }}\n"
    );
    let gateway = Gateway::start(
        &yaml,
        &[("testapi.yaml", &crate::support::fixture("testapi.yaml"))],
    )
    .await;
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let names: Vec<String> = mcp
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("api___")), "{names:?}");
    let ready = reqwest::get(format!("http://{}/readyz", gateway.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        ready
            .text()
            .await
            .unwrap()
            .contains("degraded: upstream of target `later`")
    );

    // It comes up: the gateway notices (it retries), reloads, and announces the change.
    let stream = reqwest::Client::new()
        .get(gateway.url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    let _server = tokio::task::block_in_place(|| PyServer::start(port, false));
    super::rmcp_server::announced(&mut stream.bytes_stream()).await;
    mcp.cancel().await.unwrap();
    // A new client: the first one may keep its list for the advertised ttlMs.
    let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
    let names: Vec<String> = mcp
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"later___add".to_string()), "{names:?}");
    mcp.cancel().await.unwrap();

    // `failure: closed` refuses to load instead.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(
        &path,
        format!("targets:\n  - name: needed\n    mcp: {{ url: \"http://127.0.0.1:{}/mcp\", failure: closed }}\n", free_port()),
    )
    .unwrap();
    let error = tokio::task::spawn_blocking(move || toolgate::gateway::load(&path))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("target `needed`") && error.contains("could not reach"),
        "{error}"
    );
}

/// `@modelcontextprotocol/server-everything` (the reference server, npm, pinned in
/// `tests/interop/package-lock.json`), started with `mode`.
fn everything_script() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        script.exists(),
        "the MCP target tests need @modelcontextprotocol/server-everything in tests/interop/node_modules: run `tests/interop/run.sh --install-only` (./test.sh does)"
    );
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_server_everything_over_stdio_and_http() {
    let script = everything_script();
    let port = free_port();
    let mut http = Command::new("node")
        .arg(&script)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs server-everything");
    let stderr = http.stderr.take().unwrap();
    tokio::task::block_in_place(|| {
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next()
                .expect("server-everything says it listens")
                .unwrap();
            if line.contains("listening on port") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
    });
    let yaml = format!(
        "targets:\n  - name: stdio\n    mcp: {{ command: node, args: [\"{}\", stdio] }}\n  - name: web\n    mcp: {{ url: \"http://127.0.0.1:{port}/mcp\" }}\n",
        script.display()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    for target in ["stdio", "web"] {
        let mcp = client(&gateway.url(), all_lifecycles().remove(2).1).await;
        let tools = mcp.list_all_tools().await.unwrap();
        let structured = tools
            .iter()
            .find(|t| t.name == format!("{target}___get-structured-content"))
            .unwrap_or_else(|| {
                panic!(
                    "{target}: {:?}",
                    tools.iter().map(|t| &t.name).collect::<Vec<_>>()
                )
            });
        assert!(
            structured.output_schema.is_some(),
            "{target}: outputSchema kept"
        );
        let echo = mcp
            .call_tool(
                CallToolRequestParams::new(format!("{target}___echo"))
                    .with_arguments(args(json!({"message": "hi"}))),
            )
            .await
            .unwrap();
        assert_eq!(text_of(&echo), "Echo: hi", "{target}");
        let weather = mcp
            .call_tool(
                CallToolRequestParams::new(format!("{target}___get-structured-content"))
                    .with_arguments(args(json!({"location": "Chicago"}))),
            )
            .await
            .unwrap();
        assert_ne!(weather.is_error, Some(true), "{target}: {weather:?}");
        let content = weather
            .structured_content
            .expect("structuredContent passed on");
        assert!(content["temperature"].is_number(), "{target}: {content}");
        mcp.cancel().await.unwrap();
    }
    let _ = http.kill();
    let _ = http.wait();
}

/// One 2026-07-28 request to the gateway; the result (or the error).
async fn modern(gateway: &Gateway, method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = crate::support::modern_meta();
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map(str::to_string);
    let mut headers = crate::support::modern_headers(method, None);
    if let Some(n) = &name {
        headers.push(("mcp-name", n.as_str()));
    }
    let (_, _, body) = crate::support::post_raw(
        &gateway.url(),
        &headers,
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string(),
    )
    .await;
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_and_resources_of_upstreams_are_federated_under_their_target() {
    let yaml = format!(
        "targets:\n  - name: ref\n    mcp: {{ command: node, args: [\"{}\", stdio] }}\n",
        everything_script().display()
    );
    let gateway = Gateway::start(&yaml, &[]).await;

    let prompts = modern(&gateway, "prompts/list", json!({})).await;
    let names: Vec<&str> = prompts["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ref___args-prompt"), "{prompts}");
    let got = modern(
        &gateway,
        "prompts/get",
        json!({"name": "ref___args-prompt", "arguments": {"city": "Lyon"}}),
    )
    .await;
    let messages = got["result"]["messages"].to_string();
    assert!(messages.contains("Lyon"), "{got}");
    assert_eq!(got["result"]["resultType"], "complete");

    let resources = modern(&gateway, "resources/list", json!({})).await;
    let first = resources["result"]["resources"][0].clone();
    let uri = first["uri"].as_str().unwrap();
    assert!(uri.starts_with("toolgate://ref/demo://"), "{first}");
    let read = modern(&gateway, "resources/read", json!({"uri": uri})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], uri, "{read}");
    assert!(read["result"]["contents"][0]["text"].is_string(), "{read}");

    let templates = modern(&gateway, "resources/templates/list", json!({})).await;
    let template = templates["result"]["resourceTemplates"][0]["uriTemplate"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        template.starts_with("toolgate://ref/demo://"),
        "{templates}"
    );
    let filled = template.replace("{resourceId}", "7");
    let read = modern(&gateway, "resources/read", json!({"uri": filled})).await;
    assert_eq!(read["result"]["contents"][0]["uri"], filled, "{read}");

    let missing = modern(
        &gateway,
        "resources/read",
        json!({"uri": "file:///etc/passwd"}),
    )
    .await;
    assert_eq!(missing["error"]["code"], -32602, "{missing}");
    assert_eq!(missing["error"]["data"]["uri"], "file:///etc/passwd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_the_http_sse_transport_is_detected_or_chosen() {
    let mut server = tokio::task::block_in_place(|| PyServer::start_sse(free_port()));
    let url = format!("http://127.0.0.1:{}/sse", server.port);
    // Detected (the stream URL refuses Streamable HTTP), and chosen outright.
    for transport in ["", ", transport: sse"] {
        let yaml = format!(
            "targets:\n  - name: old\n    mcp: {{ url: \"{url}\"{transport} }}\n    credentials: {{ bearer: upstream-secret }}\n"
        );
        let gateway = Gateway::start(&yaml, &[]).await;
        for (revision, lifecycle) in all_lifecycles() {
            let mcp = client(&gateway.url(), lifecycle).await;
            let tools = mcp.list_all_tools().await.unwrap();
            assert!(
                tools.iter().any(|t| t.name == "old___add"),
                "{transport} {revision}: {tools:?}"
            );
            let sum = mcp
                .call_tool(
                    CallToolRequestParams::new("old___add")
                        .with_arguments(args(json!({"a": 40, "b": 2}))),
                )
                .await
                .unwrap();
            assert_eq!(
                sum.structured_content,
                Some(json!({"sum": 42})),
                "{revision}"
            );
            mcp.cancel().await.unwrap();
        }
        // Concurrent calls share the one event stream and each gets its own answer.
        let mcp = client(&gateway.url(), all_lifecycles().remove(0).1).await;
        let calls = (0..8).map(|i| {
            mcp.call_tool(
                CallToolRequestParams::new("old___echo")
                    .with_arguments(args(json!({"text": format!("call {i}")}))),
            )
        });
        let answers = futures_util::future::join_all(calls).await;
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(text_of(&answer.unwrap()), format!("call {i}"));
        }
        let seen: Value = serde_json::from_str(&text_of(
            &mcp.call_tool(CallToolRequestParams::new("old___headers"))
                .await
                .unwrap(),
        ))
        .unwrap();
        assert_eq!(seen["authorization"], "Bearer upstream-secret", "{seen}");
        mcp.cancel().await.unwrap();
        // A restarted server: the old stream ended; the next call opens a new one.
        tokio::task::block_in_place(|| server.restart());
        let sum = call(&gateway, "old___add", json!({"a": 1, "b": 2})).await;
        assert_eq!(sum.structured_content, Some(json!({"sum": 3})));
    }
}

/// Over the transports that share one connection between callers (stdio, HTTP+SSE) and
/// over a handshake session, the server's progress for a call reaches the client that
/// asked for it (with the client's token), and a call whose client goes away is cancelled
/// on the server (`notifications/cancelled`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_cancellation_cross_every_python_transport() {
    use super::rmcp_server::{raw_call, sse_messages};
    use futures_util::StreamExt;
    let (http, sse) = (free_port(), free_port());
    let _http = PyServer::start(http, false);
    let _sse = PyServer::start_sse(sse);
    let yaml = format!(
        "targets:\n  - name: local\n    mcp:\n      command: \"{}\"\n      args: [\"{}\", stdio]\n  - name: session\n    mcp: {{ url: \"http://127.0.0.1:{http}/mcp\", protocol_version: \"2025-11-25\" }}\n  - name: old\n    mcp: {{ url: \"http://127.0.0.1:{sse}/sse\", transport: sse }}\n",
        python().display(),
        server_script().display()
    );
    let gateway = Gateway::start(&yaml, &[]).await;
    for (n, target) in ["local", "session", "old"].into_iter().enumerate() {
        let token = n as u32 * 10;
        let response = raw_call(
            &gateway,
            n % 2 == 0,
            &format!("{target}___steps"),
            json!({"n": 3}),
            Some(token),
        )
        .await;
        let messages = sse_messages(&response.text().await.unwrap());
        let progress: Vec<_> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .map(|m| {
                (
                    m["params"]["progressToken"].clone(),
                    m["params"]["progress"].as_f64(),
                )
            })
            .collect();
        let mine = json!(format!("p-{token}"));
        assert_eq!(
            progress,
            [
                (mine.clone(), Some(1.0)),
                (mine.clone(), Some(2.0)),
                (mine, Some(3.0))
            ],
            "{target}: {messages:?}"
        );
        assert_eq!(
            messages.last().unwrap()["result"]["content"][0]["text"],
            "done 3",
            "{target}: {messages:?}"
        );

        // `hold` reports once and waits; the client reads that and goes away.
        let response = raw_call(
            &gateway,
            true,
            &format!("{target}___hold"),
            json!({}),
            Some(token + 1),
        )
        .await;
        let mut stream = response.bytes_stream();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), stream.next())
            .await
            .expect("hold reports within 30 s")
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&first).contains("holding"),
            "{first:?}"
        );
        drop(stream);
        // Each server counts its own cancellations (stdio: the one shared process).
        let seen = call(&gateway, &format!("{target}___cancelled"), json!({"n": 1})).await;
        assert_eq!(
            text_of(&seen),
            "1",
            "{target}: the server saw the cancellation"
        );
    }
}
