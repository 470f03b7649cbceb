//! Authentication: inbound (who may call the gateway: JWT bearer tokens checked against an
//! OpenID Connect issuer, per the MCP authorization specification) and outbound (what the
//! gateway presents to each upstream: static credentials or OAuth2 tokens it obtains).

pub mod connect;
pub mod inbound;
pub mod jwks;
pub mod oauth2;
pub mod outbound;
pub mod user_oauth;
pub mod vault;

pub use inbound::Caller;
