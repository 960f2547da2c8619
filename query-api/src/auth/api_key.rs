//! API keys: `amk_<32 alphanumerics>`, stored as the hex SHA-256 of the key in the PostgreSQL
//! table `api_keys` (migration `0002_api_keys.sql`). The plaintext is returned once, at creation.
//!
//! Keys carry about 190 random bits, so a plain SHA-256 (no salt, no slow hash) is enough: the
//! hash cannot be inverted and lets a presented key be found by an index look-up.
//!
//! Verified keys (and revoked ones) are cached in memory for a short time, so a request does not
//! reach PostgreSQL each time; a revocation therefore takes effect in other processes within
//! that time. Unknown keys are remembered too, more briefly ([`UNKNOWN_CACHE_TTL`]) and in a
//! bounded map of their own (guessed keys can neither grow memory nor push verified keys out),
//! and concurrent look-ups of one key share a single query: a flood of one unknown key costs
//! one PostgreSQL look-up per [`UNKNOWN_CACHE_TTL`]. Every look-up is counted in
//! `atlasmesh_api_key_lookups_total{outcome}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
/// Unknown keys remembered at once; when full of live entries, further ones are not cached.
const MAX_UNKNOWN_CACHED: usize = 10_000;

/// How long a verified key is trusted without asking PostgreSQL again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// How long an unknown key is refused without asking PostgreSQL again (at most the cache's
/// TTL). Keys are random, so no client presents a key before it exists: remembering an
/// unknown one refuses nothing that would be accepted.
pub const UNKNOWN_CACHE_TTL: Duration = Duration::from_secs(5);

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
    Unknown,
}

/// One look-up in flight per key hash: its lock is held while PostgreSQL is asked.
type Flights = HashMap<String, Arc<tokio::sync::Mutex<()>>>;

/// Looks presented keys up in PostgreSQL, with a short-lived in-memory cache.
#[derive(Debug)]
pub struct ApiKeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Cached, Instant)>>,
    /// Unknown key hashes and when they were looked up.
    unknown: Mutex<HashMap<String, Instant>>,
    flights: Mutex<Flights>,
    lookups: AtomicU64,
}

fn relock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes its key's flight when the last request waiting on it is done (or cancelled).
struct FlightGuard<'a> {
    flights: &'a Mutex<Flights>,
    hash: &'a str,
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = relock(self.flights);
        // The map's reference and ours: nobody else waits.
        if Arc::strong_count(&self.flight) <= 2 {
            flights.remove(self.hash);
        }
    }
}

