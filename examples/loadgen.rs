//! Macro benchmark: keep-alive load at fixed concurrency against, in one run,
//!
//! - (a) a fast upstream called directly (a minimal hyper server answering a fixed JSON);
//! - (b) a bare hyper reverse proxy in front of it (the floor for "a hyper-based proxy");
//! - (c) toolgate `tools/call` (no cache) in front of it;
//! - (d) toolgate cache hit: the same `tools/call` on a target with `cache: {ttl: 10m}`;
//! - (e) toolgate `tools/list`.
//!
//! Every system under test is its own child process (the upstream and the bare proxy are
//! this program re-executed with a role; toolgate is the release binary), so the CPU time
//! per request is read honestly from `/proc/<pid>/stat` (utime + stime) over the measured
//! window. Throughput and p50/p99 latency are measured by the load driver (this process).
//!
//! ```sh
//! cargo build --release && cargo run --release --example loadgen
//! cargo run --release --example loadgen -- --seconds 10 --concurrency 4,32 --json out.json
//! cargo run --release --example loadgen -- scale      # start-up, RSS, idle connections, 1,000 connections
//! ```
//!
//! Machines are noisy: compare the ratios of one run, not absolute figures across runs.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;

#[path = "../benches/support/generate.rs"]
mod generate;

// The same allocator as the toolgate binary, so that the bare proxy floor is not handicapped
// by the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the upstream answers to every request: a realistic small JSON object (~300 bytes).
const ANSWER: &[u8] = br#"{"id":7,"name":"Rex","tag":"dog","age":3,"owner":{"id":12,"name":"Ada Lovelace","email":"ada@example.com"},"vaccinations":[{"name":"rabies","date":"2025-03-01"},{"name":"distemper","date":"2025-04-12"}],"notes":"Friendly; likes long walks and tennis balls."}"#;

const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__upstream") => role_upstream(),
        Some("__mcp_upstream") => role_mcp_upstream(),
        Some("__proxy") => role_proxy(args.get(2).expect("upstream address").parse().unwrap()),
        Some("scale") => scale(&Options::parse(&args[2..])),
        _ => macro_bench(&Options::parse(&args[1..])),
    }
}

// ---------------------------------------------------------------------------------------
// Options

struct Options {
    seconds: u64,
    warmup: u64,
    concurrency: Vec<usize>,
    toolgate: PathBuf,
    json: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[String]) -> Self {
        let exe = std::env::current_exe().expect("current exe");
        // target/release/examples/loadgen -> target/release/toolgate
        let default_bin = exe
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("toolgate"))
            .unwrap_or_else(|| PathBuf::from("target/release/toolgate"));
        let mut o = Options {
            seconds: 5,
            warmup: 1,
            concurrency: vec![4, 32],
            toolgate: default_bin,
            json: None,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().cloned().unwrap_or_else(|| usage(a));
            match a.as_str() {
                "--seconds" => o.seconds = value().parse().unwrap_or_else(|_| usage(a)),
                "--warmup" => o.warmup = value().parse().unwrap_or_else(|_| usage(a)),
                "--concurrency" => {
                    o.concurrency = value()
                        .split(',')
                        .map(|c| c.parse().unwrap_or_else(|_| usage(a)))
                        .collect()
                }
                "--toolgate" => o.toolgate = value().into(),
                "--json" => o.json = Some(value().into()),
                _ => usage(a),
            }
        }
        // Bounded: never an open-ended run.
        o.seconds = o.seconds.clamp(1, 120);
        o.warmup = o.warmup.min(30);
        o.concurrency
            .iter_mut()
            .for_each(|c| *c = (*c).clamp(1, 2000));
        if !o.toolgate.exists() {
            eprintln!(
                "toolgate binary not found at {}: run `cargo build --release` first, or pass --toolgate PATH",
                o.toolgate.display()
            );
            std::process::exit(2);
        }
        o
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "unexpected argument {arg}\nusage: loadgen [scale] [--seconds N] [--warmup N] [--concurrency 4,32] [--toolgate PATH] [--json FILE]"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------
// Roles run as child processes

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The upstream: answers [`ANSWER`] to everything, HTTP/1.1 keep-alive, one thread (so that
/// it takes as little of the machine as possible from the system under test).
fn role_upstream() {
    serve_json(|_| Bytes::from_static(ANSWER));
}

/// A minimal MCP server over Streamable HTTP (2026-07-28, stateless): `server/discover`,
/// one tool in `tools/list`, and `tools/call` answered with the same 300-byte document as
/// the REST upstream, as text and `structuredContent`.
fn role_mcp_upstream() {
    serve_json(|body| {
        let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = message["id"].to_string();
        let result = match message["method"].as_str().unwrap_or("") {
            "server/discover" => r#"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"loadgen","version":"1"}}}"#.to_string(),
            "tools/list" => r#"{"resultType":"complete","tools":[{"name":"getPet","description":"Get a pet.","inputSchema":{"type":"object","properties":{"petId":{"type":"string"}},"required":["petId"]}}]}"#.to_string(),
            _ => {
                let answer = std::str::from_utf8(ANSWER).unwrap();
                let text = serde_json::to_string(answer).unwrap();
                format!(
                    r#"{{"resultType":"complete","content":[{{"type":"text","text":{text}}}],"structuredContent":{answer},"isError":false}}"#
                )
            }
        };
        Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#
        ))
    });
}

