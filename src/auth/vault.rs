//! The per-user token vault (`vault:`): the OAuth tokens toolgate obtained for an end user
//! (the inbound JWT's issuer and subject) at an upstream target, sealed with AES-256-GCM
//! under a key every replica shares and kept in a local directory or in the Redis of
//! `cache.shared`, so that any replica can use them. It owns the sealing ([`SealKeys`], also
//! used for OAuth `state` values), the stores' layouts and a short in-memory cache.
//!
//! A record is sealed with the associated data `toolgate-vault-v1\0` ‖ the user's digest ‖
//! SHA-256(target): the digests, not the names, because a store only knows a record by
//! them (its path or Redis key), and a re-seal after a key rotation must open records of
//! users it cannot name. Either way a record moved to another user or target does not open.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use crate::cache::shared::SharedTier;
use crate::config::{Config, ConfigError, Secret};

/// The shortest accepted key, in bytes: AES-256 needs 256 bits of secret.
pub const MIN_KEY_BYTES: usize = 32;

/// How long a record read from the store is reused in memory unless `cache_ttl` says.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most records kept in memory (each is a few hundred bytes).
const CACHE_CAPACITY: u64 = 100_000;

/// The first byte of every sealed value: the format below.
const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
/// version ‖ key id ‖ nonce, then ciphertext ‖ tag.
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

const RECORD_DOMAIN: &[u8] = b"toolgate-vault-v1\0";

/// `vault:`: where per-user tokens are kept and the key they are sealed with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// The sealing key (at least 32 bytes; e.g. `${TOOLGATE_VAULT_KEY}`).
    pub key: Option<Secret>,
    /// A file holding the key instead (relative to this file; a trailing newline is
    /// ignored).
    pub key_file: Option<Spanned<PathBuf>>,
    /// Keys records are still opened with but never sealed with (a rotation: add the new
    /// key as `key`, the old one here, run a re-seal, then drop it).
    #[serde(default)]
    pub previous_keys: Vec<Secret>,
    /// Where records are kept: `local` (default) or `redis` (the Redis of `cache.shared`).
    #[serde(default)]
    pub store: StoreKind,
    /// The local store's directory (relative to this file; default `vault` next to it).
    #[serde(default)]
    pub path: Option<Spanned<PathBuf>>,
    /// How long a record read from the store is reused in memory (default `5s`; `0s`
    /// reads the store every time).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub cache_ttl: Option<Duration>,
}

/// `vault.store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Files in a directory of this machine (one replica, or replicas sharing a volume).
    #[default]
    Local,
    /// A hash per user in the Redis of `cache.shared`, for every replica.
    Redis,
}

/// A config problem: where (when more precise than the `vault:` section) and what.
type Problem = (Option<serde_saphyr::Location>, String);

impl VaultConfig {
    /// Checks the section at load: exactly one of `key` and `key_file`, keys of at least
    /// [`MIN_KEY_BYTES`] (the message gives the length, never the key), a readable
    /// `key_file`, and `cache.shared` for `store: redis`.
    pub fn validate(
        &self,
        file: &Path,
        at: &serde_saphyr::Location,
        has_shared_cache: bool,
    ) -> Result<(), ConfigError> {
        let error = |(location, message): Problem| {
            ConfigError::at(file, location.as_ref().unwrap_or(at), message)
        };
        let (current, previous) = self.material(file).map_err(error)?;
        SealKeys::new(&current, &previous).map_err(|e| error((None, format!("vault: {e}"))))?;
        match self.store {
            StoreKind::Local => {}
            StoreKind::Redis if !has_shared_cache => {
                return Err(error((
                    None,
                    "vault.store: redis keeps the tokens in the Redis of cache.shared, which is not configured; add cache.shared (e.g. redis://127.0.0.1:6379) or use store: local".into(),
                )));
            }
            StoreKind::Redis => {
                if let Some(path) = &self.path {
                    return Err(error((
                        Some(path.referenced),
                        "vault.path is the directory of store: local; with store: redis the tokens are in Redis (remove path)".into(),
                    )));
                }
            }
        }
        Ok(())
    }

    /// The files the vault reads (`key_file`), resolved, for `--watch`.
    pub fn files(&self, config_file: &Path) -> Vec<PathBuf> {
        self.key_file
            .iter()
            .map(|f| Config::resolve(config_file, &f.value))
            .collect()
    }

    /// `cache_ttl` or its default.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL)
    }

    /// The local store's directory, resolved.
    pub fn local_dir(&self, config_file: &Path) -> PathBuf {
        let path = self.path.as_ref().map_or(Path::new("vault"), |p| &p.value);
        Config::resolve(config_file, path)
    }

    /// The current and previous key material, `key_file` read, lengths checked.
    fn material(&self, config_file: &Path) -> Result<(Vec<u8>, Vec<Vec<u8>>), Problem> {
        let short = |what: &str, len: usize| {
            format!(
                "vault.{what} is {len} bytes; it must be at least {MIN_KEY_BYTES} (e.g. the output of `openssl rand -base64 32`)"
            )
        };
        let current = match (&self.key, &self.key_file) {
            (None, None) => {
                return Err((
                    None,
                    "vault needs key or key_file: the key records are sealed with (e.g. key: ${TOOLGATE_VAULT_KEY}, the output of `openssl rand -base64 32`)".into(),
                ));
            }
            (Some(_), Some(file)) => {
                return Err((
                    Some(file.referenced),
                    "vault takes key or key_file, not both".into(),
                ));
            }
            (Some(key), None) => {
                let key = key.expose().as_bytes().to_vec();
                if key.len() < MIN_KEY_BYTES {
                    return Err((None, short("key", key.len())));
                }
                key
            }
            (None, Some(file)) => {
                let path = Config::resolve(config_file, &file.value);
                let mut key = std::fs::read(&path).map_err(|e| {
                    (
                        Some(file.referenced),
                        format!("vault.key_file: cannot read {}: {e}", path.display()),
                    )
                })?;
                while matches!(key.last(), Some(b'\r' | b'\n')) {
                    key.pop();
                }
                if key.len() < MIN_KEY_BYTES {
                    return Err((
                        Some(file.referenced),
                        short(&format!("key_file ({})", path.display()), key.len()),
                    ));
                }
                key
            }
        };
        let mut previous = Vec::with_capacity(self.previous_keys.len());
        for (i, p) in self.previous_keys.iter().enumerate() {
            let p = p.expose().as_bytes();
            if p.len() < MIN_KEY_BYTES {
                return Err((None, short(&format!("previous_keys[{i}]"), p.len())));
            }
            previous.push(p.to_vec());
        }
        Ok((current, previous))
    }
}

