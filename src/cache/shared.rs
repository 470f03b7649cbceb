//! The response cache's optional second tier (`cache.shared`): a Redis server that every
//! replica asks on a miss of its own in-process cache, and fills after an upstream call.
//! It owns the Redis connection (one auto-reconnecting manager for all targets), the Redis
//! key of a cache key, and what an outage costs: a miss, never a failed call, and after an
//! error no Redis traffic at all for [`BACKOFF`] but one probe.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::IntCounter;
use sha2::{Digest, Sha256};

use super::{CacheKey, CachedAnswer};
use crate::config::SharedCacheConfig;
use crate::metrics::Metrics;

/// How long Redis is left alone after an error (then one call probes it again).
pub const BACKOFF: Duration = Duration::from_secs(1);

/// How long a (background) connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks `cache.shared` at load: a URL the Redis client can use, and sane limits. The
/// message never shows the URL's password.
pub fn check(config: &SharedCacheConfig) -> Result<(), String> {
    use redis::IntoConnectionInfo;
    let raw = config.url.expose();
    let shown = redact_url(raw);
    let expected = "expected redis://[user:password@]host[:port][/db], redis+unix:///path/to/redis.sock or unix:///path/to/redis.sock";
    let url = redis::parse_redis_url(raw)
        .ok_or_else(|| format!("cache.shared: `{shown}` is not a Redis URL ({expected})"))?;
    if matches!(url.scheme(), "rediss" | "valkeys") {
        return Err(format!(
            "cache.shared: `{shown}` asks for TLS, which this build of toolgate does not include; use redis:// on a trusted network, a unix socket (redis+unix:///path), or a local TLS tunnel (e.g. stunnel) in front of the server"
        ));
    }
    url.into_connection_info()
        .map_err(|e| format!("cache.shared: `{shown}`: {} ({expected})", reason(&e)))?;
    if config.timeout.is_zero() {
        return Err("cache.shared.timeout must be above zero (e.g. 50ms)".into());
    }
    if config.max_value_bytes.0 == 0 {
        return Err("cache.shared.max_value_bytes must be above zero (e.g. 1MiB)".into());
    }
    Ok(())
}

/// What a client-side Redis error says, without its kind's name.
fn reason(e: &redis::RedisError) -> String {
    let text = e.to_string();
    match text.split_once(" - ") {
        Some((reason, _)) => reason.to_string(),
        None => text,
    }
}

/// `url` with any password replaced by `***`: the `user:password@` part and a `pass=` or
/// `password=` query parameter (unix socket URLs). Text that does not parse as a URL keeps
/// only what precedes a `@`-delimited user part.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            if parsed
                .query_pairs()
                .any(|(k, _)| k == "pass" || k == "password")
            {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if k == "pass" || k == "password" {
                            "***".to_string()
                        } else {
                            v.into_owned()
                        };
                        (k.into_owned(), v)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        // Not a URL: drop anything that may be credentials (before the last `@`).
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => match url.split_once("://") {
                Some((scheme, _)) => format!("{scheme}://***@{host}"),
                None => format!("***@{host}"),
            },
            None => url.to_string(),
        },
    }
}

/// The Redis key of a cache key: `key_prefix` + `c:` + the hex SHA-256 of the tool name,
/// the canonical arguments and the caller's cache key (empty for a shared entry), each
/// preceded by its length. Every replica with the same configuration computes the same
/// key, callers are kept apart exactly as in the in-process cache, and no caller identity
/// is readable in Redis.
pub fn redis_key(prefix: &str, key: &CacheKey) -> String {
    let mut hash = Sha256::new();
    for part in [
        key.tool.as_bytes(),
        &key.args[..],
        key.caller.as_deref().map_or(&b""[..], str::as_bytes),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut out = String::with_capacity(prefix.len() + 2 + 64);
    out.push_str(prefix);
    out.push_str("c:");
    for byte in digest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out
}

/// The shared tier: one Redis connection for every target's cache, and the state of an
/// outage. Built at load without contacting Redis, kept across reloads; serving starts
/// connecting in the background ([`SharedTier::connect`]), so that a Redis that is down
/// never delays or fails the start.
pub struct SharedTier {
    settings: SharedCacheConfig,
    client: redis::Client,
    /// Made on first use inside the runtime (the load may run outside one).
    manager: OnceLock<Option<redis::aio::ConnectionManager>>,
    /// Time base of `skip_until_ms`.
    epoch: Instant,
    /// 0 while Redis answers; during an outage, until when (ms since `epoch`) calls leave
    /// Redis alone.
    skip_until_ms: AtomicU64,
}

impl fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTier")
            .field("url", &self.settings.url)
            .field("up", &(self.skip_until_ms.load(Relaxed) == 0))
            .finish_non_exhaustive()
    }
}

