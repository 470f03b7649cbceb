//! Per-user OAuth (placeholder).
