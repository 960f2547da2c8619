//! `atlasmesh token` and `atlasmesh api-key …`: credentials for the query API.

use std::time::Duration;

use anyhow::{bail, Context};
use atlasmesh_core::config::Config;
use atlasmesh_core::{Role, Scope};
use atlasmesh_query_api::auth;
use clap::{Args, Subcommand};

/// Who a credential is for: role and fleet/federation scope.
#[derive(Args, Debug)]
pub struct Grant {
    /// Role: viewer (read), operator (read + write), admin (everything, incl. keys).
    #[arg(long, value_parser = ["viewer", "operator", "admin"])]
    pub role: String,
    /// Fleet ids the credential may see and change, comma separated; "*" = every fleet and
    /// federation.
    #[arg(long, value_delimiter = ',')]
    pub fleets: Vec<String>,
    /// Federation ids the credential may see and change, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub federations: Vec<String>,
}

impl Grant {
    fn role_and_scope(&self) -> anyhow::Result<(Role, Scope)> {
        let role =
            Role::parse(&self.role).with_context(|| format!("unknown role {}", self.role))?;
        let fleets: Vec<&str> = self
            .fleets
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .collect();
        let federations: Vec<&str> = self
            .federations
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .collect();
        if fleets.is_empty() && federations.is_empty() {
            bail!(
                "give --fleets (\"*\" for all) and/or --federations: an empty scope sees nothing"
            );
        }
        Ok((
            role,
            Scope::from_record(&fleets).with_federations(federations),
        ))
    }
}

/// Prints a JWT signed with the configured HS256 secret (`ATLASMESH_JWT_SECRET` or
/// `ATLASMESH_AUTH__HS256_SECRET`), carrying the configured issuer and audience.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub grant: Grant,
    /// Token subject (recorded as the actor of the caller's commands).
    #[arg(long, default_value = "atlasmesh-cli")]
    pub sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_s: u64,
}

/// Manage API keys (stored hashed in PostgreSQL).
#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create a key and print it once (only its SHA-256 is stored).
    Create {
        /// Unique name of the key (its subject in logs and commands).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        grant: Grant,
    },
    /// Revoke the key named NAME; it is refused within 30 s by every API process.
    Revoke {
        #[arg(long)]
        name: String,
    },
    /// List keys (name, prefix, role, scope, revoked) as JSON lines.
    List,
}

/// `atlasmesh token`: the signed token.
pub fn token(cfg: &Config, args: &TokenArgs) -> anyhow::Result<String> {
    let secret = cfg
        .auth
        .hs256_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .context("auth.hs256_secret is not configured (set ATLASMESH_JWT_SECRET)")?;
    let (role, scope) = args.grant.role_and_scope()?;
    let claims = auth::Claims::new(&args.sub, role, &scope, Duration::from_secs(args.ttl_s))
        .with_issuer(cfg.auth.issuer.clone())
        .with_audience(cfg.auth.audience.clone());
    Ok(auth::sign_hs256(secret, &claims))
}

/// `atlasmesh api-key …`: what to print on stdout.
pub async fn api_key(cfg: &Config, cmd: &ApiKeyCmd) -> anyhow::Result<String> {
    let pool = atlasmesh_sinks::postgres::prepare(&cfg.postgres.url, 2)
        .await
        .context("PostgreSQL: database and migrations")?;
    let out = match cmd {
        ApiKeyCmd::Create { name, grant } => {
            let (role, scope) = grant.role_and_scope()?;
            match auth::create_api_key(&pool, name, role, &scope).await {
                Ok((id, key)) => {
                    eprintln!("api-key: created {name} ({id}); the key is shown only now");
                    key
                }
                Err(e) if auth::api_key::is_unique_violation(&e) => {
                    bail!("an API key named {name} exists already")
                }
                Err(e) => return Err(e).context("creating the API key"),
            }
        }
        ApiKeyCmd::Revoke { name } => {
            if !auth::revoke_api_key(&pool, name)
                .await
                .context("revoking")?
            {
                bail!("no active API key named {name}");
            }
            format!("revoked {name}")
        }
        ApiKeyCmd::List => auth::list_api_keys(&pool)
            .await
            .context("listing API keys")?
            .into_iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id, "name": k.name, "key_prefix": k.key_prefix, "role": k.role.as_str(),
                    "scope": k.scope.to_record(), "revoked": k.revoked,
                })
                .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    pool.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        token: TokenArgs,
    }

    #[tokio::test]
    async fn token_verifies_with_the_same_config() {
        let mut cfg = Config::default();
        let args = T::parse_from([
            "t",
            "--role",
            "operator",
            "--fleets",
            "fleet-a,fleet-b",
            "--federations",
            "f1",
            "--sub",
            "ops",
        ])
        .token;
        assert!(token(&cfg, &args)
            .unwrap_err()
            .to_string()
            .contains("ATLASMESH_JWT_SECRET"));
        cfg.auth.hs256_secret = Some("cli-test-secret".into());
        cfg.auth.issuer = Some("atlasmesh".into());
        let t = token(&cfg, &args).unwrap();
        let auth = auth::Auth::from_config(&cfg.auth).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
        let pool = sqlx_free_pool();
        let caller = auth.authenticate(&headers, &pool).await.unwrap();
        assert_eq!(caller.subject, "ops");
        assert_eq!(caller.role, Role::Operator);
        assert_eq!(
            caller.scope,
            Scope::fleets(["fleet-a", "fleet-b"]).with_federations(["f1"])
        );
    }

    #[test]
    fn empty_scope_and_bad_role_are_refused() {
        let mut cfg = Config::default();
        cfg.auth.hs256_secret = Some("s".into());
        let args = T::parse_from(["t", "--role", "viewer"]).token;
        assert!(token(&cfg, &args)
            .unwrap_err()
            .to_string()
            .contains("--fleets"));
        assert!(T::try_parse_from(["t", "--role", "root", "--fleets", "*"]).is_err());
    }

    fn sqlx_free_pool() -> sqlx::PgPool {
        // Never connected: JWT verification does not touch PostgreSQL.
        sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap()
    }
}
