//! API keys: `amk_<32 alphanumerics>`, stored as the hex SHA-256 of the key in the PostgreSQL
//! table `api_keys` (migration `0002_api_keys.sql`). The plaintext is returned once, at creation.
//!
//! Keys carry about 190 random bits, so a plain SHA-256 (no salt, no slow hash) is enough: the
//! hash cannot be inverted and lets a presented key be found by an index look-up.
//!
//! Verified keys (and revoked ones) are cached in memory for a short time, so a request does not
//! reach PostgreSQL each time; a revocation therefore takes effect in other processes within
//! that time. Unknown keys are never cached (no memory growth from guessed keys).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atlasmesh_core::{Role, Scope};
use rand::distributions::{Alphanumeric, DistString};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::jwt::scope_of;
use super::Caller;
use crate::error::{ApiError, Error, Result};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "amk_";
/// Random characters after the prefix.
const KEY_RANDOM_LEN: usize = 32;
/// Characters of the key kept in clear (`amk_` + 8) to recognise it.
const DISPLAY_PREFIX_LEN: usize = KEY_PREFIX.len() + 8;
/// Cached look-ups beyond this are dropped (expired ones first).
const MAX_CACHED: usize = 10_000;

/// How long a verified key is trusted without asking PostgreSQL again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// Hex SHA-256 of a key, as stored in `api_keys.key_hash`.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh random key.
pub fn generate_key() -> String {
    format!(
        "{KEY_PREFIX}{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), KEY_RANDOM_LEN)
    )
}

/// Whether `s` looks like an API key (and not like a JWT).
pub fn looks_like_key(s: &str) -> bool {
    s.starts_with(KEY_PREFIX)
}

/// `(id, name, key_prefix, role, fleets, federations, revoked)` of a listed key.
type KeyListRow = (
    String,
    String,
    String,
    String,
    Vec<String>,
    Vec<String>,
    bool,
);

/// `(name, role, fleets, federations, revoked)` of a key looked up by its hash.
type KeyLookupRow = (String, String, Vec<String>, Vec<String>, bool);

/// A stored key as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub key_prefix: String,
    pub role: Role,
    pub scope: Scope,
    pub revoked: bool,
}

/// Stores a new key named `name` with `role` and `scope`; returns `(id, plaintext key)`. The
/// plaintext is not stored and cannot be shown again. A taken name is a
/// [`sqlx::Error::Database`] unique violation (see [`is_unique_violation`]).
pub async fn create_api_key(
    pool: &PgPool,
    name: &str,
    role: Role,
    scope: &Scope,
) -> Result<(String, String)> {
    let key = generate_key();
    let mut id_bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut id_bytes);
    let id = format!("key_{}", hex::encode(id_bytes));
    let (fleets, federations) = scope_columns(scope);
    sqlx::query(
        "INSERT INTO api_keys (id, name, key_prefix, key_hash, role, fleets, federations) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(name)
    .bind(&key[..DISPLAY_PREFIX_LEN])
    .bind(hash_key(&key))
    .bind(role.as_str())
    .bind(&fleets)
    .bind(&federations)
    .execute(pool)
    .await?;
    Ok((id, key))
}

/// Revokes the key named `name`; false when there is no such unrevoked key.
pub async fn revoke_api_key(pool: &PgPool, name: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every stored key, by name.
pub async fn list_api_keys(pool: &PgPool) -> Result<Vec<ApiKeyInfo>> {
    let rows: Vec<KeyListRow> = sqlx::query_as(
        "SELECT id, name, key_prefix, role, fleets, federations, revoked_at IS NOT NULL \
             FROM api_keys ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(
            |(id, name, key_prefix, role, fleets, federations, revoked)| {
                Ok(ApiKeyInfo {
                    id,
                    name,
                    key_prefix,
                    role: parse_role(&role)?,
                    scope: scope_of(&fleets, &federations),
                    revoked,
                })
            },
        )
        .collect()
}

/// Whether `e` is PostgreSQL's unique violation (e.g. a key name already taken).
pub fn is_unique_violation(e: &Error) -> bool {
    matches!(e, Error::Postgres(sqlx::Error::Database(d)) if d.is_unique_violation())
}

fn scope_columns(scope: &Scope) -> (Vec<String>, Vec<String>) {
    let mut fleets = Vec::new();
    if scope.all {
        fleets.push("*".to_string());
    }
    fleets.extend(scope.fleets.iter().cloned());
    (fleets, scope.federations.clone())
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role).ok_or_else(|| Error::Corrupt(format!("api_keys.role {role:?}")))
}