/// A one-thread HTTP/1.1 keep-alive server that reads each request body fully (as a real
/// server would) and answers `answer(body)` as JSON.
fn serve_json(answer: fn(Bytes) -> Bytes) {
    current_thread().block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| async move {
                    let body = req
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut resp = Response::new(Full::new(answer(body)));
                    resp.headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/json"));
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// The bare hyper reverse proxy: same runtime (multi-thread, one worker per core) and the
/// same server builder (HTTP/1.1 + HTTP/2 auto) as toolgate; forwards method, path, headers
/// and body to the upstream over a pooled keep-alive client and streams the answer back.
fn role_proxy(upstream: SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        announce(listener.local_addr().unwrap());
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build(connector);
        let authority: http::uri::Authority = upstream.to_string().parse().unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, authority) = (client.clone(), authority.clone());
            tokio::spawn(async move {
                let service = service_fn(move |mut req: Request<Incoming>| {
                    let (client, authority) = (client.clone(), authority.clone());
                    async move {
                        let mut parts = req.uri().clone().into_parts();
                        parts.scheme = Some(http::uri::Scheme::HTTP);
                        parts.authority = Some(authority);
                        *req.uri_mut() = http::Uri::from_parts(parts).unwrap();
                        match client.request(req).await {
                            Ok(resp) => Ok::<_, Infallible>(resp.map(|b| b.boxed())),
                            Err(_) => {
                                let mut r = Response::new(
                                    Full::new(Bytes::from_static(b"bad gateway"))
                                        .map_err(|never| match never {})
                                        .boxed(),
                                );
                                *r.status_mut() = http::StatusCode::BAD_GATEWAY;
                                Ok(r)
                            }
                        }
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "LISTENING {addr}").unwrap();
    out.flush().unwrap();
}

// ---------------------------------------------------------------------------------------
// Child processes

/// A child process, killed when dropped.
struct Sut {
    child: Child,
    addr: SocketAddr,
}

impl Sut {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sut {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Re-executes this program with a role; waits for its `LISTENING` line.
fn spawn_role(role: &str, arg: Option<String>) -> Sut {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg(role);
    if let Some(a) = arg {
        cmd.arg(a);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("LISTENING ")
        .unwrap_or_else(|| panic!("{role} did not start: {line:?}"))
        .parse()
        .unwrap();
    Sut { child, addr }
}

/// Starts `toolgate serve` on a config; returns it once it announces its endpoint, with the
/// time that took.
fn spawn_toolgate(bin: &Path, config: &Path) -> (Sut, Duration) {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn toolgate");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0 {
            panic!(
                "toolgate exited before serving (config {})",
                config.display()
            );
        }
        if let Some(rest) = line.trim().strip_prefix("MCP endpoint: http://") {
            let addr = rest.split('/').next().unwrap();
            break addr.parse().unwrap();
        }
    };
    let elapsed = started.elapsed();
    // Keep draining its stderr so that it never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).unwrap_or(0) > 0 {
            sink.clear();
        }
    });
    (Sut { child, addr }, elapsed)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime field 14, stime field 15.
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok());
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14).unwrap_or(0.0) + ticks(15).unwrap_or(0.0)) / tck
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A temporary directory with `gateway.yaml` serving the test API against `upstream`.
/// [`gateway_dir`] plus an `mcp:` target on the MCP server at `mcp`.
fn gateway_dir_with_mcp(upstream: SocketAddr, mcp: SocketAddr) -> tempfile::TempDir {
    let dir = gateway_dir(upstream);
    let path = dir.path().join("gateway.yaml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        "  - name: mcp\n    mcp: {{url: \"http://{mcp}/mcp\"}}\n"
    ));
    std::fs::write(&path, config).unwrap();
    dir
}

fn gateway_dir(upstream: SocketAddr) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/testapi.yaml"),
        dir.path().join("testapi.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gateway.yaml"),
        format!(
            "listen: 127.0.0.1:0\ngateway:\n  name: loadgen\ntargets:\n  - name: api\n    openapi: {{spec: testapi.yaml, base_url: \"http://{upstream}/api\"}}\n  - name: cached\n    openapi: {{spec: testapi.yaml, base_url: \"http://{upstream}/api\", include: {{operations: [getPet]}}}}\n    cache: {{ttl: 10m}}\n"
        ),
    )
    .unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// The load driver

/// One kind of request.
#[derive(Clone)]
struct Workload {
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// A byte string every good answer contains.
    expect: &'static [u8],
}

fn tools_call() -> Workload {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"api___getPet","arguments":{{"petId":"7","fields":["name","tag"],"tags":["a","b"],"X-Request-Tag":"bench"}},{META}}}}}"#
    );
    Workload {
        headers: vec![
            ("mcp-protocol-version", "2026-07-28".into()),
            ("mcp-method", "tools/call".into()),
            ("mcp-name", "api___getPet".into()),
        ],
        body: Bytes::from(body),
        expect: b"\"isError\":false",
    }
}

