//! toolgate: one MCP endpoint in front of REST APIs (OpenAPI), AWS Lambda functions and MCP
//! servers.
//!
//! Load time builds an immutable [`catalog::Catalog`] from `gateway.yaml` and the documents
//! it names; the request path ([`server`] → [`mcp`] → [`targets`]) only looks up and executes.

pub mod auth;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod interceptors;
pub mod json_doc;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod ratelimit;
pub mod reload;
pub mod search;
pub mod server;
pub mod targets;
pub mod telemetry;

/// The crate version, reported as `serverInfo.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
