//! `listing: dynamic` targets: a `tools/list` (or a call of a tool the catalog does not
//! know) asks each such upstream for its tools first. When one answers a different list,
//! the gateway reloads and the request is served from the snapshot that holds the new
//! list, so every answer agrees with the upstream at that moment while validation, scopes,
//! cache and metrics keep working from the catalog.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{McpEndpoint, Snapshot};

/// Longest wait for a reload that serves a changed list; past it, the answer comes from
/// the snapshot current then.
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// Reloads waited for before giving up (a failing reload would otherwise be waited on
/// until [`RELOAD_WAIT`]).
const MAX_RELOADS: usize = 3;

/// Asks the dynamically listed upstreams of `snap` for their tools. Returns the snapshot
/// to answer from when it is not `snap` (a list changed and a reload served it).
pub(super) async fn synced(endpoint: &McpEndpoint, snap: &Snapshot) -> Option<Arc<Snapshot>> {
    let dynamic = snap.catalog().dynamic();
    if dynamic.is_empty() {
        return None;
    }
    let since = Instant::now();
    // Subscribed before asking for the reload, so that its completion is not missed.
    let mut reloads = endpoint.reloads.subscribe();
    let results =
        futures_util::future::join_all(dynamic.iter().map(|(u, built)| u.sync(*built, since)))
            .await;
    let stale: Vec<_> = dynamic
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, Ok(true)))
        .map(|((u, _), _)| u)
        .collect();
    if stale.is_empty() {
        return None;
    }
    let deadline = tokio::time::Instant::from_std(since + RELOAD_WAIT);
    for _ in 0..MAX_RELOADS {
        if tokio::time::timeout_at(deadline, reloads.changed())
            .await
            .is_err()
        {
            break;
        }
        let now = endpoint.snapshot();
        let served = stale.iter().all(|u| {
            now.catalog()
                .dynamic()
                .iter()
                .any(|(n, hash)| n.target() == u.target() && *hash == u.listed())
        });
        if served {
            return Some(now);
        }
    }
    tracing::warn!(
        "a dynamically listed MCP upstream changed its tools but no reload served them within {RELOAD_WAIT:?}; answering from the current catalog"
    );
    Some(endpoint.snapshot())
}

/// Whether `params` of a `tools/call` name a tool `snap` does not have.
pub(super) fn unknown_tool(snap: &Snapshot, params: Option<&RawValue>) -> bool {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    params
        .and_then(|p| serde_json::from_str::<Named>(p.get()).ok())
        .is_some_and(|n| snap.catalog().get(&n.name).is_none())
}