/// (f, g): a `tools/call` of the MCP server's tool through toolgate's `mcp:` target, and
/// the same request through the bare proxy straight to the MCP server.
fn tools_call_federated() -> Workload {
    let mut w = tools_call();
    w.body = Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"mcp___getPet","arguments":{{"petId":"7"}},{META}}}}}"#
    ));
    w.headers[2].1 = "mcp___getPet".into();
    w
}

/// (d): the same call on the cached target; the warm-up fills the one entry.
fn tools_call_cached() -> Workload {
    let mut w = tools_call();
    w.body =
        Bytes::from(String::from_utf8_lossy(&w.body).replace("api___getPet", "cached___getPet"));
    w.headers[2].1 = "cached___getPet".into();
    w
}

fn tools_list() -> Workload {
    Workload {
        headers: vec![
            ("mcp-protocol-version", "2026-07-28".into()),
            ("mcp-method", "tools/list".into()),
        ],
        body: Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{{{META}}}}}"#
        )),
        expect: b"\"tools\":[",
    }
}

/// The same request bytes sent where the answer is the upstream's own.
fn passthrough() -> Workload {
    Workload {
        expect: b"\"name\":\"Rex\"",
        ..tools_call()
    }
}

#[derive(Debug, Clone, serde::Serialize)]
struct Measured {
    scenario: String,
    concurrency: usize,
    requests: u64,
    errors: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    /// CPU time of the system under test per request (µs); for (a) the upstream's.
    cpu_us_per_req: f64,
    /// CPU time of the upstream per request (µs).
    upstream_cpu_us_per_req: f64,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One connection's loop: sequential keep-alive requests until `end`; latencies of requests
/// started at or after `measure_from` are recorded.
async fn connection(
    addr: SocketAddr,
    work: Arc<Workload>,
    measure_from: Instant,
    end: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    // Bounded reconnects: a broken system under test ends the run instead of spinning.
    'reconnect: for _ in 0..10 {
        let Ok(stream) = TcpStream::connect(addr).await else {
            errors += 1;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        else {
            errors += 1;
            continue;
        };
        tokio::spawn(conn);
        let host = addr.to_string();
        loop {
            if Instant::now() >= end {
                break 'reconnect;
            }
            let mut req = Request::post("/mcp")
                .header("host", &host)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
            for (k, v) in &work.headers {
                req = req.header(*k, v);
            }
            let req = req.body(Full::new(work.body.clone())).unwrap();
            let t0 = Instant::now();
            let ok = match sender.send_request(req).await {
                Ok(resp) => {
                    let good = resp.status().is_success();
                    match resp.into_body().collect().await {
                        Ok(b) => good && contains(&b.to_bytes(), work.expect),
                        Err(_) => false,
                    }
                }
                Err(_) => {
                    errors += 1;
                    continue 'reconnect;
                }
            };
            let dt = t0.elapsed();
            if t0 >= measure_from {
                latencies.push(dt.as_micros().min(u32::MAX as u128) as u32);
                if !ok {
                    errors += 1;
                }
            }
        }
    }
    (latencies, errors)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64
}

/// Drives `work` at `addr` with `concurrency` connections; CPU of `sut` and `upstream` is
/// read at the start and end of the measured window.
#[allow(clippy::too_many_arguments)]
fn drive(
    rt: &tokio::runtime::Runtime,
    scenario: &str,
    addr: SocketAddr,
    work: &Workload,
    concurrency: usize,
    opts: &Options,
    sut: u32,
    upstream: u32,
) -> Measured {
    let work = Arc::new(work.clone());
    let (latencies, errors, cpu, up_cpu, window) = rt.block_on(async {
        let measure_from = Instant::now() + Duration::from_secs(opts.warmup);
        let end = measure_from + Duration::from_secs(opts.seconds);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| tokio::spawn(connection(addr, work.clone(), measure_from, end)))
            .collect();
        // Bench orchestration (not test synchronisation): sample CPU at the window's edges.
        tokio::time::sleep_until(measure_from.into()).await;
        let (c0, u0, t0) = (cpu_seconds(sut), cpu_seconds(upstream), Instant::now());
        tokio::time::sleep_until(end.into()).await;
        let (c1, u1, t1) = (cpu_seconds(sut), cpu_seconds(upstream), Instant::now());
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (l, e) = t.await.unwrap();
            all.extend(l);
            errors += e;
        }
        (all, errors, c1 - c0, u1 - u0, t1 - t0)
    });
    let mut sorted = latencies;
    sorted.sort_unstable();
    let n = sorted.len() as u64;
    let per_req = |cpu: f64| if n == 0 { 0.0 } else { cpu * 1e6 / n as f64 };
    let m = Measured {
        scenario: scenario.into(),
        concurrency,
        requests: n,
        errors,
        rps: n as f64 / window.as_secs_f64(),
        p50_us: percentile(&sorted, 0.50),
        p99_us: percentile(&sorted, 0.99),
        p999_us: percentile(&sorted, 0.999),
        cpu_us_per_req: per_req(cpu),
        upstream_cpu_us_per_req: per_req(up_cpu),
    };
    eprintln!(
        "  {:<28} c={:<4} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  cpu {:>6.1} µs/req  errors {}",
        m.scenario, m.concurrency, m.rps, m.p50_us, m.p99_us, m.cpu_us_per_req, m.errors
    );
    m
}

