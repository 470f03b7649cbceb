//! Criterion benches of the request path: each step of a `tools/call` on a realistic tool
//! (the test API's `getPet`, and large real documents: OpenAI's `createChatCompletion`,
//! Twilio's `CreateMessage`), answer mapping, `tools/list` paging over 10,000 tools, and the
//! whole call through the MCP endpoint against a loopback upstream, next to the same
//! upstream request sent directly (the ratio of the two is the gateway's overhead).
//!
//! Run: `cargo bench --bench request_path` (one group: `cargo bench --bench request_path -- openai`).
//! The process-level figures (CPU per request against a bare hyper proxy) are in
//! `examples/loadgen.rs`.

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use toolgate::mcp::{Era, McpEndpoint};
use toolgate::targets::Binding;
use toolgate::targets::UpstreamAnswer;

#[path = "support/generate.rs"]
mod generate;

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

/// An endpoint serving one target: `spec` (absolute path) at `base`.
fn endpoint_for(dir: &Path, name: &str, spec: &Path, base: &str) -> McpEndpoint {
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            "targets:\n  - name: {name}\n    openapi: {{spec: \"{}\", base_url: \"{base}\"}}\n",
            spec.display()
        ),
    )
    .unwrap();
    let loaded = toolgate::gateway::load(&config).unwrap();
    toolgate::reload::endpoint_of(&loaded, toolgate::targets::http::HttpClient::new().unwrap())
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

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}})
}

fn call_message(tool: &str, args: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": meta()}})
    .to_string()
}

