//! What one client may cost the API before any handler, store or credential check runs:
//!
//! - [`limit_head`]: a request head (request line and headers) larger than
//!   `api.max_header_bytes`, or with more than [`MAX_HEADERS`] headers, is 431 in the API's
//!   JSON shape. The HTTP parser's own limits are set well above these ([`parser_limits`]), so
//!   only an absurd head meets the parser's bare 431 (and a closed connection).
//! - [`limit_address`]: per client address (IPv4 address, or IPv6 /64 — one host gets a whole
//!   /64), a token bucket for all requests (`api.address_rate_limit_*`) and one for failed
//!   authentications (`api.address_auth_failure*`). A request is refused with 429 and
//!   `Retry-After` *before authentication* when either is empty, so guessing credentials costs
//!   one PostgreSQL look-up per failure token at most, and a flood costs no look-up at all.
//!
//! The address comes from the connection (the server inserts [`ConnectInfo`]); a request
//! without one (a router driven in-process, as the unit tests do) is not address-limited.
//! Behind a reverse proxy every request has the proxy's address: raise or disable
//! (`api.address_rate_limit_per_s = 0`) the limits there and limit at the proxy.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use atlasmesh_core::config::ApiConfig;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::rate_limit::RateLimiter;
use crate::error::ApiError;
use crate::state::AppState;

/// Most headers one request may carry.
pub const MAX_HEADERS: usize = 100;

/// How far above the API's limits the HTTP parser's own limits are.
const PARSER_HEADROOM: usize = 4;

/// The HTTP parser's limits for an API head limit of `max_header_bytes`:
/// `(max head bytes, max headers, read buffer bytes)`. The parser must let every head the API
/// wants to answer with a JSON 431 through.
pub fn parser_limits(max_header_bytes: usize) -> (usize, usize, usize) {
    // hyper's default read buffer (8 KiB + 100 × 4 KiB) already holds most heads.
    const HYPER_DEFAULT_BUF: usize = 8192 + 4096 * 100;
    let head = max_header_bytes.saturating_mul(PARSER_HEADROOM);
    (
        head,
        MAX_HEADERS * PARSER_HEADROOM,
        HYPER_DEFAULT_BUF.max(head.saturating_add(8192)),
    )
}

/// The size of a request head as HTTP/1.1 sends it: `METHOD target HTTP/1.1\r\n` and
/// `name: value\r\n` per header.
pub fn head_size(req: &Request) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    line + req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum::<usize>()
}

/// Middleware: 431 (JSON) for a head over `api.max_header_bytes` or [`MAX_HEADERS`].
pub async fn limit_head(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let max = state.config.api.max_header_bytes;
    let count = req.headers().len();
    let size = head_size(&req);
    if count > MAX_HEADERS || size > max {
        return ApiError::http(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request head too large: {size} bytes in {count} headers \
                 (at most {max} bytes and {MAX_HEADERS} headers)"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// The bucket key of a client address: the IPv4 address (also when mapped into IPv6), or the
/// /64 prefix of an IPv6 address.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// The client address of a request, as [`limit_address`] keyed it (in the request's
/// extensions, for charging failed authentications to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// Request and failed-authentication budgets per client address.
#[derive(Debug)]
pub struct AddressLimits {
    requests: RateLimiter,
    failures: RateLimiter,
}

impl AddressLimits {
    pub fn from_config(api: &ApiConfig) -> AddressLimits {
        AddressLimits {
            requests: RateLimiter::new(api.address_rate_limit_per_s, api.address_rate_limit_burst),
            failures: RateLimiter::new(
                api.address_auth_failures_per_s,
                api.address_auth_failure_burst,
            ),
        }
    }

    /// Admits one request from `address` at `now`: takes a request token, unless the address
    /// has spent its failed-authentication budget (then nothing is taken). `Err(wait)` when
    /// refused.
    pub fn admit_at(&self, address: &str, now: Instant) -> Result<(), Duration> {
        self.failures.peek_at(address, now)?;
        self.requests.check_at(address, now)
    }

    /// Charges one failed authentication to `address`.
    pub fn record_failure_at(&self, address: &str, now: Instant) {
        let _ = self.failures.check_at(address, now);
    }

    pub fn record_failure(&self, address: &str) {
        self.record_failure_at(address, Instant::now());
    }
}

/// Middleware: 429 with `Retry-After` for a client address over its budgets (see the module
/// docs); otherwise records the address for the authentication that may follow.
pub async fn limit_address(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let address = address_key(peer.ip());
    if let Err(wait) = state.addresses.admit_at(&address, Instant::now()) {
        metrics::counter!(crate::metrics::API_ADDRESS_REFUSED).increment(1);
        return ApiError::too_many_requests(wait).into_response();
    }
    req.extensions_mut().insert(ClientAddress(address));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn addresses_are_keyed_by_host_or_v6_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            address_key(ip("2001:db8:1:2:3:4:5:6")),
            address_key(ip("2001:db8:1:2:ffff::1"))
        );
        assert_eq!(address_key(ip("2001:db8:1:2::9")), "2001:db8:1:2::/64");
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn failures_block_an_address_and_requests_are_limited() {
        let api = ApiConfig {
            address_rate_limit_per_s: 1,
            address_rate_limit_burst: 5,
            address_auth_failures_per_s: 1,
            address_auth_failure_burst: 2,
            ..ApiConfig::default()
        };
        let l = AddressLimits::from_config(&api);
        let t0 = Instant::now();
        // Two failures are allowed; after them the address is refused, other addresses not.
        l.admit_at("a", t0).unwrap();
        l.record_failure_at("a", t0);
        l.admit_at("a", t0).unwrap();
        l.record_failure_at("a", t0);
        for _ in 0..10 {
            assert_eq!(l.admit_at("a", t0), Err(Duration::from_secs(1)));
        }
        assert!(l.admit_at("b", t0).is_ok());
        // A second later one failure token is back; the refused requests took no request
        // token: 3 left + 1 refilled.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..4 {
            l.admit_at("a", t1).unwrap();
        }
        assert!(l.admit_at("a", t1).is_err());

        let off = AddressLimits::from_config(&ApiConfig {
            address_rate_limit_per_s: 0,
            address_auth_failures_per_s: 0,
            ..ApiConfig::default()
        });
        for _ in 0..10_000 {
            off.record_failure_at("a", t0);
            off.admit_at("a", t0).unwrap();
        }
    }

    #[test]
    fn head_size_counts_the_request_line_and_headers() {
        let req = axum::http::Request::get("/api/v1/x?a=1")
            .header("host", "h")
            .header("x-api-key", "k")
            .body(Body::empty())
            .unwrap();
        // "GET /api/v1/x?a=1 HTTP/1.1\r\n" + "host: h\r\n" + "x-api-key: k\r\n"
        assert_eq!(head_size(&req), 28 + 9 + 14);
        let (head, headers, buf) = parser_limits(32 * 1024);
        assert_eq!((head, headers), (128 * 1024, 400));
        assert!(buf >= head + 8192);
        assert_eq!(parser_limits(1024).2, 8192 + 4096 * 100);
    }
}