fn driver_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// The macro bench

fn macro_bench(opts: &Options) {
    let upstream = spawn_role("__upstream", None);
    let proxy = spawn_role("__proxy", Some(upstream.addr.to_string()));
    let mcp_upstream = spawn_role("__mcp_upstream", None);
    let mcp_proxy = spawn_role("__proxy", Some(mcp_upstream.addr.to_string()));
    let dir = gateway_dir_with_mcp(upstream.addr, mcp_upstream.addr);
    let (toolgate, _) = spawn_toolgate(&opts.toolgate, &dir.path().join("gateway.yaml"));
    let rt = driver_runtime();
    eprintln!(
        "loadgen: {} s measured after {} s warm-up per scenario; upstream {}, bare proxy {}, toolgate {}",
        opts.seconds, opts.warmup, upstream.addr, proxy.addr, toolgate.addr
    );
    let mut results = Vec::new();
    for &c in &opts.concurrency {
        let up = upstream.pid();
        let a = drive(
            &rt,
            "a_upstream_direct",
            upstream.addr,
            &passthrough(),
            c,
            opts,
            up,
            up,
        );
        let b = drive(
            &rt,
            "b_bare_hyper_proxy",
            proxy.addr,
            &passthrough(),
            c,
            opts,
            proxy.pid(),
            up,
        );
        let cc = drive(
            &rt,
            "c_toolgate_tools_call",
            toolgate.addr,
            &tools_call(),
            c,
            opts,
            toolgate.pid(),
            up,
        );
        let d = drive(
            &rt,
            "d_toolgate_cache_hit",
            toolgate.addr,
            &tools_call_cached(),
            c,
            opts,
            toolgate.pid(),
            up,
        );
        let e = drive(
            &rt,
            "e_toolgate_tools_list",
            toolgate.addr,
            &tools_list(),
            c,
            opts,
            toolgate.pid(),
            up,
        );
        let mup = mcp_upstream.pid();
        let g = drive(
            &rt,
            "g_bare_proxy_to_mcp_server",
            mcp_proxy.addr,
            &tools_call_federated(),
            c,
            opts,
            mcp_proxy.pid(),
            mup,
        );
        let f = drive(
            &rt,
            "f_toolgate_federated_call",
            toolgate.addr,
            &tools_call_federated(),
            c,
            opts,
            toolgate.pid(),
            mup,
        );
        results.extend([a, b, cc, d, e, g, f]);
    }
    let report = report(&results);
    println!("{report}");
    if let Some(path) = &opts.json {
        let doc = json!({ "machine": machine(), "results": results, "report": report });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        eprintln!("wrote {}", path.display());
    }
}

