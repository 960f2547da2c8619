use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use atlasmesh_core::domain::{ListQuery, Page, Resource};
use atlasmesh_core::Scope;
use atlasmesh_sinks::store::{self, CommandCtx, Outcome};
use serde_json::Value;
use sqlx::PgPool;

pub fn database_url() -> String {
    let base = std::env::var("DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (base, query) = match base.split_once('?') {
        Some((b, q)) => (b.to_string(), Some(q.to_string())),
        None => (base, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => &base,
    };
    match query {
        Some(q) => format!("{host}/atlasmesh_store_it?{q}"),
        None => format!("{host}/atlasmesh_store_it"),
    }
}

/// A test's handle: its own fleets and command ids in the shared test database.
pub struct T {
    pub pool: PgPool,
    /// Unique prefix of this test's fleets and command ids.
    pub tag: String,
    n: AtomicU32,
    clock: AtomicI64,
}

pub async fn setup(name: &str) -> T {
    let url = database_url();
    atlasmesh_sinks::postgres::ensure_database(&url)
        .await
        .expect("create database");
    let pool = atlasmesh_sinks::postgres::connect(&url, 30)
        .await
        .expect("connect");
    atlasmesh_sinks::postgres::migrate(&pool)
        .await
        .expect("migrate");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    T {
        pool,
        tag: format!("{name}-{}-{nanos}", std::process::id()),
        n: AtomicU32::new(0),
        clock: AtomicI64::new(1_714_550_400_000),
    }
}

impl T {
    /// A fleet id of this test.
    pub fn fleet(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    pub fn scope(&self, fleets: &[&str]) -> Scope {
        Scope::fleets(fleets.iter().map(|f| self.fleet(f)))
    }

    pub fn next_id(&self) -> String {
        format!("{}-c{}", self.tag, self.n.fetch_add(1, Ordering::Relaxed))
    }

    /// Applies one command in its own transaction (committed), one second after the previous
    /// command of this test.
    pub async fn run(&self, scope: &Scope, kind: &str, payload: Value) -> Outcome {
        let id = self.next_id();
        self.run_as(&id, scope, kind, payload).await
    }

    pub async fn run_as(
        &self,
        command_id: &str,
        scope: &Scope,
        kind: &str,
        payload: Value,
    ) -> Outcome {
        let at = self.clock.fetch_add(1000, Ordering::Relaxed);
        let mut tx = self.pool.begin().await.unwrap();
        let out = store::apply(
            &mut tx,
            CommandCtx {
                command_id,
                kind,
                actor: "tester",
                scope,
                issued_at_ms: at,
                payload: &payload,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        tx.commit().await.unwrap();
        out
    }

    /// Like [`T::run`], expecting the command to be applied; returns the entity id.
    pub async fn ok(&self, scope: &Scope, kind: &str, payload: Value) -> String {
        match self.run(scope, kind, payload).await {
            Outcome::Applied { entity_id, .. } => entity_id,
            Outcome::Rejected { reason } => panic!("{kind} rejected: {reason}"),
        }
    }

    /// Expects a rejection; returns its reason.
    pub async fn rejected(&self, scope: &Scope, kind: &str, payload: Value) -> String {
        match self.run(scope, kind, payload).await {
            Outcome::Rejected { reason } => reason,
            applied => panic!("{kind} should be rejected, got {applied:?}"),
        }
    }

    pub async fn get<R: Resource>(&self, scope: &Scope, id: &str) -> Option<R::View> {
        store::get::<R>(&self.pool, scope, id).await.unwrap()
    }

    pub async fn list<R: Resource>(
        &self,
        scope: &Scope,
        filters: &[(&'static str, String)],
    ) -> Page<R::View> {
        let q = ListQuery {
            filters: filters.to_vec(),
            ..ListQuery::default()
        };
        store::list::<R>(&self.pool, scope, &q).await.unwrap()
    }

    pub async fn count(&self, sql: &str, bind: &str) -> i64 {
        sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}
