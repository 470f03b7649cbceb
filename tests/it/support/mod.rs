//! Test harness: a recording upstream REST server and the gateway, both on 127.0.0.1 with
//! ephemeral ports, talking over real sockets; paths of the fixtures and the vendored corpus.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

pub mod browser;
pub mod idp;
pub mod process;
pub mod redis;

/// One request the upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, exactly as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> &str {
        self.uri.split_once('?').map_or("", |(_, q)| q)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("upstream received JSON")
    }
}

/// What the upstream answers.
pub enum Answer {
    Json(u16, Value),
    Raw(u16, &'static str, Vec<u8>),
    /// JSON with extra response headers.
    JsonWith(u16, Value, Vec<(&'static str, &'static str)>),
    /// Any body with extra response headers.
    RawWith(
        u16,
        &'static str,
        Vec<u8>,
        Vec<(&'static str, &'static str)>,
    ),
    /// A 200 body streamed as these frames (no `content-length`).
    Stream(&'static str, Vec<Bytes>),
    /// Never answers (for timeouts).
    Hang,
    /// Answers once the notify fires (for draining).
    After(Arc<Notify>, Value),
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

type Body = BoxBody<Bytes, Infallible>;

/// A REST server on 127.0.0.1 (HTTP/1.1 and h2c) that records every request, before it
/// answers, in arrival order.
pub struct Upstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    arrived: Arc<Notify>,
    /// How many requests [`Upstream::next`] has handed out.
    taken: std::sync::atomic::AtomicUsize,
}

impl Upstream {
    pub async fn start(handler: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Upstream {
        let handler: Handler = Arc::new(handler);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (reqs, notify) = (requests.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, reqs, notify) = (handler.clone(), reqs.clone(), notify.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (handler, reqs, notify) =
                            (handler.clone(), reqs.clone(), notify.clone());
                        async move { Ok::<_, Infallible>(respond(req, &*handler, &reqs, &notify).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            requests,
            arrived,
            taken: Default::default(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.arrived.notified();
            if self.count() >= n {
                return;
            }
            notified.await;
        }
    }

    /// The next request not yet handed out by this method, waiting (at most 5 s) for it to
    /// arrive.
    pub async fn next(&self) -> Recorded {
        use std::sync::atomic::Ordering;
        let i = self.taken.fetch_add(1, Ordering::SeqCst);
        tokio::time::timeout(std::time::Duration::from_secs(5), self.wait_for(i + 1))
            .await
            .unwrap_or_else(|_| panic!("the upstream received request #{}", i + 1));
        self.requests.lock().unwrap()[i].clone()
    }

    /// Requests that arrived but were not handed out by [`Upstream::next`].
    pub fn unseen(&self) -> usize {
        self.count() - self.taken.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

async fn respond(
    req: Request<Incoming>,
    handler: &(dyn Fn(&Recorded) -> Answer + Send + Sync),
    requests: &Mutex<Vec<Recorded>>,
    arrived: &Notify,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body,
    };
    let answer = handler(&recorded);
    // A held answer waits from before the request is visible as arrived, so that a test
    // that saw it arrive and then releases it can never miss the release.
    let release = match &answer {
        Answer::After(n, _) => Some(n.clone()),
        _ => None,
    };
    let released = release.as_ref().map(|n| n.notified());
    tokio::pin!(released);
    if let Some(r) = released.as_mut().as_pin_mut() {
        r.enable();
    }
    requests.lock().unwrap().push(recorded);
    arrived.notify_waiters();
    let (mut response, extra) = match answer {
        Answer::Json(s, v) => (full(s, "application/json", v.to_string()), Vec::new()),
        Answer::JsonWith(s, v, h) => (full(s, "application/json", v.to_string()), h),
        Answer::Raw(s, ct, b) => (full(s, ct, b), Vec::new()),
        Answer::RawWith(s, ct, b, h) => (full(s, ct, b), h),
        Answer::Stream(ct, frames) => {
            let frames = frames
                .into_iter()
                .map(|f| Ok::<_, Infallible>(Frame::data(f)));
            let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
            let response = Response::builder()
                .header("content-type", ct)
                .body(body)
                .unwrap();
            (response, Vec::new())
        }
        Answer::Hang => std::future::pending().await,
        Answer::After(_, v) => {
            if let Some(r) = released.as_pin_mut() {
                r.await;
            }
            (full(200, "application/json", v.to_string()), Vec::new())
        }
    };
    for (k, v) in extra {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

/// A running gateway on 127.0.0.1:<ephemeral>.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// The vendored public OpenAPI documents (`tests/corpus`, see its README).
pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// A document of the vendored corpus, e.g. `corpus("real/openai.yaml")`.
pub fn corpus(relative: &str) -> PathBuf {
    Path::new(CORPUS).join(relative)
}

/// A loopback port free now (for a process that must be told its port, or be restarted on
/// the same one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One of our own fixtures under `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

impl Gateway {
    /// Writes `yaml` as gateway.yaml into a temp dir (with `files` copied beside it), loads
    /// it and serves it.
    pub async fn start(yaml: &str, files: &[(&str, &Path)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        for (name, source) in files {
            std::fs::copy(source, dir.path().join(name)).unwrap();
        }
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).unwrap();
        // On a blocking thread, as the gateway loads: MCP targets connect at load.
        let path = config.clone();
        let loaded = tokio::task::spawn_blocking(move || toolgate::gateway::load(&path))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("config loads: {e}"));
        let http = toolgate::targets::http::HttpClient::new().unwrap();
        let options = toolgate::server::ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            ..toolgate::server::ServeOptions::of(&loaded)
        };
        let server = toolgate::server::Server::bind(loaded, http, options)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let admin = server.admin_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let done = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            admin,
            dir,
            shutdown: Some(tx),
            done: Some(done),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// `POST /admin/reload`: the status and the report.
    pub async fn reload(&self) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/admin/reload", self.admin))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Replaces `gateway.yaml` (or a file beside it) with `text`.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// The Prometheus text of the admin listener's `/metrics`.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Begins shutdown; the returned handle resolves when the server has drained.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.done.take().expect("not shut down twice")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An rmcp client over Streamable HTTP, in the given lifecycle.
pub async fn client(
    url: &str,
    lifecycle: Lifecycle,
) -> rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig> {
    use rmcp::ClientServiceExt;
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_string());
    let mut config = rmcp::model::ClientConfig::default();
    let mode = match lifecycle {
        Lifecycle::Discover => rmcp::ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
        Lifecycle::Auto => rmcp::ClientLifecycleMode::Auto {
            preferred_versions: vec![
                rmcp::model::ProtocolVersion::V_2026_07_28,
                rmcp::model::ProtocolVersion::V_2025_11_25,
            ],
            legacy_version: Some(rmcp::model::ProtocolVersion::V_2025_11_25),
        },
        Lifecycle::Initialize(version) => {
            config.protocol_version = version;
            rmcp::ClientLifecycleMode::Initialize
        }
    };
    config
        .serve_with_lifecycle(transport, mode)
        .await
        .unwrap_or_else(|e| panic!("MCP client connects: {e}"))
}

/// How the client starts.
#[derive(Clone)]
pub enum Lifecycle {
    /// `server/discover`, 2026-07-28 only.
    Discover,
    /// Discover first, fall back to `initialize` (what dual-era clients do).
    Auto,
    /// The `initialize` handshake with this revision.
    Initialize(rmcp::model::ProtocolVersion),
}

/// The lifecycles every end-to-end test runs in, with the revision each must negotiate.
pub fn all_lifecycles() -> Vec<(&'static str, Lifecycle)> {
    use rmcp::model::ProtocolVersion as V;
    vec![
        ("2026-07-28", Lifecycle::Discover),
        ("2026-07-28", Lifecycle::Auto),
        ("2025-11-25", Lifecycle::Initialize(V::V_2025_11_25)),
        ("2025-06-18", Lifecycle::Initialize(V::V_2025_06_18)),
        ("2025-03-26", Lifecycle::Initialize(V::V_2025_03_26)),
    ]
}

/// POSTs a raw body to the gateway with the given headers; returns status, headers, body.
pub async fn post_raw(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, HeaderMap, Value) {
    let client = reqwest::Client::new();
    let mut req = client.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

/// Headers of a well-formed 2026-07-28 request.
pub fn modern_headers<'a>(method: &'a str, name: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(n) = name {
        h.push(("mcp-name", n));
    }
    h
}

/// `params._meta` of a well-formed 2026-07-28 request.
pub fn modern_meta() -> Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"}
    })
}

/// A JSON object literal as tool arguments.
pub fn args(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("tool arguments must be an object, got {other}"),
    }
}

/// The text blocks of a tool result, joined by newlines.
pub fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