fn find<'a>(results: &'a [Measured], scenario: &str, c: usize) -> Option<&'a Measured> {
    results
        .iter()
        .find(|m| m.scenario == scenario && m.concurrency == c)
}

/// The markdown table and the ratios.
fn report(results: &[Measured]) -> String {
    let mut s = String::new();
    s.push_str("| scenario | conc. | req/s | p50 µs | p99 µs | proxy CPU µs/req | upstream CPU µs/req | errors |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in results {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {} |\n",
            m.scenario,
            m.concurrency,
            m.rps,
            m.p50_us,
            m.p99_us,
            m.cpu_us_per_req,
            m.upstream_cpu_us_per_req,
            m.errors
        ));
    }
    s.push('\n');
    let mut concurrencies: Vec<usize> = results.iter().map(|m| m.concurrency).collect();
    concurrencies.dedup();
    for c in concurrencies {
        let (Some(a), Some(b), Some(cc), Some(d), Some(e)) = (
            find(results, "a_upstream_direct", c),
            find(results, "b_bare_hyper_proxy", c),
            find(results, "c_toolgate_tools_call", c),
            find(results, "d_toolgate_cache_hit", c),
            find(results, "e_toolgate_tools_list", c),
        ) else {
            continue;
        };
        if let (Some(g), Some(f)) = (
            find(results, "g_bare_proxy_to_mcp_server", c),
            find(results, "f_toolgate_federated_call", c),
        ) {
            s.push_str(&format!(
                "concurrency {c}: CPU/req federated f/g = {:.2} (target <= 2.00)\n",
                f.cpu_us_per_req / g.cpu_us_per_req
            ));
        }
        s.push_str(&format!(
            "concurrency {c}: CPU/req c/b = {:.2} (target <= 2.00), d/b = {:.2} (target <= 0.50), e/b = {:.2}; throughput c/b = {:.2}; added p50 c-a = {:.0} µs vs b-a = {:.0} µs; added p99 c-a = {:.0} µs (target < 1000)\n",
            cc.cpu_us_per_req / b.cpu_us_per_req,
            d.cpu_us_per_req / b.cpu_us_per_req,
            e.cpu_us_per_req / b.cpu_us_per_req,
            cc.rps / b.rps,
            cc.p50_us - a.p50_us,
            b.p50_us - a.p50_us,
            cc.p99_us - a.p99_us,
        ));
    }
    s
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "arch": std::env::consts::ARCH,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

