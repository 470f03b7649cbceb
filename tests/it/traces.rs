//! Trace export, checked against an OTLP/HTTP receiver run by the test: a server span per
//! MCP request (child of the caller's `traceparent`), a client span per upstream call, and
//! the trace context sent upstream (W3C and X-Ray). The gateway runs as its own process,
//! configured by the standard `OTEL_*` variables, because the tracer is process-wide.

use std::sync::{Arc, Mutex};

use crate::support::process::GatewayProcess;
use crate::support::{Answer, Upstream, fixture, modern_headers, modern_meta, post_raw};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use prost::Message;
use serde_json::json;

async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let store = spans.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/v1/traces");
                            assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let export =
                                ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                            for rs in export.resource_spans {
                                for ss in rs.scope_spans {
                                    store.lock().unwrap().extend(ss.spans);
                                }
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}/v1/traces"), spans)
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_context_reaches_the_upstream() {
    let (endpoint, spans) = otlp_receiver().await;
    let upstream = Upstream::start(|_| Answer::Json(200, json!({"id": 1, "name": "Rex"}))).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("testapi.yaml"), dir.path().join("testapi.yaml")).unwrap();
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ntargets:\n  - name: api\n    openapi: {{ spec: testapi.yaml, base_url: \"{}/api\" }}\n",
            upstream.url()
        ),
    )
    .unwrap();
    let gateway = GatewayProcess::spawn(
        &config,
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
            ("OTEL_PROPAGATORS", "tracecontext,xray"),
            ("OTEL_SERVICE_NAME", "toolgate-test"),
        ],
    );

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut headers = modern_headers("tools/call", Some("api___getPet"));
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    headers.push(("traceparent", &traceparent));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "api___getPet", "arguments": {"petId": "7"}, "_meta": modern_meta()}});
    let (status, _, reply) = post_raw(&gateway.url, &headers, body.to_string()).await;
    assert_eq!(
        (status, &reply["result"]["isError"]),
        (200, &json!(false)),
        "{reply}"
    );

    // Shutting down flushes the exporter.
    let (exit, log) = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();
    assert!(exit.success(), "{exit}: {log:?}");
    let spans = spans.lock().unwrap().clone();
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32)
        .expect("a server span");
    let client = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client as i32)
        .expect("a client span");
    assert_eq!(server.name, "tools/call");
    assert_eq!(hex(&server.trace_id), trace_id);
    assert_eq!(
        hex(&server.parent_span_id),
        caller_span,
        "child of the caller's span"
    );
    assert_eq!(
        attr(server, "tool.name"),
        Some(&AnyValue::StringValue("api___getPet".into()))
    );
    assert_eq!(
        attr(server, "mcp.method.name"),
        Some(&AnyValue::StringValue("tools/call".into()))
    );
    assert_eq!(hex(&client.trace_id), trace_id);
    assert_eq!(
        client.parent_span_id, server.span_id,
        "the upstream call is a child of the request"
    );
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(&AnyValue::IntValue(200))
    );
    assert_eq!(
        attr(client, "url.template"),
        Some(&AnyValue::StringValue("/pets/{petId}".into()))
    );

    let sent = upstream.requests().pop().unwrap();
    assert_eq!(
        sent.header("traceparent"),
        Some(format!("00-{trace_id}-{}-01", hex(&client.span_id)).as_str()),
        "the upstream continues the trace from the client span"
    );
    assert_eq!(
        sent.header("x-amzn-trace-id"),
        Some(
            format!(
                "Root=1-{}-{};Parent={};Sampled=1",
                &trace_id[..8],
                &trace_id[8..],
                hex(&client.span_id)
            )
            .as_str()
        )
    );
}
