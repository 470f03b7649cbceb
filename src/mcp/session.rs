//! Handshake-era session ids that need no shared store: the id *is* the session. It carries
//! the negotiated revision, when it was issued, when it expires and a digest of the caller
//! it belongs to, authenticated with HMAC-SHA256 under `gateway.session.key`. Every replica
//! with the same key accepts it, so a load balancer need not pin clients; a forged,
//! altered, expired or borrowed (another caller's) id is refused with 404, which tells the
//! client to start a new session (Streamable HTTP, "Session Management").
//!
//! Wire form: `v1.` + base64url(payload ‖ tag), payload = revision index (1 byte) ‖
//! issued-at and expiry (Unix seconds, 8 bytes each, big-endian) ‖ caller digest (16 bytes)
//! ‖ nonce (8 bytes), tag = the first 16 bytes of HMAC-SHA256(key, "toolgate-session" ‖
//! payload). 76 visible ASCII characters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::LEGACY_VERSIONS;

/// The header that carries a session id.
pub const HEADER: &str = "mcp-session-id";

const PREFIX: &str = "v1.";
const DOMAIN: &[u8] = b"toolgate-session";
const PAYLOAD: usize = 1 + 8 + 8 + 16 + 8;
const TAG: usize = 16;

/// The shortest accepted key, in bytes: HMAC-SHA256's security needs 256 bits of secret.
pub const MIN_KEY_BYTES: usize = 32;

/// The keys session ids are signed and checked with, and how long an id lives.
pub struct SessionKeys {
    /// Signs new ids and checks presented ones.
    current: Hmac<Sha256>,
    /// Only check presented ids (the keys before a rotation).
    previous: Vec<Hmac<Sha256>>,
    ttl: Duration,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("previous", &self.previous.len())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A verified session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The revision negotiated by its `initialize`.
    pub version: &'static str,
}

/// Why a presented id was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an id this gateway's keys signed (garbled, altered, another key).
    Unknown,
    /// Signed here, but past its expiry.
    Expired,
    /// Signed here for a different caller.
    OtherCaller,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Expired => "expired",
            Refusal::OtherCaller => "other_caller",
        }
    }

    /// What the client is told (with HTTP 404: start a new session).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => {
                "session not found: the Mcp-Session-Id was not issued by this gateway (or its key changed); send initialize again"
            }
            Refusal::Expired => "session expired: send initialize again",
            Refusal::OtherCaller => {
                "session not found for this caller: a session belongs to the caller that opened it; send initialize again"
            }
        }
    }
}

impl SessionKeys {
    /// Keys from secrets of at least [`MIN_KEY_BYTES`] bytes (checked by the config).
    pub fn new(current: &[u8], previous: &[&[u8]], ttl: Duration) -> Self {
        let mac = |k: &[u8]| Hmac::<Sha256>::new_from_slice(k).expect("HMAC takes any key");
        Self {
            current: mac(current),
            previous: previous.iter().map(|k| mac(k)).collect(),
            ttl,
        }
    }

    /// A new session id for `version`, bound to `caller` (its identity key, when inbound
    /// authentication is on).
    pub fn issue(&self, version: &'static str, caller: Option<&str>, now: SystemTime) -> String {
        let index = LEGACY_VERSIONS
            .iter()
            .position(|v| *v == version)
            .unwrap_or(0);
        let issued = unix(now);
        let mut payload = [0u8; PAYLOAD];
        payload[0] = index as u8;
        payload[1..9].copy_from_slice(&issued.to_be_bytes());
        payload[9..17].copy_from_slice(&issued.saturating_add(self.ttl.as_secs()).to_be_bytes());
        payload[17..33].copy_from_slice(&caller_digest(caller));
        payload[33..41].copy_from_slice(&fastrand::u64(..).to_be_bytes());
        let mut raw = [0u8; PAYLOAD + TAG];
        raw[..PAYLOAD].copy_from_slice(&payload);
        raw[PAYLOAD..].copy_from_slice(&tag(&self.current, &payload)[..TAG]);
        let mut id = String::with_capacity(PREFIX.len() + 76);
        id.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(raw, &mut id);
        id
    }

