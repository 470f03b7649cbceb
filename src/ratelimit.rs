//! Rate limits of `tools/call`: budgets of requests per second (GCRA, one atomic
//! theoretical arrival time per budget, updated by compare-and-swap) and of concurrent calls
//! (an atomic counter, released by an RAII [`Admission`]), per gateway caller, per target and
//! per tool. Over a limit a call is refused at once, never queued.
//!
//! Budgets live in this process ([`Budgets`]). With `gateway.rate_limit_store: shared`
//! the request rates are decided in Redis instead ([`SharedStore`], [`admit_shared`]): one
//! GCRA script over every budget of a call, on Redis's clock; concurrency stays local to
//! each replica, and an outage falls back to the local budgets.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus::IntCounter;
use sha2::{Digest, Sha256};

use crate::cache::shared::SharedTier;
use crate::config::{RateLimitConfig, RateLimitPer};
use crate::metrics::Metrics;

/// Callers tracked per `per: caller` budget; past it the least used are forgotten (their
/// budget starts full again), so a flood of distinct callers cannot grow memory.
const MAX_CALLERS: u64 = 100_000;

/// How long an idle caller's budget is kept at least (longer when the budget takes longer
/// to refill, so that forgetting it never gives tokens back early).
const CALLER_IDLE: Duration = Duration::from_secs(600);

/// Which budget refused a call (the `scope` of the metric and the error data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `gateway.rate_limit`: per caller, across all tools.
    Gateway,
    /// `targets[].rate_limit`.
    Target,
    /// `targets[].operations.<id>.rate_limit`.
    Tool,
}

impl Scope {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Gateway => "gateway",
            Scope::Target => "target",
            Scope::Tool => "tool",
        }
    }
}

/// Which limit of a budget refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// `requests_per_second` (with its `burst`).
    RequestsPerSecond,
    /// `concurrent`.
    Concurrent,
}

impl LimitKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::RequestsPerSecond => "requests_per_second",
            LimitKind::Concurrent => "concurrent",
        }
    }
}

/// A request rate as GCRA parameters: one request per `interval`, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per second, as configured (for messages).
    pub per_second: f64,
    /// Requests allowed at once from a full budget.
    pub burst: u32,
    /// Nanoseconds per request.
    interval: u64,
    /// How far the theoretical arrival time may run ahead of now: `interval * (burst - 1)`.
    tolerance: u64,
}

impl Rate {
    /// `per_second` (> 0, finite) with `burst` (>= 1).
    pub fn new(per_second: f64, burst: u32) -> Self {
        let interval = (1e9 / per_second).clamp(1.0, u64::MAX as f64) as u64;
        Self {
            per_second,
            burst,
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1) - 1)),
        }
    }

    /// Takes one request from the budget whose theoretical arrival time is `tat`, at `now`
    /// (nanoseconds on the limiter's clock); when the budget is empty, how long until it
    /// has a request again.
    pub fn take(&self, tat: &AtomicU64, now: u64) -> Result<(), Duration> {
        let mut current = tat.load(Ordering::Acquire);
        loop {
            let base = current.max(now);
            let allowed_at = base.saturating_sub(self.tolerance);
            if allowed_at > now {
                return Err(Duration::from_nanos(allowed_at - now));
            }
            let next = base.saturating_add(self.interval);
            match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(seen) => current = seen,
            }
        }
    }

    /// Gives back a request [`Rate::take`] took (the call was refused by another budget).
    pub fn give_back(&self, tat: &AtomicU64) {
        let _ = tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
            Some(t.saturating_sub(self.interval))
        });
    }

    /// How long an untouched budget takes to be full again.
    fn refill(&self) -> Duration {
        Duration::from_nanos(self.tolerance.saturating_add(self.interval))
    }
}

/// One budget's state: the theoretical arrival time of its next request and its calls in
/// progress.
#[derive(Debug, Default)]
pub struct Budget {
    tat: AtomicU64,
    in_flight: AtomicU32,
}