/// The per-step benches of one tool: parse, lookup, validation, request build.
fn steps(c: &mut Criterion, group: &str, endpoint: &McpEndpoint, tool_name: &str, args: &Value) {
    let message = call_message(tool_name, args);
    let tool = endpoint
        .snapshot()
        .catalog()
        .get(tool_name)
        .unwrap_or_else(|| panic!("{group}: no tool {tool_name}"))
        .clone();
    assert!(
        tool.validator.is_valid(args),
        "{group}: the bench arguments must be valid"
    );
    let Binding::Http(toolgate::targets::http::HttpBinding { target, operation }) = &tool.binding
    else {
        unreachable!("{group}: {tool_name} is an HTTP tool");
    };
    let args_map = args.as_object().unwrap().clone();
    toolgate::targets::http::build_request(target, operation, &args_map).unwrap();

    let mut g = c.benchmark_group(group);
    g.bench_function("jsonrpc_parse", |b| {
        b.iter(|| {
            serde_json::from_str::<toolgate::mcp::jsonrpc::Message>(std::hint::black_box(&message))
                .unwrap()
        })
    });
    g.bench_function("arguments_parse", |b| {
        let raw = args.to_string();
        b.iter(|| serde_json::from_str::<Value>(std::hint::black_box(&raw)).unwrap())
    });
    g.bench_function("tool_lookup", |b| {
        b.iter(|| {
            endpoint
                .snapshot()
                .catalog()
                .get(std::hint::black_box(tool_name))
                .is_some()
        })
    });
    g.bench_function("validate_arguments", |b| {
        b.iter(|| tool.validator.is_valid(std::hint::black_box(args)))
    });
    g.bench_function("build_request", |b| {
        b.iter(|| {
            toolgate::targets::http::build_request(
                target,
                operation,
                std::hint::black_box(&args_map),
            )
            .unwrap()
        })
    });
    g.finish();
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
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let endpoint = endpoint_for(
        dir.path(),
        "api",
        &fixtures.join("testapi.yaml"),
        &format!("{base}/api"),
    );

    // --- the test API's getPet: path, form/exploded query arrays, a header parameter
    let pet_args = json!({"petId": "7", "fields": ["name", "tag"], "tags": ["a", "b"], "X-Request-Tag": "bench"});
    steps(c, "testapi_getPet", &endpoint, "api___getPet", &pet_args);

    // --- large real documents
    let real = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/real"));
    {
        let openai = endpoint_for(dir.path(), "openai", &real.join("openai.yaml"), &base);
        let args = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Summarise the plot of Hamlet in one sentence."}
            ],
            "temperature": 0.2,
            "max_tokens": 64,
            "n": 1,
            "stream": false
        });
        steps(
            c,
            "openai_createChatCompletion",
            &openai,
            "openai___createChatCompletion",
            &args,
        );
    }
    {
        let twilio = endpoint_for(
            dir.path(),
            "twilio",
            &real.join("twilio_api_v2010.json"),
            &base,
        );
        let args = json!({
            "AccountSid": "AC00000000000000000000000000000000",
            "To": "+15558675310",
            "From": "+15017122661",
            "Body": "Your table for two is confirmed for 8pm.",
            "StatusCallback": "https://example.com/status"
        });
        steps(
            c,
            "twilio_CreateMessage",
            &twilio,
            "twilio___CreateMessage",
            &args,
        );
    }

    // --- answer mapping: JSON -> structuredContent + text block
    let tool = endpoint
        .snapshot()
        .catalog()
        .get("api___getPet")
        .unwrap()
        .clone();
    let mut g = c.benchmark_group("answer_mapping");
    for (label, body) in [
        ("small_json_42B", Bytes::from_static(ANSWER.as_bytes())),
        (
            "json_10KB",
            Bytes::from(
                json!({"items": (0..100).map(|i| json!({"id": i, "name": format!("pet {i}"), "tag": "dog \"quoted\"", "age": i % 15})).collect::<Vec<_>>()})
                    .to_string(),
            ),
        ),
    ] {
        let answer = UpstreamAnswer {
            status: 200,
            media_type: "application/json".into(),
            body,
            is_json: true,
            truncated: false,
            cache: Default::default(),
        };
        let id = serde_json::value::RawValue::from_string("1".into()).unwrap();
        g.bench_with_input(BenchmarkId::new("json", label), &answer, |b, answer| {
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                toolgate::mcp::write_tool_answer(&mut out, &id, Era::Modern, &tool, answer);
                out.len()
            })
        });
    }
    g.finish();

    // TODO(cache): the cache-hit path (lookup by tool + canonical arguments, answer from
    // memory) belongs here once the moka response cache lands; no cache exists yet.

    // --- tools/list over the small catalog and over 10,000 tools
    let list = |cursor: Option<String>| {
        let mut params = json!({"_meta": meta()});
        if let Some(c) = cursor {
            params["cursor"] = json!(c);
        }
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": params}).to_string()
    };
    let list_headers = modern_headers("tools/list", None);
    let first = list(None);
    c.bench_function("tools_list_page/testapi", |b| {
        b.iter(|| rt.block_on(endpoint.handle_message(first.as_bytes(), &list_headers)))
    });
    let spec10k = dir.path().join("gen10k.json");
    std::fs::write(&spec10k, generate::openapi_with_operations(10_000)).unwrap();
    let big = endpoint_for(dir.path(), "gen", &spec10k, &base);
    assert_eq!(big.snapshot().catalog().len(), 10_000);
    // The cursor of the page starting at tool 5,000, taken from the server's own answers.
    let mut cursor = None;
    for _ in 0..(5_000 / big.snapshot().settings().page_size) {
        let toolgate::mcp::Reply::Json(body) =
            rt.block_on(big.handle_message(list(cursor.clone()).as_bytes(), &list_headers))
        else {
            panic!("tools/list answered nothing")
        };
        let v: Value = serde_json::from_slice(&body).unwrap();
        cursor = v["result"]["nextCursor"].as_str().map(String::from);
    }
    let middle = list(cursor);
    let mut g = c.benchmark_group("tools_list_10000");
    g.bench_function("first_page", |b| {
        b.iter(|| rt.block_on(big.handle_message(first.as_bytes(), &list_headers)))
    });
    g.bench_function("page_at_5000", |b| {
        b.iter(|| rt.block_on(big.handle_message(middle.as_bytes(), &list_headers)))
    });
    g.bench_function("tool_lookup", |b| {
        b.iter(|| {
            big.snapshot()
                .catalog()
                .get(std::hint::black_box("gen___getResource1234"))
                .is_some()
        })
    });
    g.finish();

    // --- the whole call through the endpoint, next to the direct upstream request
    let call = call_message("api___getPet", &pet_args);
    let call_headers = modern_headers("tools/call", Some("api___getPet"));
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
