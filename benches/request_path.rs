//! Criterion benches of the request path: each step of a `tools/call` on a realistic tool,
//! and the whole call through the MCP endpoint against a loopback upstream, next to the
//! same upstream request sent directly (the ratio of the two is the gateway's overhead).
//!
//! Run: `cargo bench --bench request_path`.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use toolgate::mcp::McpEndpoint;

const ANSWER: &str = r#"{"id":7,"name":"Rex","tag":"dog","age":3}"#;

/// A minimal upstream on 127.0.0.1 answering a fixed JSON document.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut resp =
                        http::Response::new(Full::new(Bytes::from_static(ANSWER.as_bytes())));
                    resp.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn endpoint(base: &str, dir: &Path) -> McpEndpoint {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/testapi.yaml");
    std::fs::copy(spec, dir.join("testapi.yaml")).unwrap();
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, format!("targets:\n  - name: api\n    openapi: {{spec: testapi.yaml, base_url: \"{base}/api\"}}\n")).unwrap();
    let loaded = toolgate::gateway::load(&config).unwrap();
    loaded
        .into_endpoint(toolgate::targets::http::HttpClient::new().unwrap())
        .0
}

fn modern_headers(method: &str, name: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("mcp-protocol-version", "2026-07-28".parse().unwrap());
    h.insert("mcp-method", method.parse().unwrap());
    if let Some(n) = name {
        h.insert("mcp-name", n.parse().unwrap());
    }
    h
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(upstream());
    let base = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&base, dir.path());
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "api___getPet",
        "arguments": {"petId": "7", "fields": ["name", "tag"], "tags": ["a", "b"], "X-Request-Tag": "bench"},
        "_meta": meta}})
    .to_string();
    let list =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}})
            .to_string();
    let call_headers = modern_headers("tools/call", Some("api___getPet"));
    let list_headers = modern_headers("tools/list", None);

    c.bench_function("jsonrpc_parse", |b| {
        b.iter(|| {
            serde_json::from_str::<toolgate::mcp::jsonrpc::Message>(std::hint::black_box(&call))
                .unwrap()
        })
    });

    let tool = endpoint.catalog().get("api___getPet").unwrap().clone();
    c.bench_function("tool_lookup", |b| {
        b.iter(|| {
            endpoint
                .catalog()
                .get(std::hint::black_box("api___getPet"))
                .is_some()
        })
    });
    let args = json!({"petId": "7", "fields": ["name", "tag"], "tags": ["a", "b"], "X-Request-Tag": "bench"});
    c.bench_function("validate_arguments", |b| {
        b.iter(|| tool.validator.is_valid(std::hint::black_box(&args)))
    });
    let toolgate::catalog::ToolBinding::Http { target, operation } = &tool.binding else {
        unreachable!("api___getPet is an HTTP tool");
    };
    let args_map = args.as_object().unwrap().clone();
    c.bench_function("build_request", |b| {
        b.iter(|| {
            toolgate::targets::http::build_request(
                target,
                operation,
                std::hint::black_box(&args_map),
            )
            .unwrap()
        })
    });

    c.bench_function("tools_list_page", |b| {
        b.iter(|| rt.block_on(endpoint.handle_message(list.as_bytes(), &list_headers)))
    });

    let mut group = c.benchmark_group("tools_call_vs_direct");
    group.bench_function("gateway_tools_call", |b| {
        b.iter(|| rt.block_on(endpoint.handle_message(call.as_bytes(), &call_headers)))
    });
    let direct = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("{base}/api/pets/7?fields=name,tag&tags=a&tags=b")
        .parse()
        .unwrap();
    group.bench_function("direct_upstream_get", |b| {
        b.iter(|| {
            rt.block_on(async {
                let resp = direct.get(uri.clone()).await.unwrap();
                resp.into_body().collect().await.unwrap().to_bytes()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