/// Where a limiter keeps its budgets: one for everyone, or one per caller.
enum Budgets {
    /// `per: target`: one budget shared by every caller.
    Shared(Arc<Budget>),
    /// `per: caller`: a budget per inbound identity (`Caller::cache_key`), anonymous
    /// callers sharing one; bounded, idle ones forgotten.
    PerCaller {
        anonymous: Arc<Budget>,
        callers: moka::sync::Cache<Arc<str>, Arc<Budget>>,
    },
}

/// One configured `rate_limit`: its limits, where it applies and its budgets.
pub struct Limiter {
    scope: Scope,
    rate: Option<Rate>,
    concurrent: Option<u32>,
    budgets: Budgets,
    /// The hash of its scope, target and tool, each preceded by its length (the shared
    /// store's key adds the caller).
    ident: Sha256,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("scope", &self.scope)
            .field("rate", &self.rate)
            .field("concurrent", &self.concurrent)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// The limiter of a validated `rate_limit` section at `scope` (`gateway` is always per
    /// caller).
    pub fn new(config: &RateLimitConfig, scope: Scope) -> Self {
        let rate = config
            .requests_per_second
            .map(|rps| Rate::new(rps, config.burst.unwrap_or_else(|| default_burst(rps))));
        let per = match scope {
            Scope::Gateway => RateLimitPer::Caller,
            _ => config.per.unwrap_or(RateLimitPer::Target),
        };
        let budgets = match per {
            RateLimitPer::Target => Budgets::Shared(Arc::default()),
            RateLimitPer::Caller => {
                let idle = rate.map_or(CALLER_IDLE, |r| r.refill().max(CALLER_IDLE));
                Budgets::PerCaller {
                    anonymous: Arc::default(),
                    callers: moka::sync::Cache::builder()
                        .max_capacity(MAX_CALLERS)
                        .time_to_idle(idle.min(Duration::from_secs(365 * 24 * 3600)))
                        .build(),
                }
            }
        };
        Self {
            scope,
            rate,
            concurrent: config.concurrent,
            budgets,
            ident: ident(scope, "", ""),
        }
    }

    /// The limiter named by the target and tool it applies to (empty when it applies to
    /// all of them), which keys its budgets in the shared store.
    pub fn named(mut self, target: &str, tool: &str) -> Self {
        self.ident = ident(self.scope, target, tool);
        self
    }

    /// The Redis key of `caller`'s budget: `prefix` + `rl:` + the hex SHA-256 of scope,
    /// target, tool and the caller's key (empty for a budget shared by every caller).
    fn redis_key(&self, prefix: &str, caller: Option<&Arc<str>>) -> String {
        let caller = match self.budgets {
            Budgets::Shared(_) => "",
            Budgets::PerCaller { .. } => caller.map_or("", |c| &**c),
        };
        let mut hash = self.ident.clone();
        hash.update((caller.len() as u64).to_be_bytes());
        hash.update(caller.as_bytes());
        let mut out = String::with_capacity(prefix.len() + 3 + 64);
        out.push_str(prefix);
        out.push_str("rl:");
        for byte in hash.finalize() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
        out
    }

    /// Whether each caller has a budget of its own.
    pub fn per_caller(&self) -> bool {
        matches!(self.budgets, Budgets::PerCaller { .. })
    }

    fn budget(&self, caller: Option<&Arc<str>>) -> Arc<Budget> {
        match (&self.budgets, caller) {
            (Budgets::Shared(b), _) => b.clone(),
            (Budgets::PerCaller { anonymous, .. }, None) => anonymous.clone(),
            (Budgets::PerCaller { callers, .. }, Some(key)) => {
                callers.get_with(key.clone(), Arc::default)
            }
        }
    }

    /// Takes a request and a concurrency slot from `caller`'s budget at `now`, or says why
    /// not (taking nothing).
    fn take(&self, caller: Option<&Arc<str>>, now: impl Fn() -> u64) -> Result<Held, Refusal> {
        self.take_with(caller, now, true)
    }