/// AES-256-GCM keys: the current one seals and opens, previous ones (a rotation) only
/// open. Sealed form: version (1 byte) ‖ key id (4) ‖ nonce (12) ‖ ciphertext ‖ tag (16),
/// where the key id (a digest of the key material) names the key that opens it.
pub struct SealKeys {
    current: SealKey,
    previous: Vec<SealKey>,
    rng: SystemRandom,
}

struct SealKey {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
}

impl SealKey {
    fn derive(material: &[u8]) -> SealKey {
        // The configured secret may be any text: HKDF turns it into a uniform AES key, and
        // the id comes from a separate digest so that it reveals nothing of that key.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"toolgate-seal-v1").extract(material);
        let okm = prk
            .expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .expect("HKDF yields one AES-256 key");
        let aead = LessSafeKey::new(UnboundKey::from(okm));
        let digest = Sha256::new()
            .chain_update(b"toolgate-seal-key-id\0")
            .chain_update(material)
            .finalize();
        SealKey {
            id: digest[..KEY_ID_LEN].try_into().expect("4 bytes"),
            aead,
        }
    }
}

impl fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKeys")
            .field("current", &hex(&self.current.id))
            .field(
                "previous",
                &self.previous.iter().map(|k| hex(&k.id)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl SealKeys {
    /// Keys from secrets of at least [`MIN_KEY_BYTES`]; refused when too short (the message
    /// gives the length, never the key) or when two keys are the same.
    pub fn new(current: &[u8], previous: &[Vec<u8>]) -> Result<SealKeys, String> {
        let short = |what: &str, len: usize| {
            format!("{what} is {len} bytes; it must be at least {MIN_KEY_BYTES}")
        };
        if current.len() < MIN_KEY_BYTES {
            return Err(short("the key", current.len()));
        }
        let current = SealKey::derive(current);
        let mut ids = vec![current.id];
        let mut keys = Vec::with_capacity(previous.len());
        for (i, p) in previous.iter().enumerate() {
            if p.len() < MIN_KEY_BYTES {
                return Err(short(&format!("previous key {i}"), p.len()));
            }
            let key = SealKey::derive(p);
            if ids.contains(&key.id) {
                return Err(format!(
                    "previous key {i} is the current key or another previous key again"
                ));
            }
            ids.push(key.id);
            keys.push(key);
        }
        Ok(SealKeys {
            current,
            previous: keys,
            rng: SystemRandom::new(),
        })
    }

    /// `plaintext` sealed with the current key and a random nonce; `purpose` (the
    /// associated data) must be given again to open it.
    pub fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random number generator failed");
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .current
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose),
                &mut out[HEADER_LEN..],
            )
            .expect("AES-GCM seals any value below 64 GiB");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The plaintext of `sealed`, when one of the keys (named by its key id) opens it for
    /// `purpose`; `None` for another key, another purpose or any altered byte.
    pub fn open(&self, purpose: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != VERSION {
            return None;
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1 + KEY_ID_LEN..HEADER_LEN]).ok()?;
        let mut buf = sealed[HEADER_LEN..].to_vec();
        let len = key
            .aead
            .open_in_place(nonce, Aad::from(purpose), &mut buf)
            .ok()?
            .len();
        buf.truncate(len);
        Some(buf)
    }

    /// Whether `sealed` names the current key (a re-seal leaves it alone).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.len() > HEADER_LEN && sealed[0] == VERSION && sealed[1..5] == self.current.id
    }

    /// `N` bytes from the system's CSPRNG (PKCE verifiers, nonces, cookie values).
    pub fn random<const N: usize>() -> [u8; N] {
        let mut out = [0u8; N];
        SystemRandom::new()
            .fill(&mut out)
            .expect("the system's random number generator failed");
        out
    }
}

/// The tokens toolgate holds for one user at one target. `Debug` shows no token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTokens {
    /// Presented to the upstream as `Authorization: Bearer`.
    pub access_token: String,
    /// Gets a new access token when this one expires.
    pub refresh_token: Option<String>,
    /// When the access token expires (Unix seconds), when the server said.
    pub expires_at: Option<u64>,
    /// The scope granted, when the server said.
    pub scope: Option<String>,
    /// When they were obtained (Unix seconds).
    pub obtained_at: u64,
}

impl fmt::Debug for UserTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTokens")
            .field("access_token", &"<redacted>")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("obtained_at", &self.obtained_at)
            .finish()
    }
}

/// An end user: the issuer and subject of their inbound JWT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId {
    /// The token's `iss`.
    pub issuer: Arc<str>,
    /// The token's `sub`.
    pub subject: Arc<str>,
}

