//! Listeners and routing: `/mcp`, `/ping`, `/healthz`, `/readyz` on the main listener;
//! `/metrics` and `POST /admin/reload` on the admin one. The `/mcp` route runs through one
//! tower stack (load shedding over a global concurrency limit), so that a flood gets quick
//! 503s instead of growing latency, while the probes keep answering. Connection handling,
//! header-read timeout, reload triggers (SIGHUP, `--watch`) and graceful shutdown (stop
//! accepting, end notification streams, drain in-flight calls up to a grace period).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::gateway::Loaded;
use crate::mcp::McpEndpoint;
use crate::mcp::jsonrpc::{ErrorKind, RpcError};
use crate::mcp::transport::{self, HttpResponse, ResponseBody};
use crate::reload::Reloader;
use crate::targets::http::HttpClient;

/// Shared state of the listeners.
pub struct AppState {
    /// The MCP endpoint.
    pub endpoint: Arc<McpEndpoint>,
    /// False once shutdown has begun, so load balancers stop sending traffic.
    pub ready: AtomicBool,
    /// Reloads the configuration (`POST /admin/reload`, SIGHUP, `--watch`).
    pub reloader: Arc<Reloader>,
}

fn text(status: StatusCode, content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The `/mcp` handler as a tower service, for the limit layers.
#[derive(Clone)]
struct McpService(Arc<AppState>);

impl Service<Request<Incoming>> for McpService {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move { Ok(transport::serve(&state.endpoint, request).await) })
    }
}

/// The `/mcp` stack: shed load beyond `limit` requests in flight.
type McpStack = tower::load_shed::LoadShed<tower::limit::ConcurrencyLimit<McpService>>;

fn mcp_stack(state: &Arc<AppState>, limit: usize) -> McpStack {
    ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(limit)
        .service(McpService(state.clone()))
}

/// Serves `/mcp` through the stack: a request over the limit gets 503 with `Retry-After`.
async fn serve_mcp(state: &AppState, stack: &McpStack, request: Request<Incoming>) -> HttpResponse {
    match stack.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) if error.is::<tower::load_shed::error::Overloaded>() => {
            state.endpoint.metrics().requests_shed.inc();
            let error = RpcError::new(
                ErrorKind::Overloaded,
                "the gateway is at its concurrency limit (gateway.max_concurrent_requests): retry shortly",
            );
            transport::error_response(crate::mcp::jsonrpc::error_response(None, &error), &error)
        }
        Err(error) => {
            let error = RpcError::new(ErrorKind::Internal, format!("internal error: {error}"));
            transport::error_response(crate::mcp::jsonrpc::error_response(None, &error), &error)
        }
    }
}

/// Routes one request of the main listener.
async fn route(state: &AppState, stack: &McpStack, request: Request<Incoming>) -> HttpResponse {
    match request.uri().path() {
        "/mcp" | "/mcp/" => serve_mcp(state, stack, request).await,
        // The browser pages of per-user OAuth.
        path @ ("/oauth/connect" | "/oauth/callback") => {
            crate::auth::connect::serve(
                &state.endpoint,
                request.method(),
                path,
                request.uri().query().unwrap_or(""),
                request.headers(),
            )
            .await
        }
        // The AgentCore Runtime container contract polls /ping.
        "/ping" => text(
            StatusCode::OK,
            "application/json",
            r#"{"status":"Healthy"}"#,
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => readiness(state),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "shutting down\n",
        ),
        // RFC 9728 protected-resource metadata (only with inbound auth).
        path if path.starts_with("/.well-known/oauth-protected-resource") => {
            let snapshot = state.endpoint.snapshot();
            snapshot
                .settings()
                .inbound
                .as_ref()
                .and_then(|auth| auth.metadata_response(path, snapshot.catalog().scopes()))
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "text/plain", "not found\n"))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the MCP endpoint is /mcp\n",
        ),
    }
}

