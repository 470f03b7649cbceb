//! Response cache: successful upstream answers, already rendered as MCP result content, kept
//! in a moka TTL cache per target. The key is the tool, its arguments in canonical form
//! (key order, whitespace and number spelling do not split entries) and, with
//! `scope: caller`, the caller's identity. Concurrent misses for one key make one upstream
//! call; errors are never stored. With `cache.shared`, a miss asks a Redis server shared
//! by every replica before the upstream ([`shared`]).

pub mod shared;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::metrics::Metrics;

/// Who may be served a cached answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    /// Only the caller whose call filled the entry (keyed by caller identity).
    Caller,
    /// Every caller.
    Shared,
}

/// A cache key: tool, canonical arguments, caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    tool: Arc<str>,
    args: Box<[u8]>,
    caller: Option<Arc<str>>,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.tool.hash(state);
        self.args.hash(state);
        self.caller.hash(state);
    }
}

impl CacheKey {
    /// The key of a call.
    pub fn new(tool: &Arc<str>, arguments: &Value, caller: Option<&Arc<str>>) -> Self {
        let mut args = Vec::with_capacity(64);
        canonical_json(arguments, &mut args);
        Self {
            tool: tool.clone(),
            args: args.into_boxed_slice(),
            caller: caller.cloned(),
        }
    }

    fn weight(&self) -> usize {
        self.tool.len() + self.args.len() + self.caller.as_ref().map_or(0, |c| c.len()) + 64
    }
}

/// A cached answer: the rendered result content and how long it stays fresh.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The result object's members after `resultType` (`"content":[...],...}`).
    pub fragment: Bytes,
    /// Freshness of this entry (the configured TTL, or a shorter upstream `max-age`).
    pub ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Arc<CachedAnswer>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<CachedAnswer>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Size bound of a target's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBound {
    /// At most this many entries.
    Entries(u64),
    /// At most this many bytes of keys and answers.
    Bytes(u64),
}

/// One target's response cache.
#[derive(Clone)]
pub struct ResponseCache {
    inner: moka::future::Cache<CacheKey, Arc<CachedAnswer>>,
    /// The shared second tier, when `cache.shared` is configured.
    shared: Option<Arc<shared::TargetTier>>,
}