impl SharedTier {
    /// The tier `settings` describe (checked by [`check`]). Nothing is contacted yet: see
    /// [`SharedTier::connect`].
    pub fn new(settings: &SharedCacheConfig) -> Result<Arc<Self>, String> {
        let client = redis::Client::open(settings.url.expose())
            .map_err(|e| format!("cache.shared: `{}`: {}", settings.url, reason(&e)))?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            client,
            manager: OnceLock::new(),
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        }))
    }

    /// The settings it runs with (a reload compares them with the new configuration).
    pub fn settings(&self) -> &SharedCacheConfig {
        &self.settings
    }

    /// Starts connecting in the background, when called inside the runtime, so that the
    /// first calls find the connection ready; logs whether Redis answered.
    pub fn connect(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Some(mut conn) = self.connection() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<String>(&mut conn);
            match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
                Ok(Ok(_)) => {
                    tracing::info!(redis = %this.settings.url, "shared cache connected")
                }
                Ok(Err(e)) => this.failed(&e),
                Err(_) => this.failed(&format_args!("no answer within {CONNECT_TIMEOUT:?}")),
            }
        });
    }

    /// The connection manager (cheap to clone), made on first use.
    pub(crate) fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.manager
            .get_or_init(|| {
                // No retries of its own: after an error the tier backs off and probes.
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(self.settings.timeout));
                match redis::aio::ConnectionManager::new_lazy_with_config(
                    self.client.clone(),
                    config,
                ) {
                    Ok(manager) => Some(manager),
                    Err(e) => {
                        tracing::error!(redis = %self.settings.url, error = %self.redact(&e), "shared cache disabled: cannot make its connection");
                        None
                    }
                }
            })
            .clone()
    }

    /// Milliseconds since `epoch`, from 1 (0 in `skip_until_ms` means "up").
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether this operation may use Redis: always while it answers; during an outage,
    /// only the one operation that claims the probe once the backoff has passed.
    pub(crate) fn admit(&self) -> bool {
        let until = self.skip_until_ms.load(Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .skip_until_ms
                .compare_exchange(until, now + BACKOFF.as_millis() as u64, Relaxed, Relaxed)
                .is_ok()
    }

    /// Redis answered: ends an outage (logged once).
    pub(crate) fn succeeded(&self) {
        if self.skip_until_ms.load(Relaxed) != 0 && self.skip_until_ms.swap(0, Relaxed) != 0 {
            tracing::info!(redis = %self.settings.url, "shared cache reachable again");
        }
    }

    /// Redis failed or did not answer in time: backs off; the first error of an outage is
    /// logged.
    pub(crate) fn failed(&self, error: &dyn fmt::Display) {
        let until = self.now_ms() + BACKOFF.as_millis() as u64;
        if self.skip_until_ms.swap(until, Relaxed) == 0 {
            tracing::warn!(
                redis = %self.settings.url,
                error = %self.redact(error),
                "shared cache unavailable: calls go on without it (it is tried again every {BACKOFF:?})"
            );
        }
    }

    /// An error's text without the URL's password, should it ever appear there.
    fn redact(&self, error: &dyn fmt::Display) -> String {
        let text = error.to_string();
        let info = &self.client.get_connection_info().redis_settings();
        match info.password() {
            Some(password) if !password.is_empty() => text.replace(password, "***"),
            _ => text,
        }
    }
}

/// One target's use of the shared tier, with its counters
/// (`toolgate_cache_shared_total{target, outcome}`).
pub(super) struct TargetTier {
    tier: Arc<SharedTier>,
    hit: IntCounter,
    miss: IntCounter,
    stored: IntCounter,
    too_large: IntCounter,
    error: IntCounter,
    skipped: IntCounter,
}