    /// [`Limiter::take`], of the concurrency slot only when `rate` is false (the request
    /// rate was decided in the shared store).
    fn take_with(
        &self,
        caller: Option<&Arc<str>>,
        now: impl Fn() -> u64,
        rate: bool,
    ) -> Result<Held, Refusal> {
        let budget = self.budget(caller);
        if let Some(max) = self.concurrent {
            let taken = budget
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < max).then_some(n + 1)
                });
            if taken.is_err() {
                return Err(self.refusal(LimitKind::Concurrent, Duration::from_secs(1)));
            }
        }
        let rate = self.rate.filter(|_| rate);
        if let Some(rate) = &rate
            && let Err(wait) = rate.take(&budget.tat, now())
        {
            if self.concurrent.is_some() {
                budget.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            return Err(self.refusal(LimitKind::RequestsPerSecond, wait));
        }
        Ok(Held {
            budget,
            rate,
            concurrent: self.concurrent.is_some(),
        })
    }

    fn refusal(&self, limit: LimitKind, retry_after: Duration) -> Refusal {
        Refusal {
            scope: self.scope,
            limit,
            retry_after,
            per_caller: self.per_caller(),
            rate: self.rate,
            concurrent: self.concurrent,
        }
    }
}

/// The hash of a limiter's scope, target and tool, each preceded by its length.
fn ident(scope: Scope, target: &str, tool: &str) -> Sha256 {
    let mut hash = Sha256::new();
    for part in [scope.as_str(), target, tool] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash
}

