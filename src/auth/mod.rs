//! Authentication: outbound credentials attached to upstream requests.

pub mod outbound;