// ---------------------------------------------------------------------------------------
// Scale

/// Runs `toolgate check` on a config and returns (wall time, peak RSS in kB, stdout).
// The child is reaped with `wait4` (for its own rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn check_rusage(bin: &Path, config: &Path) -> (Duration, u64, String) {
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn toolgate check");
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut out);
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for; `usage` is a valid out-pointer.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let elapsed = started.elapsed();
    (elapsed, usage.ru_maxrss as u64, out)
}

fn scale(opts: &Options) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("gen10k.json"),
        generate::openapi_with_operations(10_000),
    )
    .unwrap();
    let real = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/real");
    let docs = [
        ("openai", format!("{real}/openai.yaml")),
        ("twilio_api_v2010", format!("{real}/twilio_api_v2010.json")),
        (
            "generated_10000_ops",
            d.join("gen10k.json").display().to_string(),
        ),
    ];
    println!("## Start-up and memory\n");
    println!(
        "| document | size | tools | `check` wall ms | `check` peak RSS MB | `serve` ready ms | `serve` peak RSS MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, spec) in &docs {
        if !Path::new(spec).exists() {
            println!("| {name} | missing: {spec} | | | | |");
            continue;
        }
        let size = std::fs::metadata(spec).map(|m| m.len()).unwrap_or(0);
        let config = d.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\ntargets:\n  - name: {name}\n    openapi: {{spec: \"{spec}\", base_url: \"http://127.0.0.1:9\"}}\n"
            ),
        )
        .unwrap();
        let (wall, check_rss_kb, out) = check_rusage(&opts.toolgate, &config);
        let tools = out
            .split(" tools from")
            .next()
            .and_then(|h| h.rsplit(' ').next())
            .unwrap_or("?")
            .to_string();
        let (sut, ready) = spawn_toolgate(&opts.toolgate, &config);
        let serve_hwm = status_kb(sut.pid(), "VmHWM");
        drop(sut);
        println!(
            "| {name} | {:.1} MB | {tools} | {:.0} | {:.0} | {:.0} | {:.1} |",
            size as f64 / 1e6,
            wall.as_secs_f64() * 1e3,
            check_rss_kb as f64 / 1024.0,
            ready.as_secs_f64() * 1e3,
            serve_hwm as f64 / 1024.0
        );
    }

    reload_figures(&opts.toolgate, &d.join("gen10k.json"));

    // Idle connections and 1,000 concurrent connections, against the small test API.
    let upstream = spawn_role("__upstream", None);
    let proxy = spawn_role("__proxy", Some(upstream.addr.to_string()));
    let gw = gateway_dir(upstream.addr);
    let (toolgate, _) = spawn_toolgate(&opts.toolgate, &gw.path().join("gateway.yaml"));
    let rt = driver_runtime();
    const IDLE: usize = 1000;
    let before = status_kb(toolgate.pid(), "VmRSS");
    let held = rt.block_on(async {
        let mut held = Vec::with_capacity(IDLE);
        for _ in 0..IDLE {
            let stream = TcpStream::connect(toolgate.addr).await.unwrap();
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                    .await
                    .unwrap();
            let task = tokio::spawn(conn);
            let resp = sender
                .send_request(
                    Request::get("/ping")
                        .header("host", toolgate.addr.to_string())
                        .body(Full::default())
                        .unwrap(),
                )
                .await
                .unwrap();
            let _ = resp.into_body().collect().await;
            held.push((sender, task));
        }
        held
    });
    let after = status_kb(toolgate.pid(), "VmRSS");
    drop(held);
    println!("\n## Connections\n");
    println!(
        "- idle keep-alive connections: {IDLE} held open after one `/ping` each: RSS {:.1} MB -> {:.1} MB, {:.1} kB per idle connection",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / IDLE as f64
    );
    let opts1k = Options {
        seconds: opts.seconds.min(5),
        warmup: 1,
        concurrency: vec![1000],
        toolgate: opts.toolgate.clone(),
        json: None,
    };
    let up = upstream.pid();
    let b = drive(
        &rt,
        "b_bare_hyper_proxy",
        proxy.addr,
        &passthrough(),
        1000,
        &opts1k,
        proxy.pid(),
        up,
    );
    let c = drive(
        &rt,
        "c_toolgate_tools_call",
        toolgate.addr,
        &tools_call(),
        1000,
        &opts1k,
        toolgate.pid(),
        up,
    );
    let hwm = status_kb(toolgate.pid(), "VmHWM");
    println!(
        "- 1,000 concurrent keep-alive connections, {} s:\n",
        opts1k.seconds
    );
    println!(
        "{}",
        report(&[b, c])
            .lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!(
        "\n  toolgate peak RSS during the run: {:.1} MB",
        hwm as f64 / 1024.0
    );
}

