//! toolgate's integration tests: one binary (one link of the crate and its dependencies),
//! one module per area. Everything runs over real sockets on 127.0.0.1 against real
//! components: a recording REST upstream served by the test, the `rmcp` client, panva's
//! `oidc-provider`, `cargo lambda watch`, openapi-core and the gateway's own binary.
//!
//! Run one area with `cargo test --test it <module>` (e.g. `cargo test --test it auth`).

mod support;

mod auth;
mod cache_metrics;
mod cli;
mod http_target;
mod interceptors;
mod lambda_target;
mod mcp_gateway;
mod mcp_protocol;
mod mcp_target;
mod openapi_corpus;
mod openapi_oracle;
mod policy;
mod rate_limits;
mod reload;
mod remote_refs;
mod rmcp_server;
mod scale_out;
mod search;
mod serve_process;
mod sessions;
mod shared_cache;
mod traces;
mod user_oauth;
mod vault;