#[derive(Debug, Clone)]
enum Cached {
    Active(Caller),
    Revoked,
}

/// Looks presented keys up in PostgreSQL, with a short-lived in-memory cache.
#[derive(Debug)]
pub struct ApiKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Cached, Instant)>>,
}

impl ApiKeyCache {
    pub fn new(ttl: Duration) -> ApiKeyCache {
        ApiKeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The caller `key` authenticates: 401 when unknown or revoked, 503 when PostgreSQL is down.
    pub async fn verify(&self, pool: &PgPool, key: &str) -> Result<Caller, ApiError> {
        if !looks_like_key(key) {
            return Err(ApiError::unauthorized("malformed API key"));
        }
        let hash = hash_key(key);
        let cached = self.get(&hash, Instant::now());
        let found = match cached {
            Some(c) => c,
            None => {
                let Some(c) = self.load(pool, &hash).await? else {
                    return Err(ApiError::unauthorized("unknown API key"));
                };
                self.put(hash, c.clone(), Instant::now());
                c
            }
        };
        match found {
            Cached::Active(caller) => Ok(caller),
            Cached::Revoked => Err(ApiError::unauthorized("API key revoked")),
        }
    }

    /// Forgets every cached look-up (e.g. after revoking a key in this process).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Cached, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, hash: &str, now: Instant) -> Option<Cached> {
        let entries = self.lock();
        let (c, at) = entries.get(hash)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| c.clone())
    }

    fn put(&self, hash: String, c: Cached, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= MAX_CACHED {
                entries.clear();
            }
        }
        entries.insert(hash, (c, now));
    }

    /// One round-trip: the key's row, stamping `last_used_at` when it is active.
    async fn load(&self, pool: &PgPool, hash: &str) -> Result<Option<Cached>> {
        let row: Option<KeyLookupRow> = sqlx::query_as(
            "UPDATE api_keys \
             SET last_used_at = CASE WHEN revoked_at IS NULL THEN now() ELSE last_used_at END \
             WHERE key_hash = $1 \
             RETURNING name, role, fleets, federations, revoked_at IS NOT NULL",
        )
        .bind(hash)
        .fetch_optional(pool)
        .await?;
        let Some((name, role, fleets, federations, revoked)) = row else {
            return Ok(None);
        };
        if revoked {
            return Ok(Some(Cached::Revoked));
        }
        Ok(Some(Cached::Active(Caller {
            subject: name,
            kind: super::CallerKind::ApiKey,
            role: parse_role(&role)?,
            scope: scope_of(&fleets, &federations),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert!(looks_like_key(&a) && a.len() == KEY_PREFIX.len() + KEY_RANDOM_LEN);
        assert!(a[KEY_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        // Known vector: SHA-256("abc").
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), hash_key(&b));
    }

    #[test]
    fn scope_survives_the_columns() {
        for scope in [
            Scope::all(),
            Scope::fleets(["f1", "f2"]).with_federations(["fed"]),
            Scope::default(),
        ] {
            let (fleets, federations) = scope_columns(&scope);
            assert_eq!(scope_of(&fleets, &federations), scope);
        }
    }

    #[test]
    fn cache_expires_and_is_bounded() {
        let cache = ApiKeyCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let caller = Caller {
            subject: "k".into(),
            kind: super::super::CallerKind::ApiKey,
            role: Role::Viewer,
            scope: Scope::all(),
        };
        cache.put("h".into(), Cached::Active(caller), t0);
        assert!(matches!(
            cache.get("h", t0 + Duration::from_secs(29)),
            Some(Cached::Active(_))
        ));
        assert!(cache.get("h", t0 + Duration::from_secs(30)).is_none());
        assert!(cache.get("other", t0).is_none());
        for i in 0..MAX_CACHED + 5 {
            cache.put(format!("h{i}"), Cached::Revoked, t0);
        }
        assert!(cache.lock().len() <= MAX_CACHED);
        // A zero TTL caches nothing.
        let none = ApiKeyCache::new(Duration::ZERO);
        none.put("h".into(), Cached::Revoked, t0);
        assert!(none.get("h", t0).is_none());
    }
}