/// `POST /admin/reload` over a plain connection: the wall time and the JSON report.
fn admin_reload(admin: SocketAddr) -> (Duration, serde_json::Value) {
    use std::io::Read;
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream
        .write_all(b"POST /admin/reload HTTP/1.1\r\nHost: loadgen\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let elapsed = started.elapsed();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (elapsed, serde_json::from_str(body).unwrap_or_default())
}

/// Reload times of a 10,000-operation document beside the small test API, with nothing
/// changed, with the small target edited (the large one is reused), and with the large one
/// edited (rebuilt).
fn reload_figures(bin: &Path, gen10k: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let small = d.join("testapi.yaml");
    let original = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/testapi.yaml"
    ))
    .unwrap();
    std::fs::write(&small, &original).unwrap();
    let big = d.join("gen10k.json");
    std::fs::copy(gen10k, &big).unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = d.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nadmin: {admin}\ntargets:\n  - name: big\n    openapi: {{spec: gen10k.json, base_url: \"http://127.0.0.1:9\"}}\n  - name: small\n    openapi: {{spec: testapi.yaml, base_url: \"http://127.0.0.1:9\"}}\n"
        ),
    )
    .unwrap();
    let (sut, _) = spawn_toolgate(bin, &config);
    println!("\n## Reload\n");
    println!(
        "10,000-operation generated document plus the small test API, `POST /admin/reload`:\n"
    );
    println!("| change | wall ms | reload ms (report) | targets rebuilt | tools |");
    println!("|---|---:|---:|---|---:|");
    for (i, change) in ["nothing", "small target edited", "large target edited"]
        .iter()
        .enumerate()
    {
        match i {
            1 => std::fs::write(&small, original.replace("List pets", "List the pets")).unwrap(),
            2 => {
                let mut text = std::fs::read_to_string(&big).unwrap();
                text.push('\n');
                std::fs::write(&big, text).unwrap();
            }
            _ => {}
        }
        let (wall, report) = admin_reload(admin);
        println!(
            "| {change} | {:.0} | {:.0} | {} | {} |",
            wall.as_secs_f64() * 1e3,
            report["duration_ms"].as_f64().unwrap_or(f64::NAN),
            report["targets_rebuilt"],
            report["tools"]
        );
    }
    drop(sut);
}