/// `/readyz` while serving: 503 when an upstream the configuration requires
/// (`failure: closed`) is down; each unhealthy upstream named with the reason.
fn readiness(state: &AppState) -> HttpResponse {
    let mut required_down = false;
    let mut body = String::new();
    for (target, health) in state.reloader.health() {
        if !health.healthy {
            required_down |= health.required;
            body.push_str(&format!(
                "{} upstream of target `{target}`: {}\n",
                if health.required {
                    "down (required):"
                } else {
                    "degraded:"
                },
                health.detail
            ));
        }
    }
    let status = if required_down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        body.insert_str(0, "ready\n");
        StatusCode::OK
    };
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn route_admin(state: &AppState, request: Request<Incoming>) -> HttpResponse {
    match (request.method(), request.uri().path()) {
        (_, "/metrics") => {
            let body = state.endpoint.metrics().render();
            let mut response = Response::new(ResponseBody::full(body));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&Method::POST, "/admin/reload") => {
            let report = state.reloader.reload(&state.endpoint, "admin").await;
            let status = if report.outcome == "ok" {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let body = serde_json::to_vec_pretty(&report).unwrap_or_default();
            let mut response = Response::new(ResponseBody::full(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (_, "/admin/reload") => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "POST /admin/reload reloads the configuration\n",
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            response
        }
        (&Method::POST, "/admin/vault/revoke") => revoke(state, request).await,
        (_, "/admin/vault/revoke") => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "POST /admin/vault/revoke {\"issuer\", \"subject\", \"target\"?} forgets a user's upstream tokens\n",
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
            response
        }
        (_, "/healthz" | "/ping") => text(StatusCode::OK, "text/plain", "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, POST /admin/reload or POST /admin/vault/revoke\n",
        ),
    }
}

/// `POST /admin/vault/revoke`: forgets the upstream tokens of one user (every target, or
/// `target`), in the vault every replica reads.
async fn revoke(state: &AppState, request: Request<Incoming>) -> HttpResponse {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Revoke {
        issuer: String,
        subject: String,
        #[serde(default)]
        target: Option<String>,
    }
    let json = |status: StatusCode, value: serde_json::Value| {
        let mut response = Response::new(ResponseBody::full(value.to_string()));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    let body = match http_body_util::Limited::new(request.into_body(), 64 << 10)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("cannot read the body: {e}") }),
            );
        }
    };
    let ask: Revoke = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": format!("the body must be {{\"issuer\": ..., \"subject\": ..., \"target\": optional}}: {e}") }),
            );
        }
    };
    let snapshot = state.endpoint.snapshot();
    let Some(auth) = snapshot.settings().user_auth.as_deref() else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "no target acts for users (credentials.oauth2_user): there is no vault" }),
        );
    };
    if let Some(t) = &ask.target
        && !auth.targets.contains_key(t.as_str())
    {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("target `{t}` does not act for users") }),
        );
    }
    let user = crate::auth::vault::UserId::new(ask.issuer, ask.subject);
    match auth.vault.revoke_user(&user, ask.target.as_deref()).await {
        Ok(revoked) => {
            state
                .endpoint
                .metrics()
                .user_tokens
                .with_label_values(&[ask.target.as_deref().unwrap_or("*"), "revoked"])
                .inc_by(revoked as u64);
            tracing::info!(
                revoked,
                target_name = ask.target.as_deref(),
                "vault: user tokens revoked (admin)"
            );
            json(StatusCode::OK, serde_json::json!({ "revoked": revoked }))
        }
        Err(e) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// Accepts a connection, backing off instead of spinning when accepting fails (out of
/// file descriptors and the like).
async fn accept(listener: &TcpListener, what: &str) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(listener = what, error = %e, "accept failed; retrying in 50 ms");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Where and how a gateway serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The MCP listener.
    pub listen: SocketAddr,
    /// The admin listener, if any.
    pub admin: Option<SocketAddr>,
    /// How long shutdown waits for in-flight calls.
    pub grace: Duration,
    /// How long shutdown keeps serving, with readiness off, before it stops accepting.
    pub delay: Duration,
    /// Most `/mcp` requests in flight; more get 503.
    pub max_concurrent_requests: usize,
}