impl UserId {
    /// The user `subject` of `issuer`.
    pub fn new(issuer: impl Into<Arc<str>>, subject: impl Into<Arc<str>>) -> UserId {
        UserId {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    /// What the stores know the user by: SHA-256 over a domain string and the
    /// length-prefixed issuer and subject (no pair of strings shares another's digest).
    pub fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(b"toolgate-vault-user\0");
        for part in [&*self.issuer, &*self.subject] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

/// What a re-seal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Records re-encrypted with the current key.
    pub resealed: usize,
    /// Records already sealed with it (or rewritten by a put meanwhile).
    pub current: usize,
    /// Records no configured key opens (left as they are, logged).
    pub unreadable: usize,
}

/// A store failed or did not answer: whether the user has tokens is unknown.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The store's description (never a secret) and what went wrong.
    #[error("token vault: {store}: {reason}")]
    Store {
        /// [`Vault::describe`].
        store: String,
        /// What failed (the store's error, a timeout).
        reason: String,
    },
}

/// Where a vault keeps its records: built with [`Store::local`] or [`Store::redis`].
pub struct Store(Backend);

enum Backend {
    Local(Arc<LocalStore>),
    Redis(RedisStore),
}

impl Store {
    /// Files under `dir` (created on the first write, mode 0700; files 0600):
    /// `<dir>/<hex user digest>/<hex SHA-256(target)>`.
    pub fn local(dir: impl Into<PathBuf>) -> Store {
        Store(Backend::Local(Arc::new(LocalStore { dir: dir.into() })))
    }

    /// A hash per user in `tier`'s Redis (its connection, timeout and key prefix):
    /// `{key_prefix}v:<hex user digest>`, one field per target.
    pub fn redis(tier: &Arc<SharedTier>) -> Result<Store, String> {
        use redis::IntoConnectionInfo;
        let settings = tier.settings();
        let password = settings
            .url
            .expose()
            .into_connection_info()
            .ok()
            .and_then(|info| info.redis_settings().password().map(str::to_owned))
            .filter(|p| !p.is_empty());
        Ok(Store(Backend::Redis(RedisStore {
            tier: tier.clone(),
            prefix: format!("{}v:", settings.key_prefix),
            password,
        })))
    }
}

/// Records read or written lately, by user and target.
type MemoryCache = moka::sync::Cache<(UserId, Arc<str>), Arc<UserTokens>>;

/// The per-user token vault: sealed records in a [`Store`], with a short in-memory cache.
pub struct Vault {
    keys: Arc<SealKeys>,
    store: Store,
    cache: Option<MemoryCache>,
    /// Counts the writes of this vault. A read fills the cache only when no write came in
    /// between, so that a read racing a put or a revoke never caches what they replaced.
    writes: Mutex<u64>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("store", &self.describe())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault `config` describes: its key (read from `key_file`), and its store (for
    /// `redis`, `shared`'s connection).
    pub fn from_config(
        config: &VaultConfig,
        config_file: &Path,
        shared: Option<&Arc<SharedTier>>,
    ) -> Result<Arc<Vault>, String> {
        let (current, previous) = config.material(config_file).map_err(|(_, m)| m)?;
        let keys = SealKeys::new(&current, &previous).map_err(|e| format!("vault: {e}"))?;
        let store = match config.store {
            StoreKind::Local => Store::local(config.local_dir(config_file)),
            StoreKind::Redis => Store::redis(shared.ok_or(
                "vault.store: redis keeps the tokens in the Redis of cache.shared, which is not configured",
            )?)?,
        };
        Ok(Vault::new(keys, store, config.cache_ttl()))
    }

    /// A vault over `store`, records sealed with `keys`, reused in memory for `cache_ttl`
    /// (zero: never).
    pub fn new(keys: SealKeys, store: Store, cache_ttl: Duration) -> Arc<Vault> {
        let cache = (!cache_ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(cache_ttl)
                .support_invalidation_closures()
                .build()
        });
        Arc::new(Vault {
            keys: Arc::new(keys),
            store,
            cache,
            writes: Mutex::new(0),
        })
    }

    /// The sealing keys (also for OAuth `state` values).
    pub fn keys(&self) -> &SealKeys {
        &self.keys
    }

    /// The user's tokens for `target`, from memory when read less than `cache_ttl` ago.
    /// `Ok(None)`: none stored (or none that opens, logged); `Err`: the store failed.
    pub async fn get(
        &self,
        target: &str,
        user: &UserId,
    ) -> Result<Option<Arc<UserTokens>>, VaultError> {
        if let Some(cache) = &self.cache
            && let Some(tokens) = cache.get(&(user.clone(), Arc::from(target)))
        {
            return Ok(Some(tokens));
        }
        self.read(target, user).await
    }

    /// [`Vault::get`] from the store itself (e.g. before a refresh, which another replica
    /// may have done); the memory cache is updated with what it finds.
    pub async fn get_fresh(
        &self,
        target: &str,
        user: &UserId,
    ) -> Result<Option<UserTokens>, VaultError> {
        Ok(self.read(target, user).await?.map(Arc::unwrap_or_clone))
    }

    /// Stores the user's tokens for `target`, sealed with the current key.
    pub async fn put(
        &self,
        target: &str,
        user: &UserId,
        tokens: &UserTokens,
    ) -> Result<(), VaultError> {
        let (user_digest, target_digest) = (user.digest(), sha256(target.as_bytes()));
        let plaintext = serde_json::to_vec(tokens).expect("tokens serialize");
        let sealed = self
            .keys
            .seal(&record_purpose(&user_digest, &target_digest), &plaintext);
        let written = match &self.store.0 {
            Backend::Local(local) => {
                let local = local.clone();
                blocking(move || local.write(&user_digest, &target_digest, &sealed)).await
            }
            Backend::Redis(redis) => redis.write(&user_digest, target, &sealed).await,
        };
        let key = (user.clone(), Arc::from(target));
        self.wrote(|cache| match &written {
            Ok(()) => cache.insert(key, Arc::new(tokens.clone())),
            // Unknown whether it was written: nothing in memory.
            Err(_) => cache.invalidate(&key),
        });
        written.map_err(|e| self.error(e))
    }

    /// Deletes the user's tokens for `target`; whether there were any.
    pub async fn remove(&self, target: &str, user: &UserId) -> Result<bool, VaultError> {
        Ok(self.revoke_user(user, Some(target)).await? > 0)
    }