impl ApiKeyCache {
    pub fn new(ttl: Duration) -> ApiKeyCache {
        ApiKeyCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            unknown: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
        }
    }

    /// The caller `key` authenticates: 401 when unknown or revoked, 503 when PostgreSQL is down.
    pub async fn verify(&self, pool: &PgPool, key: &str) -> Result<Caller, ApiError> {
        if !looks_like_key(key) {
            return Err(ApiError::unauthorized("malformed API key"));
        }
        let hash = hash_key(key);
        let found = match self.get(&hash, Instant::now()) {
            Some(c) => c,
            None => self.load_once(pool, &hash).await?,
        };
        match found {
            Cached::Active(caller) => Ok(caller),
            Cached::Revoked => Err(ApiError::unauthorized("API key revoked")),
            Cached::Unknown => Err(ApiError::unauthorized("unknown API key")),
        }
    }

    /// PostgreSQL look-ups made so far.
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Forgets every cached look-up (e.g. after revoking a key in this process).
    pub fn clear(&self) {
        self.lock().clear();
        relock(&self.unknown).clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Cached, Instant)>> {
        relock(&self.entries)
    }

    fn unknown_ttl(&self) -> Duration {
        self.ttl.min(UNKNOWN_CACHE_TTL)
    }

    /// Looks `hash` up, once for all concurrent requests presenting it: the first asks
    /// PostgreSQL and caches the answer, the others wait for it and read the cache.
    async fn load_once(&self, pool: &PgPool, hash: &str) -> Result<Cached> {
        if self.ttl.is_zero() {
            return self.load(pool, hash).await;
        }
        let flight = relock(&self.flights)
            .entry(hash.to_string())
            .or_default()
            .clone();
        let guard = FlightGuard {
            flights: &self.flights,
            hash,
            flight,
        };
        let _turn = guard.flight.lock().await;
        if let Some(c) = self.get(hash, Instant::now()) {
            return Ok(c);
        }
        let c = self.load(pool, hash).await?;
        self.put(hash.to_string(), c.clone(), Instant::now());
        Ok(c)
    }

    fn get(&self, hash: &str, now: Instant) -> Option<Cached> {
        if let Some((c, at)) = self.lock().get(hash) {
            if now.saturating_duration_since(*at) < self.ttl {
                return Some(c.clone());
            }
        }
        let at = *relock(&self.unknown).get(hash)?;
        (now.saturating_duration_since(at) < self.unknown_ttl()).then_some(Cached::Unknown)
    }

    fn put(&self, hash: String, c: Cached, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if let Cached::Unknown = c {
            let ttl = self.unknown_ttl();
            let mut unknown = relock(&self.unknown);
            if unknown.len() >= MAX_UNKNOWN_CACHED {
                unknown.retain(|_, at| now.saturating_duration_since(*at) < ttl);
            }
            if unknown.len() < MAX_UNKNOWN_CACHED {
                unknown.insert(hash, now);
            }
            return;
        }
        relock(&self.unknown).remove(&hash);
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
    async fn load(&self, pool: &PgPool, hash: &str) -> Result<Cached> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let row: Result<Option<KeyLookupRow>, sqlx::Error> = sqlx::query_as(
            "UPDATE api_keys \
             SET last_used_at = CASE WHEN revoked_at IS NULL THEN now() ELSE last_used_at END \
             WHERE key_hash = $1 \
             RETURNING name, role, fleets, federations, revoked_at IS NOT NULL",
        )
        .bind(hash)
        .fetch_optional(pool)
        .await;
        let outcome = match &row {
            Err(_) => "error",
            Ok(None) => "unknown",
            Ok(Some((.., true))) => "revoked",
            Ok(Some(_)) => "active",
        };
        metrics::counter!(crate::metrics::API_KEY_LOOKUPS, "outcome" => outcome).increment(1);
        let Some((name, role, fleets, federations, revoked)) = row? else {
            return Ok(Cached::Unknown);
        };
        if revoked {
            return Ok(Cached::Revoked);
        }
        Ok(Cached::Active(Caller {
            subject: name,
            kind: super::CallerKind::ApiKey,
            role: parse_role(&role)?,
            scope: scope_of(&fleets, &federations),
        }))
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
        none.put("u".into(), Cached::Unknown, t0);
        assert!(none.get("h", t0).is_none() && none.get("u", t0).is_none());
    }

    #[test]
    fn unknown_keys_are_remembered_briefly_and_boundedly() {
        let cache = ApiKeyCache::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let known = Caller {
            subject: "k".into(),
            kind: super::super::CallerKind::ApiKey,
            role: Role::Viewer,
            scope: Scope::all(),
        };
        cache.put("known".into(), Cached::Active(known), t0);
        cache.put("u".into(), Cached::Unknown, t0);
        let just_before = t0 + UNKNOWN_CACHE_TTL - Duration::from_millis(1);
        assert!(matches!(cache.get("u", just_before), Some(Cached::Unknown)));
        assert!(cache.get("u", t0 + UNKNOWN_CACHE_TTL).is_none());
        // A shorter cache TTL bounds it too.
        let short = ApiKeyCache::new(Duration::from_secs(1));
        short.put("u".into(), Cached::Unknown, t0);
        assert!(short.get("u", t0 + Duration::from_secs(1)).is_none());
        // Guessed keys fill their own map only: the verified key stays cached.
        for i in 0..MAX_UNKNOWN_CACHED + 50 {
            cache.put(format!("guess{i}"), Cached::Unknown, t0);
        }
        assert_eq!(relock(&cache.unknown).len(), MAX_UNKNOWN_CACHED);
        assert!(matches!(cache.get("known", t0), Some(Cached::Active(_))));
        // Expired guesses make room again.
        cache.put("later".into(), Cached::Unknown, t0 + UNKNOWN_CACHE_TTL);
        assert_eq!(relock(&cache.unknown).len(), 1);
        // A key found after all (another process created it) replaces the unknown entry.
        cache.put("later".into(), Cached::Revoked, t0 + UNKNOWN_CACHE_TTL);
        assert!(matches!(
            cache.get("later", t0 + UNKNOWN_CACHE_TTL),
            Some(Cached::Revoked)
        ));
    }
}