/// The default `burst` of a rate: one second's worth, at least 1.
pub fn default_burst(per_second: f64) -> u32 {
    per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// What one budget holds for an admitted call.
struct Held {
    budget: Arc<Budget>,
    rate: Option<Rate>,
    concurrent: bool,
}

impl Held {
    /// Undoes the whole take (the call was refused by another budget).
    fn give_back(self) {
        if let Some(rate) = &self.rate {
            rate.give_back(&self.budget.tat);
        }
        // Dropping releases the concurrency slot.
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.concurrent {
            self.budget.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// An admitted call's concurrency slots, released when it is dropped: when the call ends,
/// fails or is cancelled (its future dropped).
#[must_use = "the call's concurrency slots are released when this is dropped"]
pub struct Admission {
    held: [Option<Held>; 3],
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// Which budget refused it.
    pub scope: Scope,
    /// Which of its limits.
    pub limit: LimitKind,
    /// When a call could pass again (1 s for a concurrency limit: calls end at any time).
    pub retry_after: Duration,
    /// Whether the budget is the caller's own.
    pub per_caller: bool,
    /// The budget's rate, if it has one.
    pub rate: Option<Rate>,
    /// The budget's concurrency limit, if it has one.
    pub concurrent: Option<u32>,
}

impl Refusal {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_nanos().div_ceil(1_000_000_000).max(1) as u64
    }

    /// The wait in milliseconds, rounded up, at least 1.
    pub fn retry_after_ms(&self) -> u64 {
        self.retry_after.as_nanos().div_ceil(1_000_000).max(1) as u64
    }

    /// The limit that refused, in words: `10 requests per second (burst 20)`, `5 concurrent calls`.
    pub fn describe_limit(&self) -> String {
        match (self.limit, self.rate) {
            (LimitKind::RequestsPerSecond, Some(r)) => {
                format!("{} requests per second, burst {}", r.per_second, r.burst)
            }
            _ => format!("{} concurrent calls", self.concurrent.unwrap_or(0)),
        }
    }
}

/// Nanoseconds since the first use of a limiter in this process (the GCRA clock).
fn clock() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Admits a call of `caller` through every limiter given (the gateway's, the target's, the
/// tool's, in that order), or refuses it with the first one that is out of budget; a
/// refused call takes nothing from any budget. No limiter: nothing is done.
pub fn admit(
    limiters: [Option<&Limiter>; 3],
    caller: Option<&Arc<str>>,
) -> Result<Admission, Refusal> {
    let mut admission = Admission {
        held: [None, None, None],
    };
    if limiters.iter().all(Option::is_none) {
        return Ok(admission);
    }
    let now = OnceLock::new();
    let now = || *now.get_or_init(clock);
    for (slot, limiter) in limiters.iter().enumerate() {
        let Some(limiter) = limiter else { continue };
        match limiter.take(caller, now) {
            Ok(held) => admission.held[slot] = Some(held),
            Err(refusal) => {
                for held in admission.held.iter_mut().filter_map(Option::take) {
                    held.give_back();
                }
                return Err(refusal);
            }
        }
    }
    Ok(admission)
}

/// The GCRA of every rated budget of one call, atomically on Redis's clock (`TIME`, so
/// replicas' clocks do not matter): `KEYS` are the budgets, `ARGV` their interval and
/// tolerance in microseconds, two per key. All or nothing: when a budget is empty nothing
/// is taken from any and the answer is `{its index, milliseconds until it has a request}`;
/// otherwise every budget's theoretical arrival time is stored, with a `PEXPIRE` at that
/// time (then the budget is full again and the key may vanish), and the answer is `{0, 0}`.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  local allowed_at = tat - tonumber(ARGV[2 * i])
  if allowed_at > now then
    return {i, math.ceil((allowed_at - now) / 1000)}
  end
  tats[i] = tat + tonumber(ARGV[2 * i - 1])
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil((tats[i] - now) / 1000) + 1)
end
return {0, 0}
";

/// `gateway.rate_limit_store: shared`: the request rates of every budget decided in the
/// Redis of `cache.shared` (its connection, timeout, key prefix and outage backoff), with
/// `toolgate_rate_limit_store_total{outcome}`.
pub struct SharedStore {
    tier: Arc<SharedTier>,
    shared: IntCounter,
    fallback: IntCounter,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// The store in `tier`'s Redis.
    pub fn new(tier: &Arc<SharedTier>, metrics: &Metrics) -> Arc<Self> {
        Arc::new(Self {
            tier: tier.clone(),
            shared: metrics.rate_limit_store("shared"),
            fallback: metrics.rate_limit_store("fallback"),
        })
    }

    /// Runs [`GCRA_SCRIPT`] over `rated` for `caller`: `Some(None)` admitted,
    /// `Some(Some((i, wait)))` refused by `rated[i]`, `None` when Redis cannot decide
    /// (down, slow, backing off).
    async fn decide(
        &self,
        rated: &[(usize, &Limiter, Rate)],
        caller: Option<&Arc<str>>,
    ) -> Option<Option<(usize, Duration)>> {
        let tier = &*self.tier;
        if !tier.admit() {
            return None;
        }
        let mut conn = tier.connection()?;
        let settings = tier.settings();
        let mut eval = redis::cmd("EVAL");
        eval.arg(GCRA_SCRIPT).arg(rated.len());
        for (_, limiter, _) in rated {
            eval.arg(limiter.redis_key(&settings.key_prefix, caller));
        }
        for (_, _, rate) in rated {
            eval.arg(rate.interval.div_ceil(1000).max(1))
                .arg(rate.tolerance / 1000);
        }
        let timeout = settings.timeout;
        match tokio::time::timeout(timeout, eval.query_async::<(i64, i64)>(&mut conn)).await {
            Ok(Ok((0, _))) => {
                tier.succeeded();
                Some(None)
            }
            Ok(Ok((i, ms))) if i >= 1 && (i as usize) <= rated.len() => {
                tier.succeeded();
                let wait = Duration::from_millis(ms.max(1) as u64);
                Some(Some((i as usize - 1, wait)))
            }
            Ok(Ok(other)) => {
                tier.failed(&format_args!("unexpected rate-limit answer {other:?}"));
                None
            }
            Ok(Err(e)) => {
                tier.failed(&e);
                None
            }
            Err(_) => {
                tier.failed(&format_args!(
                    "no answer within {timeout:?} (cache.shared.timeout)"
                ));
                None
            }
        }
    }
}

/// [`admit`] with the request rates decided in `store`: the concurrency slots are taken
/// locally first (an in-flight count in Redis would leak when a replica dies), then one
/// script decides every rated budget at once, all or nothing. When Redis cannot decide in
/// `cache.shared.timeout` (or is backing off after an error), the call is decided by this
/// replica's local budgets instead, so a limit still applies per replica.
pub async fn admit_shared(
    store: &SharedStore,
    limiters: [Option<&Limiter>; 3],
    caller: Option<&Arc<str>>,
) -> Result<Admission, Refusal> {
    let rated: Vec<(usize, &Limiter, Rate)> = limiters
        .iter()
        .enumerate()
        .filter_map(|(slot, l)| l.and_then(|l| Some((slot, l, l.rate?))))
        .collect();
    if rated.is_empty() {
        return admit(limiters, caller);
    }
    let mut admission = Admission {
        held: [None, None, None],
    };
    for (slot, limiter) in limiters.iter().enumerate() {
        let Some(limiter) = limiter else { continue };
        // Dropping `admission` on a refusal releases the slots already taken.
        admission.held[slot] = Some(limiter.take_with(caller, clock, false)?);
    }
    match store.decide(&rated, caller).await {
        Some(None) => {
            store.shared.inc();
            Ok(admission)
        }
        Some(Some((i, wait))) => {
            store.shared.inc();
            Err(rated[i].1.refusal(LimitKind::RequestsPerSecond, wait))
        }
        None => {
            store.fallback.inc();
            drop(admission);
            admit(limiters, caller)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        // 2 per second, burst 3: three at once, then one every 500 ms.
        let rate = Rate::new(2.0, 3);
        let tat = AtomicU64::new(0);
        let t0 = 10 * S;
        for _ in 0..3 {
            rate.take(&tat, t0).unwrap();
        }
        assert_eq!(rate.take(&tat, t0), Err(Duration::from_millis(500)));
        assert_eq!(rate.take(&tat, t0 + S / 4), Err(Duration::from_millis(250)));
        rate.take(&tat, t0 + S / 2).unwrap();
        assert!(rate.take(&tat, t0 + S / 2).is_err());
        // Idle for long: the budget is full again, never more than the burst.
        let later = t0 + 100 * S;
        for _ in 0..3 {
            rate.take(&tat, later).unwrap();
        }
        assert!(rate.take(&tat, later).is_err());
    }

    #[test]
    fn gcra_refill_is_steady_at_the_rate() {
        let rate = Rate::new(10.0, 1);
        let tat = AtomicU64::new(0);
        let mut passed = 0;
        // One try every millisecond for one second: 10 pass (one per 100 ms).
        for ms in 0..1000u64 {
            if rate.take(&tat, 5 * S + ms * 1_000_000).is_ok() {
                passed += 1;
            }
        }
        assert_eq!(passed, 10);
    }

    #[test]
    fn giving_back_undoes_a_take() {
        let rate = Rate::new(1.0, 2);
        let tat = AtomicU64::new(0);
        let t = 50 * S;
        rate.take(&tat, t).unwrap();
        rate.take(&tat, t).unwrap();
        assert!(rate.take(&tat, t).is_err());
        rate.give_back(&tat);
        rate.take(&tat, t).unwrap();
        assert!(rate.take(&tat, t).is_err());
    }

    #[test]
    fn tiny_rates_and_retry_after() {
        // 0.001 per second: one per 1000 s.
        let rate = Rate::new(0.001, 3);
        let tat = AtomicU64::new(0);
        for _ in 0..3 {
            rate.take(&tat, S).unwrap();
        }
        let wait = rate.take(&tat, S).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1000));
        let refusal = Refusal {
            scope: Scope::Tool,
            limit: LimitKind::RequestsPerSecond,
            retry_after: Duration::from_millis(1500),
            per_caller: false,
            rate: Some(rate),
            concurrent: None,
        };
        assert_eq!(refusal.retry_after_secs(), 2);
        assert_eq!(refusal.retry_after_ms(), 1500);
        let soon = Refusal {
            retry_after: Duration::from_nanos(1),
            ..refusal
        };
        assert_eq!((soon.retry_after_secs(), soon.retry_after_ms()), (1, 1));
        assert_eq!(default_burst(0.001), 1);
        assert_eq!(default_burst(10.0), 10);
        assert_eq!(default_burst(2.5), 3);
        // Absurd rates saturate instead of overflowing.
        let slow = Rate::new(1e-12, u32::MAX);
        let tat = AtomicU64::new(0);
        slow.take(&tat, S).unwrap();
    }

    fn config(rps: Option<f64>, burst: Option<u32>, concurrent: Option<u32>) -> RateLimitConfig {
        RateLimitConfig {
            requests_per_second: rps,
            burst,
            concurrent,
            per: None,
        }
    }

    #[test]
    fn a_refusal_takes_nothing_from_the_other_budgets() {
        let gateway = Limiter::new(&config(Some(0.001), Some(5), Some(2)), Scope::Gateway);
        let tool = Limiter::new(&config(Some(0.001), Some(1), None), Scope::Tool);
        let caller: Arc<str> = "alice".into();
        let first = admit([Some(&gateway), None, Some(&tool)], Some(&caller)).unwrap();
        for _ in 0..10 {
            let refused = admit([Some(&gateway), None, Some(&tool)], Some(&caller))
                .err()
                .unwrap();
            assert_eq!(refused.scope, Scope::Tool);
        }
        drop(first);
        // The gateway budget still has 4 requests and 2 slots.
        let held: Vec<_> = (0..2)
            .map(|_| admit([Some(&gateway), None, None], Some(&caller)).unwrap())
            .collect();
        let refused = admit([Some(&gateway), None, None], Some(&caller))
            .err()
            .unwrap();
        assert_eq!(refused.limit, LimitKind::Concurrent);
        drop(held);
        // Two requests left (5 - 1 - 2), taken one after the other.
        for _ in 0..2 {
            drop(admit([Some(&gateway), None, None], Some(&caller)).unwrap());
        }
        let refused = admit([Some(&gateway), None, None], Some(&caller))
            .err()
            .unwrap();
        assert_eq!(refused.limit, LimitKind::RequestsPerSecond);
        // Another caller has a budget of its own.
        let bob: Arc<str> = "bob".into();
        let _c = admit([Some(&gateway), None, None], Some(&bob)).unwrap();
        assert!(admit([None, None, None], None).is_ok());
    }

    #[test]
    fn shared_store_keys_are_hashed_and_scoped() {
        let tool = Limiter::new(&config(Some(1.0), None, None), Scope::Tool).named("api", "getPet");
        let alice: Arc<str> = "https://idp\u{0}alice".into();
        let key = tool.redis_key("tg:", Some(&alice));
        // `per: target`: the caller is not part of the key.
        assert_eq!(key, tool.redis_key("tg:", None));
        let hex = key.strip_prefix("tg:rl:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(!key.contains("alice"));
        let mut per_caller = config(Some(1.0), None, None);
        per_caller.per = Some(RateLimitPer::Caller);
        let mine = Limiter::new(&per_caller, Scope::Tool).named("api", "getPet");
        assert_ne!(
            mine.redis_key("tg:", Some(&alice)),
            mine.redis_key("tg:", None)
        );
        // Scope, target and tool keep budgets apart.
        let target = Limiter::new(&config(Some(1.0), None, None), Scope::Target).named("api", "");
        let other =
            Limiter::new(&config(Some(1.0), None, None), Scope::Tool).named("ap", "igetPet");
        assert_ne!(target.redis_key("tg:", None), key);
        assert_ne!(other.redis_key("tg:", None), key);
    }
}
