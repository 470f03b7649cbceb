//! The token vault's Redis store (`vault.store: redis`) against a real `redis-server`: two
//! vaults sharing one Redis (two replicas) see each other's records and revocations, Redis
//! holds only sealed bytes, an outage is an error rather than "not connected", and a
//! re-seal moves every record to the current key.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use toolgate::auth::vault::{ResealReport, SealKeys, Store, UserId, UserTokens, Vault};
use toolgate::cache::shared::SharedTier;

use crate::support::free_port;
use crate::support::redis::Redis;

const A: &[u8] = b"key A: 0123456789abcdef0123456789abcdef";
const B: &[u8] = b"key B: fedcba9876543210fedcba9876543210";

/// The shared tier of a replica whose `cache.shared` is `url` with `key_prefix`.
fn tier(url: &str, key_prefix: &str) -> Arc<SharedTier> {
    let yaml = format!(
        "cache:\n  shared: {{url: \"{url}\", timeout: 2s, key_prefix: \"{key_prefix}\"}}\n"
    );
    let config = toolgate::config::Config::parse(&yaml, Path::new("gw.yaml")).unwrap();
    SharedTier::new(&config.cache.shared.unwrap().value).unwrap()
}

/// A vault (no memory cache) in `tier`'s Redis, sealing with `current`.
fn vault(tier: &Arc<SharedTier>, current: &[u8], previous: &[&[u8]]) -> Arc<Vault> {
    let previous: Vec<Vec<u8>> = previous.iter().map(|k| k.to_vec()).collect();
    let keys = SealKeys::new(current, &previous).unwrap();
    Vault::new(keys, Store::redis(tier).unwrap(), Duration::ZERO)
}

fn tokens(access: &str) -> UserTokens {
    UserTokens {
        access_token: access.into(),
        refresh_token: Some(format!("refresh-of-{access}")),
        expires_at: Some(2_000_000_000),
        scope: Some("repo".into()),
        obtained_at: 1_700_000_000,
    }
}

fn alice() -> UserId {
    UserId::new("https://idp.test", "alice")
}

