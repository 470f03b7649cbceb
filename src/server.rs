//! Listeners and routing: `/mcp`, `/ping`, `/healthz`, `/readyz` on the main listener,
//! `/metrics` on the admin one; connection handling, header-read timeout and graceful
//! shutdown (stop accepting, drain in-flight calls up to a grace period).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::mcp::McpEndpoint;
use crate::mcp::transport::{self, HttpResponse};

/// Shared state of the main listener.
pub struct AppState {
    /// The MCP endpoint.
    pub endpoint: McpEndpoint,
    /// False once shutdown has begun, so load balancers stop sending traffic.
    pub ready: AtomicBool,
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Routes one request of the main listener.
pub async fn route(state: &AppState, request: Request<Incoming>) -> HttpResponse {
    match request.uri().path() {
        "/mcp" | "/mcp/" => transport::serve(&state.endpoint, request).await,
        // The AgentCore Runtime container contract polls /ping.
        "/ping" => text(
            StatusCode::OK,
            "application/json",
            r#"{"status":"Healthy"}"#,
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => {
            text(StatusCode::OK, "text/plain", "ready\n")
        }
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "shutting down\n",
        ),
        // RFC 9728 protected-resource metadata (only with inbound auth).
        path if path.starts_with("/.well-known/oauth-protected-resource") => state
            .endpoint
            .settings()
            .inbound
            .as_ref()
            .and_then(|auth| auth.metadata_response(path))
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "text/plain", "not found\n")),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the MCP endpoint is /mcp\n",
        ),
    }
}

fn route_admin(state: &AppState, request: &Request<Incoming>) -> HttpResponse {
    match request.uri().path() {
        "/metrics" => {
            let body = state.endpoint.metrics().render();
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" | "/ping" => text(StatusCode::OK, "text/plain", "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n",
        ),
    }
}

/// A bound, not yet running, gateway.
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: Arc<AppState>,
    grace: Duration,
}

impl Server {
    /// Binds the listeners.
    pub async fn bind(
        endpoint: McpEndpoint,
        listen: SocketAddr,
        admin: Option<SocketAddr>,
        grace: Duration,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        let admin = match admin {
            Some(a) => Some(TcpListener::bind(a).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {a} (admin): {e}"))
            })?),
            None => None,
        };
        let state = Arc::new(AppState {
            endpoint,
            ready: AtomicBool::new(true),
        });
        Ok(Self {
            listener,
            admin,
            state,
            grace,
        })
    }

    /// The address of the MCP listener (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for up to the grace
    /// period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            admin,
            state,
            grace,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(1024);
        let builder = Arc::new(builder);
        if let Some(admin) = admin {
            let builder = builder.clone();
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = admin.accept().await else {
                        continue;
                    };
                    let builder = builder.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(route_admin(&state, &req)) }
                        });
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let state = state.clone();
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(route(&state, req).await) }
                    });
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection.into_owned());
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        state.ready.store(false, Ordering::Relaxed);
        drop(listener);
        tracing::info!("shutting down: draining in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing remaining connections"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