/// How a look-up was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// From the in-process cache.
    Hit,
    /// From the shared tier (Redis), filling the in-process cache.
    SharedHit,
    /// From the upstream (or not at all: the fill's error).
    Miss,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl ResponseCache {
    /// A cache for `target`, bounded as given, counting evictions in `metrics`.
    pub fn new(target: &str, bound: CacheBound, metrics: &Metrics) -> Self {
        let causes = [
            (
                moka::notification::RemovalCause::Expired,
                metrics.cache_evictions(target, "expired"),
            ),
            (
                moka::notification::RemovalCause::Size,
                metrics.cache_evictions(target, "size"),
            ),
            (
                moka::notification::RemovalCause::Replaced,
                metrics.cache_evictions(target, "replaced"),
            ),
            (
                moka::notification::RemovalCause::Explicit,
                metrics.cache_evictions(target, "explicit"),
            ),
        ];
        let builder = moka::future::Cache::builder()
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_k, _v, cause| {
                if let Some((_, counter)) = causes.iter().find(|(c, _)| *c == cause) {
                    counter.inc();
                }
            });
        let inner = match bound {
            CacheBound::Entries(n) => builder.max_capacity(n).build(),
            CacheBound::Bytes(n) => builder
                .weigher(|k: &CacheKey, v: &Arc<CachedAnswer>| {
                    u32::try_from(k.weight() + v.fragment.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(n)
                .build(),
        };
        Self {
            inner,
            shared: None,
        }
    }

    /// The same cache with `tier` behind it, counting its use as `target`'s.
    pub fn with_shared(
        mut self,
        tier: &Arc<shared::SharedTier>,
        target: &str,
        metrics: &Metrics,
    ) -> Self {
        self.shared = Some(Arc::new(shared::TargetTier::new(tier, target, metrics)));
        self
    }

    /// Looks `key` up; on a miss runs `fill` once for all concurrent callers of the same key.
    /// `fill` returns `Ok` for an answer to keep, `Err` for one to hand out but not keep.
    /// Returns the answer and whether it came from the cache.
    pub async fn get_or_fill<F, E>(
        &self,
        key: CacheKey,
        fill: F,
    ) -> (Result<Arc<CachedAnswer>, Arc<E>>, bool)
    where
        F: Future<Output = Result<Arc<CachedAnswer>, E>>,
        E: Send + Sync + 'static,
    {
        match self.inner.entry(key).or_try_insert_with(fill).await {
            Ok(entry) => {
                let fresh = entry.is_fresh();
                (Ok(entry.into_value()), !fresh)
            }
            Err(e) => (Err(e), false),
        }
    }

    /// Looks `key` up in both tiers. On an in-process miss, one caller per key (the others
    /// wait for it) asks the shared tier, if any: a hit there becomes the in-process entry
    /// for what remains of its TTL (at most `ttl`); otherwise `fill` runs, and an answer
    /// to keep is also stored in the shared tier, in the background. Without a shared
    /// tier this is [`ResponseCache::get_or_fill`].
    pub async fn lookup<F, E>(
        &self,
        key: CacheKey,
        ttl: Duration,
        fill: F,
    ) -> (Result<Arc<CachedAnswer>, Arc<E>>, Lookup)
    where
        F: Future<Output = Result<Arc<CachedAnswer>, E>>,
        E: Send + Sync + 'static,
    {
        let Some(tier) = &self.shared else {
            let (answer, hit) = self.get_or_fill(key, fill).await;
            return (answer, if hit { Lookup::Hit } else { Lookup::Miss });
        };
        let mut from_shared = false;
        let tiered = async {
            let redis_key = tier.key(&key);
            if let Some(answer) = tier.fetch(&redis_key, ttl).await {
                from_shared = true;
                return Ok(answer);
            }
            let answer = fill.await?;
            tier.store(redis_key, &answer);
            Ok(answer)
        };
        // By reference: the key is cloned only when an entry is inserted.
        let found = self
            .inner
            .entry_by_ref(&key)
            .or_try_insert_with(tiered)
            .await;
        match found {
            Ok(entry) if !entry.is_fresh() => (Ok(entry.into_value()), Lookup::Hit),
            Ok(entry) => (
                Ok(entry.into_value()),
                if from_shared {
                    Lookup::SharedHit
                } else {
                    Lookup::Miss
                },
            ),
            Err(e) => (Err(e), Lookup::Miss),
        }
    }

    /// Number of entries (approximate, for tests and logs).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Runs pending maintenance (expirations, eviction notifications).
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

/// Writes `value` as canonical JSON: object keys sorted, no whitespace, integers in plain
/// decimal (`1.0`, `1e0` and `1` are the same key), other numbers in shortest form.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    out.extend_from_slice((f as i64).to_string().as_bytes());
                } else {
                    out.extend_from_slice(f.to_string().as_bytes());
                }
            }
        }
        Value::String(s) => crate::mcp::jsonrpc::write_json_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                crate::mcp::jsonrpc::write_json_str(out, k);
                out.push(b':');
                canonical_json(v, out);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(text: &str) -> String {
        let mut out = Vec::new();
        canonical_json(&serde_json::from_str(text).unwrap(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canonical_form_ignores_order_whitespace_and_number_spelling() {
        assert_eq!(
            canon(r#"{"b": 1, "a": [1.0, 2e0, -0.5], "c": {"y": true, "x": null}}"#),
            canon(r#"{"c":{"x":null,"y":true},"a":[1,2,-0.5],"b":1.0}"#)
        );
        assert_eq!(canon(r#"{"b":1,"a":2}"#), r#"{"a":2,"b":1}"#);
        assert_ne!(canon(r#"{"a":"1"}"#), canon(r#"{"a":1}"#));
        assert_ne!(canon(r#"{"a":1.5}"#), canon(r#"{"a":1}"#));
        assert_eq!(canon(r#"{"a":"x\"y"}"#), r#"{"a":"x\"y"}"#);
    }

    /// On the current-thread runtime each task runs until it blocks inside the cache, so
    /// once all have started, every one of them is either filling or waiting for the fill.
    #[tokio::test]
    async fn concurrent_misses_fill_once_and_errors_are_not_kept() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let metrics = Metrics::new();
        let cache = ResponseCache::new("t", CacheBound::Entries(100), &metrics);
        let tool: Arc<str> = "t___x".into();
        let fills = Arc::new(AtomicUsize::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (cache, fills, started, release) = (
                cache.clone(),
                fills.clone(),
                started.clone(),
                release.clone(),
            );
            let key = CacheKey::new(&tool, &serde_json::json!({"a": 1, "b": [1.0]}), None);
            tasks.push(tokio::spawn(async move {
                started.fetch_add(1, SeqCst);
                cache
                    .get_or_fill(key, async move {
                        fills.fetch_add(1, SeqCst);
                        release.notified().await;
                        Ok::<_, ()>(Arc::new(CachedAnswer {
                            fragment: Bytes::from_static(b"x}"),
                            ttl: Duration::from_secs(60),
                        }))
                    })
                    .await
                    .1
            }));
        }
        while started.load(SeqCst) < 10 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        let mut hits = 0;
        for t in tasks {
            hits += usize::from(t.await.unwrap());
        }
        assert_eq!(
            fills.load(SeqCst),
            1,
            "one upstream call for ten concurrent misses"
        );
        assert_eq!(hits, 9);
        // Same arguments spelled differently: a hit.
        let (_, hit) = cache
            .get_or_fill(
                CacheKey::new(&tool, &serde_json::json!({"b": [1], "a": 1.0}), None),
                async { Err::<Arc<CachedAnswer>, _>(()) },
            )
            .await;
        assert!(hit);
        let key = CacheKey::new(&tool, &serde_json::json!({"b": 1}), None);
        let (r, hit) = cache
            .get_or_fill(key.clone(), async { Err::<Arc<CachedAnswer>, _>("boom") })
            .await;
        assert!(r.is_err() && !hit);
        let (r, hit) = cache
            .get_or_fill(key, async {
                Ok::<_, ()>(Arc::new(CachedAnswer {
                    fragment: Bytes::new(),
                    ttl: Duration::from_secs(1),
                }))
            })
            .await;
        assert!(r.is_ok() && !hit, "the error was not kept");
    }
}
