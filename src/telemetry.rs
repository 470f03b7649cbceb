//! OpenTelemetry traces: optional OTLP/HTTP export configured by the standard `OTEL_*`
//! variables, a server span per MCP request and a client span per upstream call, with W3C
//! `traceparent` (and, with `OTEL_PROPAGATORS=xray`, `X-Amzn-Trace-Id`) sent upstream.
//! When no exporter is configured every function here is a no-op costing one atomic load.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

static TRACER: OnceLock<Tracing> = OnceLock::new();

struct Tracing {
    tracer: SdkTracer,
    xray: bool,
}

/// Keeps the exporter alive; dropping it flushes and shuts the exporter down.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (bounded by the exporter's timeout).
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Starts trace export when the environment asks for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, unless `OTEL_SDK_DISABLED=true` or
/// `OTEL_TRACES_EXPORTER=none`). Export goes over OTLP/HTTP with protobuf, through a
/// client running on `runtime`. Returns what to keep alive, or why export is off.
pub fn init_from_env(runtime: tokio::runtime::Handle) -> Result<TelemetryGuard, String> {
    let off = || TelemetryGuard { provider: None };
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(off());
    }
    if env("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(off());
    }
    let protocol =
        env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if protocol.as_deref().is_some_and(|p| p != "http/protobuf") {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={} is not supported: toolgate exports OTLP over HTTP (http/protobuf, port 4318)",
            protocol.unwrap_or_default()
        ));
    }
    let xray = env("OTEL_PROPAGATORS").is_some_and(|p| p.split(',').any(|p| p.trim() == "xray"));
    let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "toolgate".into());
    init(None, &service, xray, runtime)
}

/// Starts trace export to `endpoint` (the full `/v1/traces` URL; `None` reads the standard
/// environment variables).
pub fn init(
    endpoint: Option<&str>,
    service: &str,
    xray: bool,
    runtime: tokio::runtime::Handle,
) -> Result<TelemetryGuard, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let client = ExportClient::new(runtime)?;
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client);
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("service.version", crate::VERSION))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "toolgate");
    TRACER
        .set(Tracing { tracer, xray })
        .map_err(|_| "tracing was already initialised".to_string())?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}

/// Whether spans are being recorded.
#[inline]
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

/// A span in progress (ended when dropped), or nothing when tracing is off.
pub struct SpanGuard(Option<Context>);

impl SpanGuard {
    /// No span.
    pub const fn none() -> Self {
        Self(None)
    }

    /// Adds an attribute.
    #[inline]
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed.
    pub fn error(&self, message: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some(cx) = &self.0 {
            cx.span().set_status(Status::error(message));
        }
    }

    /// A client span, child of this one.
    pub fn client(&self, name: &'static str) -> SpanGuard {
        match (&self.0, TRACER.get()) {
            (Some(parent), Some(t)) => {
                let span = t
                    .tracer
                    .span_builder(name)
                    .with_kind(SpanKind::Client)
                    .start_with_context(&t.tracer, parent);
                SpanGuard(Some(parent.with_span(span)))
            }
            _ => SpanGuard::none(),
        }
    }

    /// The headers that carry this span to an upstream: `traceparent`, plus
    /// `X-Amzn-Trace-Id` when X-Ray propagation is on.
    pub fn propagation_headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        let Some(cx) = &self.0 else { return Vec::new() };
        let sc = cx.span().span_context().clone();
        let mut out = Vec::with_capacity(2);
        if let Ok(v) = http::HeaderValue::try_from(traceparent(&sc)) {
            out.push((http::HeaderName::from_static("traceparent"), v));
        }
        if TRACER.get().is_some_and(|t| t.xray) {
            let id = sc.trace_id().to_string();
            let sampled = u8::from(sc.trace_flags().is_sampled());
            let value = format!(
                "Root=1-{}-{};Parent={};Sampled={sampled}",
                &id[..8],
                &id[8..],
                sc.span_id()
            );
            if let Ok(v) = http::HeaderValue::try_from(value) {
                out.push((http::HeaderName::from_static("x-amzn-trace-id"), v));
            }
        }
        out
    }

    /// The W3C `traceparent` of this span, if any.
    pub fn traceparent(&self) -> Option<String> {
        self.0
            .as_ref()
            .map(|cx| traceparent(cx.span().span_context()))
    }
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        if let Some(cx) = self.0.take() {
            cx.span().end();
        }
    }
}

fn traceparent(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Parses a W3C `traceparent` value.
fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace = TraceId::from_hex(trace)
        .ok()
        .filter(|t| *t != TraceId::INVALID)?;
    let span = SpanId::from_hex(span)
        .ok()
        .filter(|s| *s != SpanId::INVALID)?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    ))
}

/// A server span for one MCP request, child of the caller's `traceparent` (from the HTTP
/// header or from `params._meta.traceparent`) when it sends one.
pub fn server_span(name: &'static str, parent: Option<&str>) -> SpanGuard {
    let Some(t) = TRACER.get() else {
        return SpanGuard::none();
    };
    let parent_cx = match parent.and_then(parse_traceparent) {
        Some(sc) => Context::new().with_remote_span_context(sc),
        None => Context::new(),
    };
    let span = t
        .tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .start_with_context(&t.tracer, &parent_cx);
    SpanGuard(Some(parent_cx.with_span(span)))
}

/// The OTLP exporter's HTTP client: the gateway's rustls/ring stack, run on the tokio
/// runtime (the batch exporter calls it from its own thread).
#[derive(Debug)]
struct ExportClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    runtime: tokio::runtime::Handle,
}

impl ExportClient {
    fn new(runtime: tokio::runtime::Handle) -> Result<Self, String> {
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.with_native_roots_or_empty())
            .https_or_http()
            .enable_http1()
            .build();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Ok(Self { client, runtime })
    }
}

trait NativeRoots {
    fn with_native_roots_or_empty(self) -> rustls::ClientConfig;
}

impl NativeRoots for rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    fn with_native_roots_or_empty(self) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        self.with_root_certificates(roots).with_no_client_auth()
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let response = tokio::time::timeout(
                Duration::from_secs(10),
                client.request(request.map(Full::new)),
            )
            .await
            .map_err(|_| "OTLP export timed out")??;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, 4 << 20)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        });
        task.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_rejects_garbage() {
        let sc =
            parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(
            traceparent(&sc),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-b7ad6b7169203331-01").is_none()
        );
        assert!(
            parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
        assert!(!enabled() || server_span("x", None).traceparent().is_some());
        assert!(SpanGuard::none().propagation_headers().is_empty());
    }
}