    /// Deletes the user's tokens for `target`, or for every target: how many records.
    pub async fn revoke_user(
        &self,
        user: &UserId,
        target: Option<&str>,
    ) -> Result<usize, VaultError> {
        let user_digest = user.digest();
        let removed = match &self.store.0 {
            Backend::Local(local) => {
                let local = local.clone();
                let target_digest = target.map(|t| sha256(t.as_bytes()));
                blocking(move || local.revoke(&user_digest, target_digest.as_ref())).await
            }
            Backend::Redis(redis) => redis.revoke(&user_digest, target).await,
        };
        // Whatever the store answered, this replica forgets them.
        self.wrote(|cache| match target {
            Some(target) => cache.invalidate(&(user.clone(), Arc::from(target))),
            None => {
                let user = user.clone();
                cache
                    .invalidate_entries_if(move |(u, _), _| *u == user)
                    .expect("the cache supports invalidation closures");
            }
        });
        removed.map_err(|e| self.error(e))
    }

    /// Re-encrypts with the current key every record sealed with a previous one: after a
    /// key rotation, before the old key is dropped (every replica must have the new key
    /// as `key` first, or their puts would keep sealing with the old one).
    pub async fn reseal(&self) -> Result<ResealReport, VaultError> {
        let report = match &self.store.0 {
            Backend::Local(local) => {
                let (local, keys) = (local.clone(), self.keys.clone());
                blocking(move || local.reseal(&keys)).await
            }
            Backend::Redis(redis) => redis.reseal(&self.keys).await,
        };
        let report = report.map_err(|e| self.error(e))?;
        tracing::info!(store = %self.describe(), resealed = report.resealed, current = report.current, unreadable = report.unreadable, "token vault re-sealed");
        Ok(report)
    }

    /// Where the records are (`local store /path`, `redis store redis://host`, passwords
    /// replaced by `***`).
    pub fn describe(&self) -> String {
        match &self.store.0 {
            Backend::Local(local) => format!("local store {}", local.dir.display()),
            Backend::Redis(redis) => format!(
                "redis store {} (keys {}*)",
                redis.tier.settings().url,
                redis.prefix
            ),
        }
    }

    /// Reads and opens a record, and caches it unless a write came in meanwhile.
    async fn read(
        &self,
        target: &str,
        user: &UserId,
    ) -> Result<Option<Arc<UserTokens>>, VaultError> {
        let generation = *self.writes.lock().expect("not poisoned");
        let (user_digest, target_digest) = (user.digest(), sha256(target.as_bytes()));
        let sealed = match &self.store.0 {
            Backend::Local(local) => {
                let local = local.clone();
                blocking(move || local.read(&user_digest, &target_digest)).await
            }
            Backend::Redis(redis) => redis.read(&user_digest, target).await,
        }
        .map_err(|e| self.error(e))?;
        let forget = || {
            if let Some(cache) = &self.cache {
                cache.invalidate(&(user.clone(), Arc::from(target)));
            }
        };
        let Some(sealed) = sealed else {
            // Gone from the store (another replica removed it): gone from memory too.
            forget();
            return Ok(None);
        };
        let opened = self
            .keys
            .open(&record_purpose(&user_digest, &target_digest), &sealed)
            .and_then(|plain| serde_json::from_slice::<UserTokens>(&plain).ok());
        let Some(tokens) = opened else {
            forget();
            tracing::warn!(
                store = %self.describe(),
                target,
                issuer = %user.issuer,
                subject = %user.subject,
                "token vault: a record does not open with the configured keys (sealed with another key, altered, or moved from another user); treated as absent"
            );
            return Ok(None);
        };
        let tokens = Arc::new(tokens);
        if let Some(cache) = &self.cache {
            let writes = self.writes.lock().expect("not poisoned");
            if *writes == generation {
                cache.insert((user.clone(), Arc::from(target)), tokens.clone());
            }
        }
        Ok(Some(tokens))
    }

    /// Counts a write and applies its effect on the memory cache, atomically with
    /// respect to [`Vault::read`]'s check.
    fn wrote(&self, effect: impl FnOnce(&MemoryCache)) {
        let mut writes = self.writes.lock().expect("not poisoned");
        *writes += 1;
        if let Some(cache) = &self.cache {
            effect(cache);
        }
    }

    fn error(&self, reason: String) -> VaultError {
        VaultError::Store {
            store: self.describe(),
            reason,
        }
    }
}

/// The associated data of a record: it binds the sealed value to its user and target.
fn record_purpose(user: &[u8; 32], target: &[u8; 32]) -> Vec<u8> {
    [RECORD_DOMAIN, user, target].concat()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out
}

/// The 32 bytes a 64-digit lowercase hex name stands for (a store's user or target).
fn unhex32(name: &str) -> Option<[u8; 32]> {
    let bytes = name.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

/// Runs file-system work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(format!("the store's task failed: {e}")))
}

/// `<dir>/<hex user digest>/<hex SHA-256(target)>`, each file one sealed record. Its
/// methods block: they run in [`blocking`].
struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    fn user_dir(&self, user: &[u8; 32]) -> PathBuf {
        self.dir.join(hex(user))
    }

