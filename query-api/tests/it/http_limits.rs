//! The API as a slow, greedy or careless client meets it, through the production server on a
//! loopback port (issue 10): header and body read timeouts and the connection limit (item 8),
//! one JSON shape for every error and 415 for non-JSON bodies (item 10), and per-address
//! limits before authentication with negative API-key caching (item 15).

use std::time::{Duration, Instant};

use atlasmesh_core::{Role, Scope};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{config, state, token, unique, PgDb, Server};

/// Time allowed beyond a configured timeout before the test calls it missed.
const SLACK: Duration = Duration::from_secs(5);

/// A response read off a raw connection.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one response (head, then a `Content-Length` body) by `deadline`; `None` if the
/// connection stays silent until then or closes first.
async fn read_response(s: &mut TcpStream, deadline: Instant) -> Option<Raw> {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut raw = Raw {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    let len: usize = raw
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while raw.body.len() < len {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => raw.body.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
    Some(raw)
}

/// Whether the server closes the connection by `deadline` (EOF or reset), whatever it sends
/// before.
async fn closed_by(s: &mut TcpStream, deadline: Instant) -> bool {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `request` on a new connection and reads the response.
async fn raw(server: &Server, request: &[u8]) -> Raw {
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_response(&mut s, Instant::now() + SLACK)
        .await
        .expect("a response")
}

fn assert_json_error(status: u16, raw_status: u16, body: &Value, code: &str) {
    assert_eq!(raw_status, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn unfinished_heads_and_idle_connections_are_closed_after_the_header_timeout() {
    let mut cfg = config("unused", &unique("slowhead"));
    cfg.api.header_read_timeout_ms = 500;
    let server = Server::start(state(&cfg).await).await;

    let mut slow = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        // Some send nothing, the others a head that never ends.
        if i % 2 == 1 {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        slow.push(s);
    }
    // A kept-alive connection that goes idle after one answered request.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /no-such-route HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut idle, Instant::now() + SLACK)
        .await
        .unwrap();
    assert_eq!(r.status, 404);

    let deadline = Instant::now() + Duration::from_millis(500) + SLACK;
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(closed_by(s, deadline).await, "connection {i} is still open");
    }
    assert!(
        closed_by(&mut idle, deadline).await,
        "the idle connection is still open"
    );
    // The server itself carries on.
    let r = raw(
        &server,
        b"GET /no-such-route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_json_error(404, r.status, &r.json(), "not_found");
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_is_408() {
    let mut cfg = config("unused", &unique("slowbody"));
    cfg.api.body_read_timeout_ms = 500;
    let server = Server::start(state(&cfg).await).await;
    let t = token(Role::Operator, &Scope::all());
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/fleet-resources/pools HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {t}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(br#"{"fleet_id":"#).await.unwrap();
    let sent = Instant::now();
    let r = read_response(&mut s, sent + Duration::from_millis(500) + SLACK)
        .await
        .expect("an answer within the body timeout");
    assert!(
        sent.elapsed() >= Duration::from_millis(400),
        "{:?}",
        sent.elapsed()
    );
    assert_json_error(408, r.status, &r.json(), "request_timeout");
    assert_eq!(r.header("content-type"), Some("application/json"));
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_one() {
    let mut cfg = config("unused", &unique("connlimit"));
    cfg.api.max_connections = 2;
    cfg.api.header_read_timeout_ms = 60_000;
    let server = Server::start(state(&cfg).await).await;
    let request = b"GET /no-such-route HTTP/1.1\r\nHost: x\r\n\r\n";

    // Two connections hold both permits (one answered and kept alive, one silent).
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(request).await.unwrap();
    assert_eq!(
        read_response(&mut first, Instant::now() + SLACK)
            .await
            .unwrap()
            .status,
        404
    );
    let second = TcpStream::connect(server.addr).await.unwrap();
    // Make sure the server has accepted the second before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The third is queued, not served...
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(request).await.unwrap();
    assert!(
        read_response(&mut third, Instant::now() + Duration::from_millis(800))
            .await
            .is_none(),
        "a third connection was served beyond max_connections = 2"
    );
    // ...until one of the two closes.
    drop(second);
    let r = read_response(&mut third, Instant::now() + SLACK)
        .await
        .expect("served once a connection is free");
    assert_json_error(404, r.status, &r.json(), "not_found");
    drop((first, third));
    server.stop().await;
}

#[tokio::test]
async fn every_error_answer_is_json_and_bodies_must_be_json() {
    let mut cfg = config("unused", &unique("jsonerr"));
    cfg.api.max_header_bytes = 16 * 1024;
    let server = Server::start(state(&cfg).await).await;
    let http = reqwest::Client::new();
    let op = token(Role::Operator, &Scope::all());
    let pools = server.url("/api/v1/fleet-resources/pools");

    async fn json_of(r: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:?}"));
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{status} {text}"
        );
        (status, headers, body)
    }
    let check = |(status, _, body): (StatusCode, _, Value), want: u16, code: &str| {
        assert_json_error(want, status.as_u16(), &body, code);
    };

    // Routing.
    let r = http.get(server.url("/nope")).send().await.unwrap();
    check(json_of(r).await, 404, "not_found");
    let r = http.delete(server.url("/health")).send().await.unwrap();
    let (s, h, b) = json_of(r).await;
    assert!(h.get("allow").is_some(), "405 keeps Allow: {h:?}");
    check((s, h, b), 405, "method_not_allowed");

    // Extractor rejections (axum answers these in plain text).
    for uri in [
        "/api/v1/fleet-resources/pools/%FF",
        "/api/v1/commands/%C3%28",
    ] {
        let r = http
            .get(server.url(uri))
            .bearer_auth(&op)
            .send()
            .await
            .unwrap();
        check(json_of(r).await, 400, "bad_request");
    }

    // Bodies: only JSON (UTF-8) is read.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let mut rb = http.post(&pools).bearer_auth(&op).body(r#"{"a":1}"#);
        if let Some(ct) = content_type {
            rb = rb.header("content-type", ct);
        }
        let (s, _, b) = json_of(rb.send().await.unwrap()).await;
        assert_eq!(
            s,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {b}"
        );
        assert_eq!(b["error"]["code"], "unsupported_media_type", "{b}");
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let r = http
            .post(&pools)
            .bearer_auth(&op)
            .header("content-type", content_type)
            .body(r#"{"no_such_field":1}"#)
            .send()
            .await
            .unwrap();
        check(json_of(r).await, 422, "unprocessable_entity");
    }
    let r = http
        .post(&pools)
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body(b"{\"name\":\"\xff\xfe\"}".to_vec())
        .send()
        .await
        .unwrap();
    check(json_of(r).await, 400, "bad_request");
    // Over the body limit (2 MiB): refused from its Content-Length, before it is sent.
    let over = format!(
        "POST /api/v1/fleet-resources/pools HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {op}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        3 << 20
    );
    let r = raw(&server, over.as_bytes()).await;
    assert_json_error(413, r.status, &r.json(), "payload_too_large");

    // Heads: too many headers (beyond the parser's default 100, too) or too many bytes.
    let mut rb = http.get(server.url("/health"));
    for i in 0..150 {
        rb = rb.header(format!("x-h-{i}"), "1");
    }
    check(
        json_of(rb.send().await.unwrap()).await,
        431,
        "request_header_fields_too_large",
    );
    let r = http
        .get(server.url("/health"))
        .header("x-big", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    check(json_of(r).await, 431, "request_header_fields_too_large");
    server.stop().await;
}

/// `n` distinct well-formed API keys that no database holds.
fn unknown_keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("amk_unknown{i:021}")).collect()
}

#[tokio::test]
async fn failed_authentications_are_limited_per_address_before_any_lookup() {
    let db = PgDb::create("addrlimit").await;
    let mut cfg = config("unused", &unique("addrlimit"));
    cfg.postgres.url = db.url.clone();
    cfg.api.address_auth_failures_per_s = 1;
    cfg.api.address_auth_failure_burst = 5;
    let st = state(&cfg).await;
    let server = Server::start(st.clone()).await;
    let http = reqwest::Client::new();
    let whoami = server.url("/api/v1/whoami");

    let lookups_before = st.auth.key_lookups();
    let mut statuses = Vec::new();
    let mut refused = None;
    for key in unknown_keys(20) {
        let r = http
            .get(&whoami)
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            let retry = r.headers()["retry-after"].to_str().unwrap().to_string();
            refused = Some((retry, r.json::<Value>().await.unwrap()));
        }
    }
    // The burst of failures is answered, then the address is refused — with no look-up.
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let (retry_after, body) = refused.unwrap();
    assert!(retry_after.parse::<u64>().unwrap() >= 1, "{retry_after}");
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    assert_eq!(st.auth.key_lookups() - lookups_before, 5);
    // Valid credentials from that address wait too (it is the address that is limited).
    let t = token(Role::Viewer, &Scope::all());
    let r = http.get(&whoami).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // The budget refills at its rate.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = http.get(&whoami).bearer_auth(&t).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    server.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn requests_are_limited_per_address() {
    let mut cfg = config("unused", &unique("addrreq"));
    cfg.api.address_rate_limit_per_s = 1;
    cfg.api.address_rate_limit_burst = 3;
    let server = Server::start(state(&cfg).await).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = http.get(server.url("/nope")).send().await.unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    server.stop().await;
}

#[tokio::test]
async fn one_unknown_key_costs_one_lookup() {
    let db = PgDb::create("negcache").await;
    let mut cfg = config("unused", &unique("negcache"));
    cfg.postgres.url = db.url.clone();
    // Only the cache is under test here.
    cfg.api.address_auth_failures_per_s = 0;
    let st = state(&cfg).await;
    let server = Server::start(st.clone()).await;
    let http = reqwest::Client::new();
    let key = unknown_keys(1).remove(0);

    let before = st.auth.key_lookups();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (http, url, key) = (http.clone(), server.url("/api/v1/whoami"), key.clone());
        tasks.spawn(async move {
            let r = http.get(url).header("x-api-key", key).send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["message"], "unknown API key", "{body}");
    }
    assert_eq!(
        st.auth.key_lookups() - before,
        1,
        "40 requests, one look-up"
    );
    let metrics = http.get(server.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("atlasmesh_api_key_lookups_total{outcome=\"unknown\"}"),
        "{text}"
    );
    server.stop().await;
    db.drop().await;
}