    /// Checks a presented id for `caller` at `now`.
    pub fn verify(
        &self,
        id: &str,
        caller: Option<&str>,
        now: SystemTime,
    ) -> Result<Session, Refusal> {
        let encoded = id.strip_prefix(PREFIX).ok_or(Refusal::Unknown)?;
        let mut raw = [0u8; PAYLOAD + TAG];
        match URL_SAFE_NO_PAD.decode_slice(encoded, &mut raw) {
            Ok(n) if n == raw.len() => {}
            _ => return Err(Refusal::Unknown),
        }
        let (payload, presented) = raw.split_at(PAYLOAD);
        let signed = std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|key| {
                let mut mac = key.clone();
                mac.update(DOMAIN);
                mac.update(payload);
                // Constant time, over the truncated tag.
                mac.verify_truncated_left(presented).is_ok()
            });
        if !signed {
            return Err(Refusal::Unknown);
        }
        let version = *LEGACY_VERSIONS
            .get(usize::from(payload[0]))
            .ok_or(Refusal::Unknown)?;
        let expiry = u64::from_be_bytes(payload[9..17].try_into().expect("8 bytes"));
        if unix(now) >= expiry {
            return Err(Refusal::Expired);
        }
        if payload[17..33] != caller_digest(caller) {
            return Err(Refusal::OtherCaller);
        }
        Ok(Session { version })
    }
}

fn tag(key: &Hmac<Sha256>, payload: &[u8]) -> [u8; 32] {
    let mut mac = key.clone();
    mac.update(DOMAIN);
    mac.update(payload);
    mac.finalize().into_bytes().into()
}

/// A digest of the caller's identity: the id never shows who opened the session, only
/// lets a replica check that it is the same caller. Anonymous callers share one value.
fn caller_digest(caller: Option<&str>) -> [u8; 16] {
    let Some(caller) = caller else {
        return [0; 16];
    };
    let digest = Sha256::new()
        .chain_update(b"toolgate-session-caller\0")
        .chain_update(caller.as_bytes())
        .finalize();
    digest[..16].try_into().expect("16 bytes")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn an_id_is_accepted_by_any_holder_of_the_key_until_it_expires() {
        let issuer = SessionKeys::new(KEY, &[], Duration::from_secs(600));
        let replica = SessionKeys::new(KEY, &[], Duration::from_secs(600));
        let id = issuer.issue("2025-06-18", Some("iss|alice"), at(1_000));
        assert!(id.starts_with("v1.") && id.len() == 79, "{id}");
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        assert_eq!(
            replica.verify(&id, Some("iss|alice"), at(1_599)),
            Ok(Session {
                version: "2025-06-18"
            })
        );
        assert_eq!(
            replica.verify(&id, Some("iss|alice"), at(1_600)),
            Err(Refusal::Expired)
        );
        assert_ne!(id, issuer.issue("2025-06-18", Some("iss|alice"), at(1_000)));
    }

    #[test]
    fn forged_altered_and_borrowed_ids_are_refused() {
        let keys = SessionKeys::new(KEY, &[], Duration::from_secs(600));
        let id = keys.issue("2025-03-26", None, at(1_000));
        assert!(keys.verify(&id, None, at(1_001)).is_ok());
        // Another key, another gateway.
        let foreign = SessionKeys::new(OTHER, &[], Duration::from_secs(600));
        assert_eq!(foreign.verify(&id, None, at(1_001)), Err(Refusal::Unknown));
        // Every single-character change of the encoded id is caught.
        for i in PREFIX.len()..id.len() {
            let mut bytes = id.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            assert_eq!(
                keys.verify(&altered, None, at(1_001)),
                Err(Refusal::Unknown),
                "position {i}"
            );
        }
        // Empty, truncated or not this format at all.
        for bad in ["", "v1.", "v2.AAAA", "v1.!!!!", &id[..id.len() - 1]] {
            assert_eq!(keys.verify(bad, None, at(1_001)), Err(Refusal::Unknown));
        }
        let alice = keys.issue("2025-11-25", Some("iss|alice"), at(1_000));
        assert_eq!(
            keys.verify(&alice, Some("iss|mallory"), at(1_001)),
            Err(Refusal::OtherCaller)
        );
        assert_eq!(
            keys.verify(&alice, None, at(1_001)),
            Err(Refusal::OtherCaller)
        );
    }

    #[test]
    fn a_rotated_key_still_accepts_the_ids_of_the_previous_one() {
        let old = SessionKeys::new(KEY, &[], Duration::from_secs(600));
        let id = old.issue("2025-11-25", None, at(1_000));
        let rotated = SessionKeys::new(OTHER, &[KEY], Duration::from_secs(600));
        assert!(rotated.verify(&id, None, at(1_001)).is_ok());
        let fresh = rotated.issue("2025-11-25", None, at(1_001));
        assert_eq!(old.verify(&fresh, None, at(1_002)), Err(Refusal::Unknown));
    }
}