    fn read(&self, user: &[u8; 32], target: &[u8; 32]) -> Result<Option<Vec<u8>>, String> {
        let path = self.user_dir(user).join(hex(target));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn write(&self, user: &[u8; 32], target: &[u8; 32], sealed: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.user_dir(user);
        let path = dir.join(hex(target));
        let mut attempts = 0;
        loop {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            match write_atomically(&path, sealed) {
                // A revoke of this user removed the directory in between: once more.
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts == 0 => attempts += 1,
                written => {
                    return written.map_err(|e| format!("cannot write {}: {e}", path.display()));
                }
            }
        }
    }

    /// Deletes one record (`target`) or all of the user's: how many there were.
    fn revoke(&self, user: &[u8; 32], target: Option<&[u8; 32]>) -> Result<usize, String> {
        let dir = self.user_dir(user);
        let remove = |path: &Path| match std::fs::remove_file(path) {
            Ok(()) => Ok(1),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
        };
        if let Some(target) = target {
            return remove(&dir.join(hex(target)));
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let name = entry.file_name();
            let is_record = name.to_str().and_then(unhex32).is_some();
            // Left-over temporary files go too; only records count.
            let n = remove(&entry.path())?;
            if is_record {
                removed += n;
            }
        }
        // A put racing the revoke may have made a new file: then the directory stays.
        let _ = std::fs::remove_dir(&dir);
        Ok(removed)
    }

    fn reseal(&self, keys: &SealKeys) -> Result<ResealReport, String> {
        let mut report = ResealReport::default();
        let list = |dir: &Path| -> Result<Vec<(String, PathBuf)>, String> {
            let failed = |e: io::Error| format!("cannot list {}: {e}", dir.display());
            let mut out = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(failed)? {
                let entry = entry.map_err(failed)?;
                if let Ok(name) = entry.file_name().into_string() {
                    out.push((name, entry.path()));
                }
            }
            Ok(out)
        };
        if !self.dir.exists() {
            return Ok(report);
        }
        for (name, dir) in list(&self.dir)? {
            let Some(user) = unhex32(&name) else { continue };
            if !dir.is_dir() {
                continue;
            }
            for (name, path) in list(&dir)? {
                let Some(target) = unhex32(&name) else {
                    continue;
                };
                let Some(sealed) = self.read(&user, &target)? else {
                    continue;
                };
                if keys.is_current(&sealed) {
                    report.current += 1;
                    continue;
                }
                let purpose = record_purpose(&user, &target);
                let Some(plain) = keys.open(&purpose, &sealed) else {
                    tracing::warn!(record = %path.display(), "token vault: a record does not open with the configured keys; left as it is");
                    report.unreadable += 1;
                    continue;
                };
                // Narrows (within this machine) the window for a put in between.
                if self.read(&user, &target)?.as_deref() != Some(&sealed[..]) {
                    report.current += 1;
                    continue;
                }
                write_atomically(&path, &keys.seal(&purpose, &plain))
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                report.resealed += 1;
            }
        }
        Ok(report)
    }
}

/// Writes `bytes` to a temporary file (mode 0600) beside `path` and renames it over
/// `path`: a reader sees the old record or the new one, never part of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("record");
    let temp = dir.join(format!(".{name}.{}.tmp", hex(&SealKeys::random::<8>())));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Compare-and-set of one field, so that a re-seal never overwrites a put made since it
/// read the record: 1 when set, 0 when the field changed.
const RESEAL_SCRIPT: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
";

/// A hash per user in the Redis of `cache.shared`; every command under its timeout.
struct RedisStore {
    tier: Arc<SharedTier>,
    /// `{key_prefix}v:`.
    prefix: String,
    /// The URL's password, scrubbed from error messages should it ever appear there.
    password: Option<String>,
}

impl RedisStore {
    fn key(&self, user: &[u8; 32]) -> String {
        format!("{}{}", self.prefix, hex(user))
    }

    /// Runs one command under `cache.shared.timeout`.
    async fn query<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: &redis::Cmd,
    ) -> Result<T, String> {
        let mut conn = self.connection()?;
        self.timed(what, command.query_async::<T>(&mut conn)).await
    }

    fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        self.tier
            .connection()
            .ok_or_else(|| "no connection to Redis could be made".to_string())
    }

    async fn timed<T>(
        &self,
        what: &str,
        query: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        let timeout = self.tier.settings().timeout;
        match tokio::time::timeout(timeout, query).await {
            Ok(Ok(value)) => {
                self.tier.succeeded();
                Ok(value)
            }
            Ok(Err(e)) => {
                let reason = self.scrub(&format!("{what}: {e}"));
                self.tier.failed(&reason);
                Err(reason)
            }
            Err(_) => {
                let reason = format!("{what}: no answer within {timeout:?} (cache.shared.timeout)");
                self.tier.failed(&reason);
                Err(reason)
            }
        }
    }

    fn scrub(&self, text: &str) -> String {
        let text = text.replace(
            self.tier.settings().url.expose(),
            &self.tier.settings().url.to_string(),
        );
        match &self.password {
            Some(password) => text.replace(password.as_str(), "***"),
            None => text,
        }
    }

    async fn read(&self, user: &[u8; 32], target: &str) -> Result<Option<Vec<u8>>, String> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.key(user)).arg(target);
        self.query("HGET", &cmd).await
    }

    async fn write(&self, user: &[u8; 32], target: &str, sealed: &[u8]) -> Result<(), String> {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.key(user)).arg(target).arg(sealed);
        self.query::<i64>("HSET", &cmd).await.map(drop)
    }

    async fn revoke(&self, user: &[u8; 32], target: Option<&str>) -> Result<usize, String> {
        let key = self.key(user);
        if let Some(target) = target {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&key).arg(target);
            return self.query::<usize>("HDEL", &cmd).await;
        }
        // The count and the deletion in one transaction: nothing slips in between.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HLEN")
            .arg(&key)
            .cmd("DEL")
            .arg(&key)
            .ignore();
        let mut conn = self.connection()?;
        let (count,): (usize,) = self.timed("HLEN+DEL", pipe.query_async(&mut conn)).await?;
        Ok(count)
    }

    async fn reseal(&self, keys: &SealKeys) -> Result<ResealReport, String> {
        let mut report = ResealReport::default();
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor = "0".to_string();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(&cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(100);
            let (next, names): (String, Vec<String>) = self.query("SCAN", &scan).await?;
            for name in names {
                let Some(user) = name.strip_prefix(&self.prefix).and_then(unhex32) else {
                    continue;
                };
                let mut all = redis::cmd("HGETALL");
                all.arg(&name);
                let fields: HashMap<String, Vec<u8>> = self.query("HGETALL", &all).await?;
                for (target, sealed) in fields {
                    if keys.is_current(&sealed) {
                        report.current += 1;
                        continue;
                    }
                    let purpose = record_purpose(&user, &sha256(target.as_bytes()));
                    let Some(plain) = keys.open(&purpose, &sealed) else {
                        tracing::warn!(key = %name, target = %target, "token vault: a record does not open with the configured keys; left as it is");
                        report.unreadable += 1;
                        continue;
                    };
                    let mut set = redis::cmd("EVAL");
                    set.arg(RESEAL_SCRIPT)
                        .arg(1)
                        .arg(&name)
                        .arg(&target)
                        .arg(&sealed)
                        .arg(keys.seal(&purpose, &plain));
                    match self.query::<i64>("EVAL (re-seal)", &set).await? {
                        1 => report.resealed += 1,
                        _ => report.current += 1,
                    }
                }
            }
            if next == "0" {
                return Ok(report);
            }
            cursor = next;
        }
    }
}

