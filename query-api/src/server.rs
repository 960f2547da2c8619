//! Serving [`crate::app`] over HTTP/1.1 with the connection-level limits of `api.*`:
//!
//! - at most `api.max_connections` connections are served at once: the accept loop takes a
//!   permit before it accepts, so further clients wait in the listen backlog (they are not
//!   refused) until a connection closes;
//! - a client must send a request's head within `api.header_read_timeout_ms` — counted from
//!   the first read of the request, so the timeout also ends idle kept-alive connections —
//!   or the connection is closed (slowloris clients no longer hold connections for ever);
//! - the parser's head limits sit above `api.max_header_bytes` so that the API itself
//!   answers oversized heads with a JSON 431 ([`crate::limits`]);
//! - every request carries its peer address ([`ConnectInfo`]) for the per-address limits.
//!
//! Body read timeouts are the body extractor's ([`crate::body`]). On shutdown the listener
//! closes, idle connections close, and in-flight requests are answered before
//! [`serve_listener`] returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use atlasmesh_core::config::ApiConfig;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::error::Result;
use crate::state::AppState;

/// Pause after an accept error that is not about one connection (e.g. out of descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Binds `listen` and serves [`crate::app`] on it until `shutdown` completes, then drains
/// in-flight requests.
pub async fn serve(
    state: AppState,
    listen: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    serve_listener(state, listener, shutdown).await
}

/// The HTTP/1 connection settings of `api`.
fn http1(api: &ApiConfig) -> hyper::server::conn::http1::Builder {
    let (max_head, max_headers, buffer) = crate::limits::parser_limits(api.max_header_bytes);
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(api.header_read_timeout_ms))
        .max_header_size(max_head)
        .max_headers(max_headers)
        .max_buf_size(buffer);
    b
}

/// Serves [`crate::app`] on `listener` (see the module docs) until `shutdown` completes, then
/// stops accepting and waits for the open connections to finish their requests.
pub async fn serve_listener(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let api = state.config.api.clone();
    tracing::info!(
        listen = %listener.local_addr()?,
        max_connections = api.max_connections,
        header_read_timeout_ms = api.header_read_timeout_ms,
        "Query API listening."
    );
    let router = crate::app(state);
    let http = http1(&api);
    let permits = Arc::new(Semaphore::new(api.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A permit first: beyond the limit, clients wait in the backlog.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let open = metrics::gauge!(crate::metrics::API_CONNECTIONS_OPEN);
            open.increment(1.0);
            if let Err(e) = conn.await {
                // Timeouts, resets and malformed requests: the client's business.
                tracing::debug!(peer = %peer, error = %e, "Connection ended with an error.");
            }
            open.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "Query API draining in-flight requests."
    );
    graceful.shutdown().await;
    tracing::info!("Query API stopped.");
    Ok(())
}

/// Errors about one connection (reset before it was accepted, say): accept the next one.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