impl TargetTier {
    pub(super) fn new(tier: &Arc<SharedTier>, target: &str, metrics: &Metrics) -> Self {
        let counter = |outcome| metrics.cache_shared(target, outcome);
        Self {
            tier: tier.clone(),
            hit: counter("hit"),
            miss: counter("miss"),
            stored: counter("stored"),
            too_large: counter("too_large"),
            error: counter("error"),
            skipped: counter("skipped"),
        }
    }

    pub(super) fn key(&self, key: &CacheKey) -> String {
        redis_key(&self.tier.settings.key_prefix, key)
    }

    /// The entry under `key` (GET and PTTL in one round trip), fresh for what remains of
    /// its time in Redis and never longer than `max_ttl`; `None` on a miss, an error, a
    /// timeout or during an outage.
    pub(super) async fn fetch(&self, key: &str, max_ttl: Duration) -> Option<Arc<CachedAnswer>> {
        let tier = &*self.tier;
        if !tier.admit() {
            self.skipped.inc();
            return None;
        }
        let Some(mut conn) = tier.connection() else {
            self.error.inc();
            return None;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let query = pipe.query_async::<(Option<Bytes>, i64)>(&mut conn);
        match tokio::time::timeout(tier.settings.timeout, query).await {
            Ok(Ok((Some(fragment), pttl))) if pttl > 0 && fragment.last() == Some(&b'}') => {
                tier.succeeded();
                self.hit.inc();
                let ttl = Duration::from_millis(pttl as u64).min(max_ttl);
                Some(Arc::new(CachedAnswer { fragment, ttl }))
            }
            // Absent, expiring this very moment, without a TTL, or not an answer toolgate
            // wrote: a miss (the fill overwrites it).
            Ok(Ok(_)) => {
                tier.succeeded();
                self.miss.inc();
                None
            }
            Ok(Err(e)) => {
                tier.failed(&e);
                self.error.inc();
                None
            }
            Err(_) => {
                tier.failed(&format_args!(
                    "no answer within {:?} (cache.shared.timeout)",
                    tier.settings.timeout
                ));
                self.error.inc();
                None
            }
        }
    }

    /// Stores `answer` under `key` for its TTL (`SET key value PX ttl`) in a task of its
    /// own, so that the caller's answer never waits for Redis; skipped when larger than
    /// `max_value_bytes` or during an outage.
    pub(super) fn store(self: &Arc<Self>, key: String, answer: &CachedAnswer) {
        let tier = &*self.tier;
        if answer.fragment.len() > tier.settings.max_value_bytes.0 {
            self.too_large.inc();
            return;
        }
        if !tier.admit() {
            self.skipped.inc();
            return;
        }
        let Some(mut conn) = tier.connection() else {
            self.error.inc();
            return;
        };
        let ttl_ms = u64::try_from(answer.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let fragment = answer.fragment.clone();
        let this = self.clone();
        tokio::spawn(async move {
            let mut set = redis::cmd("SET");
            set.arg(&key).arg(&fragment[..]).arg("PX").arg(ttl_ms);
            let timeout = this.tier.settings.timeout;
            match tokio::time::timeout(timeout, set.exec_async(&mut conn)).await {
                Ok(Ok(())) => {
                    this.tier.succeeded();
                    this.stored.inc();
                }
                Ok(Err(e)) => {
                    this.tier.failed(&e);
                    this.error.inc();
                }
                Err(_) => {
                    this.tier.failed(&format_args!(
                        "no answer within {timeout:?} (cache.shared.timeout)"
                    ));
                    this.error.inc();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteSize, RedisUrl};

    fn config(url: &str) -> SharedCacheConfig {
        let text = format!("cache:\n  shared: \"{url}\"\n");
        match crate::config::Config::parse(&text, std::path::Path::new("gw.yaml")) {
            Ok(c) => c.cache.shared.unwrap().value,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://user:hunter2@cache:6379/2"),
            "redis://user:***@cache:6379/2"
        );
        assert_eq!(redact_url("redis://:hunter2@cache"), "redis://:***@cache");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        assert!(!redact_url("redis://us er:hunter2@ca che").contains("hunter2"));
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        let url = RedisUrl::clone(&config("redis://u:hunter2@cache:6379").url);
        assert!(!format!("{url} {url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "redis://u:hunter2@cache:6379");
    }

    #[test]
    fn urls_are_checked_without_showing_the_password() {
        let bad = |url: &str| {
            let text = format!("listen: 127.0.0.1:8000\ncache:\n  shared: \"{url}\"\n");
            let err = crate::config::Config::parse(&text, std::path::Path::new("gw.yaml"))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.starts_with("gw.yaml:3:"), "{err}");
            err
        };
        assert!(bad("http://u:hunter2@cache").contains("is not a Redis URL"));
        assert!(bad("rediss://u:hunter2@cache:6380").contains("TLS"));
        assert!(bad("redis://u:hunter2@cache/notadb").contains("database"));
        assert!(bad("redis://u:hunter2@0.0.0.0").contains("wildcard"));
        // The object form points at its `url:` line, and has defaults.
        let text = "cache:\n  shared:\n    timeout: 20ms\n    url: \"valkey://:hunter2@\"\n";
        let err = crate::config::Config::parse(text, std::path::Path::new("gw.yaml")).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let text = "cache:\n  shared: {url: \"redis+unix:///run/r.sock\", timeout: 20ms, max_value_bytes: 64KiB}\n";
        let c = crate::config::Config::parse(text, std::path::Path::new("gw.yaml"))
            .unwrap()
            .cache
            .shared
            .unwrap()
            .value;
        assert_eq!(c.timeout, Duration::from_millis(20));
        assert_eq!(c.max_value_bytes, ByteSize(64 << 10));
        assert_eq!(c.key_prefix, "toolgate:");
        let d = config("unix:///run/r.sock");
        assert_eq!(d.timeout, Duration::from_millis(50));
        assert_eq!(d.max_value_bytes, ByteSize(1 << 20));
        let err = crate::config::Config::parse(
            "cache:\n  shared: {url: \"redis://cache\", timeot: 1s}\n",
            std::path::Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert!(err.message.contains("did you mean `timeout`"), "{err}");
        let err = crate::config::Config::parse(
            "cache:\n  shared: {url: \"redis://cache\", timeout: 0s}\n",
            std::path::Path::new("gw.yaml"),
        )
        .unwrap_err();
        assert!(err.message.contains("timeout must be above zero"), "{err}");
    }

    #[test]
    fn keys_are_stable_hex_and_scoped_by_caller() {
        let tool: Arc<str> = "api___getPet".into();
        let alice: Arc<str> = "https://idp\u{0}alice\u{0}agent".into();
        let args = serde_json::json!({"b": 1, "a": [1.0]});
        let shared = redis_key("tg:", &CacheKey::new(&tool, &args, None));
        assert_eq!(
            shared,
            redis_key(
                "tg:",
                &CacheKey::new(&tool, &serde_json::json!({"a": [1], "b": 1}), None)
            )
        );
        let mine = redis_key("tg:", &CacheKey::new(&tool, &args, Some(&alice)));
        assert_ne!(shared, mine);
        for key in [&shared, &mine] {
            let hex = key.strip_prefix("tg:c:").unwrap();
            assert_eq!(hex.len(), 64);
            assert!(
                hex.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        // Lengths keep the parts apart: moving a byte between tool and arguments changes
        // the key.
        let t2: Arc<str> = "api___getPe".into();
        let mut moved = CacheKey::new(&t2, &args, None);
        moved.args = [&b"t"[..], &moved.args[..]].concat().into_boxed_slice();
        assert_ne!(redis_key("tg:", &moved), shared);
    }

    #[test]
    fn an_outage_admits_one_probe_per_backoff() {
        let tier = SharedTier::new(&config("redis://127.0.0.1:1")).unwrap();
        assert!(tier.admit() && tier.admit(), "healthy: every operation");
        tier.failed(&"boom");
        assert!(!tier.admit(), "backing off");
        // Pretend the backoff has passed: exactly one operation probes.
        tier.skip_until_ms.store(1, Relaxed);
        assert!(tier.admit());
        assert!(!tier.admit());
        tier.succeeded();
        assert!(tier.admit() && tier.admit());
    }
}