/// `text` with Redis glob's special characters escaped (a `key_prefix` is literal).
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const A: &[u8] = b"key A: 0123456789abcdef0123456789abcdef";
    const B: &[u8] = b"key B: fedcba9876543210fedcba9876543210";
    const C: &[u8] = b"key C: 00000000000000000000000000000000";

    fn keys(current: &[u8], previous: &[&[u8]]) -> SealKeys {
        let previous: Vec<Vec<u8>> = previous.iter().map(|k| k.to_vec()).collect();
        SealKeys::new(current, &previous).unwrap()
    }

    fn tokens(access: &str) -> UserTokens {
        UserTokens {
            access_token: access.into(),
            refresh_token: Some(format!("refresh-of-{access}")),
            expires_at: Some(2_000_000_000),
            scope: Some("read write".into()),
            obtained_at: 1_700_000_000,
        }
    }

    fn alice() -> UserId {
        UserId::new("https://idp.test", "alice")
    }

    fn bob() -> UserId {
        UserId::new("https://idp.test", "bob")
    }

    fn local(dir: &Path, keys: SealKeys, ttl: Duration) -> Arc<Vault> {
        Vault::new(keys, Store::local(dir), ttl)
    }

    /// The access token `vault` holds for `user` at `target` (there must be one).
    async fn access(vault: &Vault, target: &str, user: &UserId) -> String {
        vault
            .get(target, user)
            .await
            .unwrap()
            .expect("a record")
            .access_token
            .clone()
    }

    /// Stores [`tokens`] of `access` for `user` at `target`.
    async fn store(vault: &Vault, target: &str, user: &UserId, access: &str) {
        vault.put(target, user, &tokens(access)).await.unwrap();
    }

    fn record_path(dir: &Path, user: &UserId, target: &str) -> PathBuf {
        dir.join(hex(&user.digest()))
            .join(hex(&sha256(target.as_bytes())))
    }

    fn parse(yaml: &str) -> VaultConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn sealed_values_open_only_unaltered_for_their_purpose_and_key() {
        let k = keys(A, &[]);
        let sealed = k.seal(b"purpose", b"the secret value");
        assert_eq!(sealed.len(), HEADER_LEN + 16 + TAG_LEN);
        assert_eq!(k.open(b"purpose", &sealed).unwrap(), b"the secret value");
        assert!(memchr::memmem::find(&sealed, b"secret").is_none());
        // Random nonces: the same plaintext seals differently each time.
        assert_ne!(sealed, k.seal(b"purpose", b"the secret value"));
        assert_eq!(k.open(b"", &k.seal(b"", b"")).unwrap(), b"");
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert_eq!(k.open(b"purpose", &altered), None, "byte {i}");
        }
        assert_eq!(k.open(b"purpos", &sealed), None);
        assert_eq!(k.open(b"purpose\0", &sealed), None);
        assert_eq!(k.open(b"purpose", &sealed[..sealed.len() - 1]), None);
        assert_eq!(k.open(b"purpose", &sealed[..HEADER_LEN]), None);
        assert_eq!(k.open(b"purpose", b""), None);
        assert_eq!(keys(B, &[]).open(b"purpose", &sealed), None);
        // Another key with the same id would still not open it (the tag is checked).
        let mut other = keys(B, &[]).seal(b"purpose", b"the secret value");
        other[1..5].copy_from_slice(&k.current.id);
        assert_eq!(k.open(b"purpose", &other), None);
    }

    #[test]
    fn a_rotated_key_still_opens_what_the_previous_one_sealed() {
        let old = keys(A, &[]);
        let sealed = old.seal(b"p", b"value");
        assert!(old.is_current(&sealed));
        let rotated = keys(B, &[A]);
        assert_eq!(rotated.open(b"p", &sealed).unwrap(), b"value");
        assert!(!rotated.is_current(&sealed));
        let fresh = rotated.seal(b"p", b"value");
        assert!(rotated.is_current(&fresh));
        assert_eq!(old.open(b"p", &fresh), None);
        // Once the old key is dropped, its values no longer open.
        assert_eq!(keys(B, &[]).open(b"p", &sealed), None);
        assert!(!rotated.is_current(b""));
    }

    #[test]
    fn short_or_repeated_keys_are_refused_without_showing_them() {
        let err = SealKeys::new(b"hunter2-is-short", &[]).unwrap_err();
        assert!(err.contains("16 bytes") && err.contains("32"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = SealKeys::new(A, &[b"hunter2".to_vec()]).unwrap_err();
        assert!(err.contains("previous key 0 is 7 bytes"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = SealKeys::new(A, &[B.to_vec(), A.to_vec()]).unwrap_err();
        assert!(err.contains("previous key 1"), "{err}");
        let debug = format!("{:?}", keys(A, &[B]));
        assert!(
            !debug.contains("key A") && !debug.contains("0123"),
            "{debug}"
        );
        assert_ne!(SealKeys::random::<32>(), SealKeys::random::<32>());
    }

    #[test]
    fn the_config_is_checked_with_lengths_never_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.yaml");
        let at = serde_saphyr::Location::UNKNOWN;
        let check = |yaml: &str, shared: bool| parse(yaml).validate(&file, &at, shared);
        let err = check("key: hunter2-hunter2\n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vault.key is 15 bytes"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let long = "0123456789abcdef0123456789abcdef";
        let err = check(
            &format!("key: {long}\nprevious_keys: [{long}x, hunter2]\n"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("vault.previous_keys[1] is 7 bytes"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = check(&format!("key: {long}\nprevious_keys: [{long}]\n"), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("previous key 0 is the current key"), "{err}");
        let err = check("store: local\n", false).unwrap_err().to_string();
        assert!(err.contains("vault needs key or key_file"), "{err}");
        let err = parse(&format!("key: {long}\nkey_file: vault.key\n"))
            .validate(&file, &at, false)
            .unwrap_err();
        assert!(err.message.contains("not both"), "{err}");
        assert_eq!(err.line, 2, "points at key_file: {err}");
        let err = check("key_file: vault.key\n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vault.key_file: cannot read"), "{err}");
        // A key file is relative to the config file; its trailing newline is not the key.
        std::fs::write(
            dir.path().join("vault.key"),
            b"hunter2-hunter2-hunter2-hunter2\r\n",
        )
        .unwrap();
        let err = check("key_file: vault.key\n", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is 31 bytes"), "{err}");
        assert!(!err.contains("hunter2-hunter2"), "{err}");
        std::fs::write(dir.path().join("vault.key"), format!("{long}\n")).unwrap();
        let config = parse("key_file: vault.key\ncache_ttl: 0s\n");
        config.validate(&file, &at, false).unwrap();
        assert_eq!(config.files(&file), vec![dir.path().join("vault.key")]);
        assert_eq!(config.cache_ttl(), Duration::ZERO);
        assert_eq!(config.local_dir(&file), dir.path().join("vault"));
        let vault = Vault::from_config(&config, &file, None).unwrap();
        assert_eq!(
            vault.describe(),
            format!("local store {}", dir.path().join("vault").display())
        );
        // The file holds the same key as `key:` with that value.
        let same = parse(&format!("key: {long}\n"));
        let sealed = vault.keys().seal(b"p", b"v");
        let inline = Vault::from_config(&same, &file, None).unwrap();
        assert_eq!(inline.keys().open(b"p", &sealed).unwrap(), b"v");
        assert_eq!(
            parse(&format!("key: {long}\n")).cache_ttl(),
            DEFAULT_CACHE_TTL
        );
        // store: redis needs cache.shared, and has no directory.
        let redis = format!("key: {long}\nstore: redis\n");
        let err = check(&redis, false).unwrap_err().to_string();
        assert!(err.contains("cache.shared"), "{err}");
        check(&redis, true).unwrap();
        let err = check(&format!("{redis}path: somewhere\n"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vault.path"), "{err}");
        assert!(Vault::from_config(&parse(&redis), &file, None).is_err());
        let err = serde_saphyr::from_str::<VaultConfig>("key: x\nstore: disk\n").unwrap_err();
        assert!(err.to_string().contains("disk"), "{err}");
        assert!(serde_saphyr::from_str::<VaultConfig>("kye: x\n").is_err());
        assert!(!format!("{:?}", parse(&format!("key: {long}\n"))).contains(long));
    }

    #[test]
    fn user_digests_keep_issuer_and_subject_apart() {
        let d = |i: &str, s: &str| UserId::new(i, s).digest();
        assert_ne!(d("a", "bc"), d("ab", "c"));
        assert_ne!(d("a\0b", "c"), d("a", "b\0c"));
        assert_eq!(d("https://idp", "alice"), alice_digest_again());
        fn alice_digest_again() -> [u8; 32] {
            UserId::new("https://idp", "alice").digest()
        }
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let text = format!("{:?}", tokens("at-secret"));
        assert!(!text.contains("at-secret"), "{text}");
        assert!(
            text.contains("read write") && text.contains("2000000000"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_local_store_keeps_sealed_private_files_per_user_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vault");
        let vault = local(&root, keys(A, &[]), Duration::ZERO);
        assert!(vault.get("github", &alice()).await.unwrap().is_none());
        assert!(!root.exists(), "created on the first write only");
        store(&vault, "github", &alice(), "at-1").await;
        store(&vault, "jira", &alice(), "at-2").await;
        store(&vault, "github", &bob(), "at-3").await;
        let got = vault.get("github", &alice()).await.unwrap().unwrap();
        assert_eq!(*got, tokens("at-1"));
        assert_eq!(
            vault.get_fresh("github", &bob()).await.unwrap(),
            Some(tokens("at-3"))
        );
        let path = record_path(&root, &alice(), "github");
        let bytes = std::fs::read(&path).unwrap();
        for secret in ["at-1", "refresh-of-at-1", "read write", "alice", "github"] {
            assert!(
                memchr::memmem::find(&bytes, secret.as_bytes()).is_none(),
                "{secret} in the file"
            );
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&root), 0o700);
        // Overwrite; no temporary file is left behind.
        store(&vault, "github", &alice(), "at-4").await;
        assert_eq!(access(&vault, "github", &alice()).await, "at-4");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            2
        );
        // remove: one record.
        assert!(vault.remove("jira", &alice()).await.unwrap());
        assert!(!vault.remove("jira", &alice()).await.unwrap());
        assert!(vault.get("jira", &alice()).await.unwrap().is_none());
        assert!(vault.get("github", &alice()).await.unwrap().is_some());
        // revoke_user: one target, then all of them; other users keep theirs.
        store(&vault, "jira", &alice(), "at-5").await;
        store(&vault, "slack", &alice(), "at-6").await;
        assert_eq!(vault.revoke_user(&alice(), Some("slack")).await.unwrap(), 1);
        assert!(vault.get("slack", &alice()).await.unwrap().is_none());
        assert!(vault.get("jira", &alice()).await.unwrap().is_some());
        assert_eq!(vault.revoke_user(&alice(), None).await.unwrap(), 2);
        assert!(vault.get("github", &alice()).await.unwrap().is_none());
        assert!(vault.get("jira", &alice()).await.unwrap().is_none());
        assert!(!path.parent().unwrap().exists());
        assert_eq!(vault.revoke_user(&alice(), None).await.unwrap(), 0);
        assert!(vault.get("github", &bob()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_failing_local_store_is_an_error_not_an_absence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let vault = local(&file, keys(A, &[]), Duration::from_secs(60));
        let err = vault.get("github", &alice()).await.unwrap_err().to_string();
        assert!(err.starts_with("token vault: local store "), "{err}");
        assert!(err.contains("cannot read"), "{err}");
        let err = vault
            .put("github", &alice(), &tokens("at-secret"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot create") && !err.contains("at-secret"),
            "{err}"
        );
        assert!(
            vault.get("github", &alice()).await.is_err(),
            "nothing cached"
        );
    }

    #[tokio::test]
    async fn the_memory_cache_serves_puts_and_forgets_revoked_users() {
        let dir = tempfile::tempdir().unwrap();
        let cached = local(dir.path(), keys(A, &[]), Duration::from_secs(600));
        let other = local(dir.path(), keys(A, &[]), Duration::ZERO);
        store(&cached, "github", &alice(), "at-1").await;
        store(&cached, "jira", &alice(), "at-2").await;
        // Another replica's write is not seen through the cache, but is by get_fresh
        // (which then refreshes the cache).
        store(&other, "github", &alice(), "at-3").await;
        assert_eq!(access(&cached, "github", &alice()).await, "at-1");
        assert_eq!(
            cached
                .get_fresh("github", &alice())
                .await
                .unwrap()
                .unwrap()
                .access_token,
            "at-3"
        );
        assert_eq!(access(&cached, "github", &alice()).await, "at-3");
        // A record read once is reused while the store loses it.
        store(&other, "wiki", &alice(), "at-4").await;
        assert!(cached.get("wiki", &alice()).await.unwrap().is_some());
        std::fs::remove_file(record_path(dir.path(), &alice(), "wiki")).unwrap();
        assert!(cached.get("wiki", &alice()).await.unwrap().is_some());
        assert!(cached.get_fresh("wiki", &alice()).await.unwrap().is_none());
        assert!(
            cached.get("wiki", &alice()).await.unwrap().is_none(),
            "forgotten"
        );
        // revoke_user clears every target of the user from memory, not only the store:
        // what the other replica writes next is what is read.
        assert_eq!(cached.revoke_user(&alice(), None).await.unwrap(), 2);
        store(&other, "github", &alice(), "at-5").await;
        store(&other, "jira", &alice(), "at-6").await;
        store(&other, "wiki", &alice(), "at-7").await;
        for (target, access) in [("github", "at-5"), ("jira", "at-6"), ("wiki", "at-7")] {
            let got = cached.get(target, &alice()).await.unwrap().unwrap();
            assert_eq!(got.access_token, access, "{target}");
        }
        // One target only: the others stay cached.
        store(&other, "jira", &alice(), "at-8").await;
        store(&other, "github", &alice(), "at-9").await;
        cached.remove("github", &alice()).await.unwrap();
        assert!(cached.get("github", &alice()).await.unwrap().is_none());
        assert_eq!(access(&cached, "jira", &alice()).await, "at-6");
    }

    #[tokio::test]
    async fn a_record_moved_to_another_user_or_target_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let vault = local(dir.path(), keys(A, &[]), Duration::ZERO);
        store(&vault, "github", &alice(), "at-1").await;
        store(&vault, "github", &bob(), "at-2").await;
        let from = record_path(dir.path(), &alice(), "github");
        // Onto bob's record: bob does not get alice's tokens.
        std::fs::copy(&from, record_path(dir.path(), &bob(), "github")).unwrap();
        assert!(vault.get("github", &bob()).await.unwrap().is_none());
        // Onto another of alice's targets.
        store(&vault, "jira", &alice(), "at-3").await;
        std::fs::copy(&from, record_path(dir.path(), &alice(), "jira")).unwrap();
        assert!(vault.get("jira", &alice()).await.unwrap().is_none());
        // The original still opens; a vault with another key opens nothing.
        assert!(vault.get("github", &alice()).await.unwrap().is_some());
        let foreign = local(dir.path(), keys(B, &[]), Duration::ZERO);
        assert!(foreign.get("github", &alice()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reseal_moves_local_records_to_the_current_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = local(dir.path(), keys(A, &[]), Duration::ZERO);
        store(&old, "github", &alice(), "at-1").await;
        store(&old, "jira", &alice(), "at-2").await;
        store(&old, "github", &bob(), "at-3").await;
        // Sealed with a key nobody has any more.
        let lost = local(dir.path(), keys(C, &[]), Duration::ZERO);
        store(&lost, "wiki", &bob(), "at-4").await;
        let rotated = local(dir.path(), keys(B, &[A]), Duration::ZERO);
        store(&rotated, "slack", &bob(), "at-5").await;
        assert_eq!(access(&rotated, "github", &alice()).await, "at-1");
        let report = rotated.reseal().await.unwrap();
        assert_eq!(
            report,
            ResealReport {
                resealed: 3,
                current: 1,
                unreadable: 1
            }
        );
        assert_eq!(
            rotated.reseal().await.unwrap(),
            ResealReport {
                resealed: 0,
                current: 4,
                unreadable: 1
            }
        );
        // The old key can go now.
        let only_new = local(dir.path(), keys(B, &[]), Duration::ZERO);
        for (target, user, access) in [
            ("github", alice(), "at-1"),
            ("jira", alice(), "at-2"),
            ("github", bob(), "at-3"),
            ("slack", bob(), "at-5"),
        ] {
            let got = only_new.get(target, &user).await.unwrap().unwrap();
            assert_eq!(*got, tokens(access));
        }
        assert!(only_new.get("wiki", &bob()).await.unwrap().is_none());
        assert!(old.get("github", &alice()).await.unwrap().is_none());
        // Nothing to do in a store that was never written.
        let empty = local(&dir.path().join("none"), keys(B, &[]), Duration::ZERO);
        assert_eq!(empty.reseal().await.unwrap(), ResealReport::default());
    }
}