impl ServeOptions {
    /// The options `loaded`'s configuration gives.
    pub fn of(loaded: &Loaded) -> Self {
        let config = &loaded.config;
        Self {
            listen: config.listen,
            admin: config.admin,
            grace: config.gateway.shutdown_grace,
            delay: config.gateway.shutdown_delay,
            max_concurrent_requests: config.gateway.max_concurrent_requests,
        }
    }
}

/// A bound, not yet running, gateway.
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    state: Arc<AppState>,
    options: ServeOptions,
}

impl Server {
    /// Binds the listeners and builds the endpoint serving `loaded`.
    pub async fn bind(
        loaded: Loaded,
        http: HttpClient,
        options: ServeOptions,
    ) -> std::io::Result<Self> {
        let listen = options.listen;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}"))
        })?;
        let admin = match options.admin {
            Some(a) => Some(TcpListener::bind(a).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {a} (admin): {e}"))
            })?),
            None => None,
        };
        let bound = listener.local_addr()?;
        let changes = loaded.changes.clone();
        let (snapshot, inbound) = crate::reload::first_snapshot(&loaded, bound, &http);
        let metrics = loaded.metrics.clone();
        let endpoint = Arc::new(McpEndpoint::new(snapshot, http.clone(), metrics));
        let reloader = Arc::new(Reloader::new(loaded, inbound, bound, http));
        let state = Arc::new(AppState {
            endpoint,
            ready: AtomicBool::new(true),
            reloader,
        });
        // An upstream whose tools changed asks for a reload.
        let weak = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                changes.notified().await;
                let Some(state) = weak.upgrade() else { return };
                state.reloader.reload(&state.endpoint, "upstream").await;
            }
        });
        Ok(Self {
            listener,
            admin,
            state,
            options,
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

    /// The state the listeners serve (endpoint, reloader).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Reloads on SIGHUP and, with `watch`, whenever an input file changes (checked at that
    /// interval). Call inside the runtime that will run the server.
    pub fn spawn_reload_triggers(&self, watch: Option<Duration>) {
        #[cfg(unix)]
        {
            let state = self.state.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                    tracing::warn!("cannot listen for SIGHUP: reload with POST /admin/reload");
                    return;
                };
                while hangups.recv().await.is_some() {
                    state.reloader.reload(&state.endpoint, "sighup").await;
                }
            });
        }
        if let Some(interval) = watch {
            tokio::spawn(crate::reload::watch(
                self.state.reloader.clone(),
                self.state.endpoint.clone(),
                interval,
            ));
        }
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for up to the grace
    /// period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            admin,
            state,
            options,
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
        let admin_task = admin.map(|admin| {
            let builder = builder.clone();
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = accept(&admin, "admin").await;
                    let builder = builder.clone();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(route_admin(&state, req).await) }
                        });
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        });
        let stack = mcp_stack(&state, options.max_concurrent_requests.max(1));
        let serve = |stream: tokio::net::TcpStream, peer: SocketAddr| {
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let stack = stack.clone();
            let service = service_fn(move |req| {
                let state = state.clone();
                let stack = stack.clone();
                async move { Ok::<_, Infallible>(route(&state, &stack, req).await) }
            });
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let connection = graceful.watch(connection.into_owned());
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                (stream, peer) = accept(&listener, "mcp") => serve(stream, peer),
                () = &mut shutdown => break,
            }
        }
        state.ready.store(false, Ordering::Relaxed);
        // Still serving while `/readyz` fails, until the load balancer has taken this
        // replica out of rotation: no request arrives at a closed port.
        let delay = options.delay;
        if !delay.is_zero() {
            tracing::info!(?delay, "shutting down: readiness off, still serving");
            let until = tokio::time::sleep(delay);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    (stream, peer) = accept(&listener, "mcp") => serve(stream, peer),
                    () = &mut until => break,
                }
            }
        }
        drop(listener);
        tracing::info!("shutting down: draining in-flight requests");
        // Long-lived notification streams end now, or no connection would ever drain.
        state.endpoint.close_streams();
        let grace = options.grace;
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; closing remaining connections"),
        }
        if let Some(task) = admin_task {
            task.abort();
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