fn bob() -> UserId {
    UserId::new("https://idp.test", "bob")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every hash the vaults wrote under `prefix`, as the test's own connection sees it.
async fn raw(redis: &Redis, prefix: &str) -> HashMap<String, HashMap<String, Vec<u8>>> {
    let mut conn = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = HashMap::new();
    for key in keys {
        let fields: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        out.insert(key, fields);
    }
    out
}

#[tokio::test]
async fn two_vaults_sharing_redis_see_each_others_records_and_revocations() {
    let redis = Redis::start().await;
    let one = vault(&tier(&redis.url(), "tg:"), A, &[]);
    let two = vault(&tier(&redis.url(), "tg:"), A, &[]);
    assert!(one.describe().starts_with("redis store redis+unix://"));
    assert!(one.get("github", &alice()).await.unwrap().is_none());

    one.put("github", &alice(), &tokens("gho_alice1"))
        .await
        .unwrap();
    two.put("jira", &alice(), &tokens("jira_alice2"))
        .await
        .unwrap();
    one.put("github", &bob(), &tokens("gho_bob3"))
        .await
        .unwrap();
    assert_eq!(
        *two.get("github", &alice()).await.unwrap().unwrap(),
        tokens("gho_alice1")
    );
    assert_eq!(
        one.get_fresh("jira", &alice()).await.unwrap(),
        Some(tokens("jira_alice2"))
    );

    // One hash per user, one field per target; only sealed bytes, no identity in clear.
    let stored = raw(&redis, "tg:").await;
    let alice_key = format!("tg:v:{}", hex(&alice().digest()));
    let mut fields: Vec<&String> = stored[&alice_key].keys().collect();
    fields.sort();
    assert_eq!(fields, ["github", "jira"]);
    assert_eq!(stored.len(), 2, "{:?}", stored.keys());
    for (key, hash) in &stored {
        assert!(!key.contains("alice") && !key.contains("bob"), "{key}");
        for value in hash.values() {
            for secret in ["gho_", "jira_", "refresh-of", "alice", "repo"] {
                assert!(
                    memchr::memmem::find(value, secret.as_bytes()).is_none(),
                    "{secret} in {key}"
                );
            }
        }
    }

    // A put from one replica replaces what the other reads.
    two.put("github", &alice(), &tokens("gho_alice4"))
        .await
        .unwrap();
    assert_eq!(
        one.get("github", &alice())
            .await
            .unwrap()
            .unwrap()
            .access_token,
        "gho_alice4"
    );

    // Revocations: one target, then all of a user's; the other user keeps theirs.
    assert!(two.remove("jira", &alice()).await.unwrap());
    assert!(!one.remove("jira", &alice()).await.unwrap());
    assert!(one.get("jira", &alice()).await.unwrap().is_none());
    one.put("jira", &alice(), &tokens("jira_alice5"))
        .await
        .unwrap();
    one.put("wiki", &alice(), &tokens("wiki_alice6"))
        .await
        .unwrap();
    assert_eq!(two.revoke_user(&alice(), Some("wiki")).await.unwrap(), 1);
    assert!(one.get("wiki", &alice()).await.unwrap().is_none());
    assert!(one.get("jira", &alice()).await.unwrap().is_some());
    assert_eq!(one.revoke_user(&alice(), None).await.unwrap(), 2);
    for target in ["github", "jira", "wiki"] {
        assert!(
            two.get(target, &alice()).await.unwrap().is_none(),
            "{target}"
        );
    }
    assert!(!raw(&redis, "tg:").await.contains_key(&alice_key));
    assert_eq!(two.revoke_user(&alice(), None).await.unwrap(), 0);
    assert!(two.get("github", &bob()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_record_of_another_user_or_key_does_not_open() {
    let redis = Redis::start().await;
    let shared = tier(&redis.url(), "tg:");
    let mine = vault(&shared, A, &[]);
    mine.put("github", &alice(), &tokens("gho_alice"))
        .await
        .unwrap();
    mine.put("github", &bob(), &tokens("gho_bob"))
        .await
        .unwrap();
    // Copy alice's sealed record over bob's, and over alice's other target.
    let mut conn = redis.connection().await;
    let alice_key = format!("tg:v:{}", hex(&alice().digest()));
    let sealed: Vec<u8> = redis::cmd("HGET")
        .arg(&alice_key)
        .arg("github")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("tg:v:{}", hex(&bob().digest())))
        .arg("github")
        .arg(&sealed)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&alice_key)
        .arg("jira")
        .arg(&sealed)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(mine.get("github", &bob()).await.unwrap().is_none());
    assert!(mine.get("jira", &alice()).await.unwrap().is_none());
    assert!(mine.get("github", &alice()).await.unwrap().is_some());
    let foreign = vault(&shared, B, &[]);
    assert!(foreign.get("github", &alice()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stopped_redis_is_an_error_that_hides_the_password() {
    let port = free_port().to_string();
    let mut redis = Redis::start_with(&[
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--requirepass",
        "hunter2",
    ])
    .await;
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let vault = vault(&tier(&url, "tg:"), A, &[]);
    let described = vault.describe();
    assert!(
        described.contains("127.0.0.1") && !described.contains("hunter2"),
        "{described}"
    );
    vault
        .put("github", &alice(), &tokens("gho_secret"))
        .await
        .unwrap();
    assert!(vault.get("github", &alice()).await.unwrap().is_some());

    redis.stop();
    let get = vault.get("github", &alice()).await;
    let err = get
        .expect_err("a stopped Redis is not `not connected`")
        .to_string();
    assert!(
        err.starts_with("token vault: redis store redis://"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    for result in [
        vault.get_fresh("github", &alice()).await.map(drop),
        vault.put("github", &alice(), &tokens("gho_secret")).await,
        vault.revoke_user(&alice(), None).await.map(drop),
        vault.remove("github", &alice()).await.map(drop),
        vault.reseal().await.map(drop),
    ] {
        let err = result.unwrap_err().to_string();
        assert!(
            !err.contains("hunter2") && !err.contains("gho_secret"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn reseal_after_a_rotation_moves_every_record_to_the_new_key() {
    let redis = Redis::start().await;
    // A prefix with glob characters: the scan must take it literally.
    let prefix = "tg[1]:";
    let old = vault(&tier(&redis.url(), prefix), A, &[]);
    for (target, user) in [("github", alice()), ("jira", alice()), ("github", bob())] {
        let access = format!("{target}-{}", user.subject);
        old.put(target, &user, &tokens(&access)).await.unwrap();
    }
    // Keys of another prefix (`tg1:` matches the unescaped pattern) are not touched.
    let neighbour = vault(&tier(&redis.url(), "tg1:"), A, &[]);
    neighbour
        .put("github", &alice(), &tokens("n"))
        .await
        .unwrap();
    let before = raw(&redis, "tg1:").await;

    let rotated = vault(&tier(&redis.url(), prefix), B, &[A]);
    assert!(rotated.get("jira", &alice()).await.unwrap().is_some());
    rotated
        .put("wiki", &bob(), &tokens("wiki-bob"))
        .await
        .unwrap();
    assert_eq!(
        rotated.reseal().await.unwrap(),
        ResealReport {
            resealed: 3,
            current: 1,
            unreadable: 0
        }
    );
    assert_eq!(
        rotated.reseal().await.unwrap(),
        ResealReport {
            resealed: 0,
            current: 4,
            unreadable: 0
        }
    );
    assert_eq!(raw(&redis, "tg1:").await, before);

    // The old key can be dropped: everything opens with the new one alone, nothing with
    // the old one.
    let only_new = vault(&tier(&redis.url(), prefix), B, &[]);
    for (target, user) in [
        ("github", alice()),
        ("jira", alice()),
        ("github", bob()),
        ("wiki", bob()),
    ] {
        let got = only_new.get(target, &user).await.unwrap().unwrap();
        assert_eq!(got.access_token, format!("{target}-{}", user.subject));
        assert!(old.get(target, &user).await.unwrap().is_none());
    }
    // A record no key opens is counted and left alone.
    let lost = vault(
        &tier(&redis.url(), prefix),
        b"key C: 00000000000000000000000000000000",
        &[],
    );
    lost.put("slack", &alice(), &tokens("slack-alice"))
        .await
        .unwrap();
    let report = only_new.reseal().await.unwrap();
    assert_eq!((report.current, report.unreadable), (4, 1), "{report:?}");
    assert!(lost.get("slack", &alice()).await.unwrap().is_some());
}
