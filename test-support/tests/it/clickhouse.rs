//! The private ClickHouse server helper (skipped with a message when no server binary exists).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use atlasmesh_test_support::ClickHouseServer;

fn have_clickhouse() -> bool {
    [
        "/usr/bin/clickhouse-server",
        "/usr/sbin/clickhouse-server",
        "/usr/bin/clickhouse",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
}

/// Minimal HTTP POST (keeps this test free of async clients). Returns (status, body).
fn query(port: u16, auth: Option<&str>, sql: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: Basic {}\r\n", base64(a.as_bytes())))
        .unwrap_or_default();
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: {}\r\n\r\n{sql}",
        sql.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn clickhouse_start_query_restart_stop() {
    if !have_clickhouse() {
        eprintln!("SKIP: no clickhouse-server binary installed");
        return;
    }
    let mut ch = ClickHouseServer::start(None).unwrap();
    assert_eq!(ch.url(), format!("http://127.0.0.1:{}", ch.http_port()));
    let port = ch.http_port();
    let ddl = "CREATE TABLE t (id UInt64, name LowCardinality(String), version UInt64) \
               ENGINE = ReplacingMergeTree(version) ORDER BY id";
    assert_eq!(query(port, None, ddl), (200, String::new()));
    assert_eq!(
        query(
            port,
            None,
            "INSERT INTO t VALUES (1,'a',1),(1,'b',2),(2,'c',1)"
        )
        .0,
        200
    );

    ch.restart().unwrap();
    assert_eq!(ch.http_port(), port);
    assert_eq!(
        query(
            port,
            None,
            "SELECT id, name FROM t FINAL ORDER BY id FORMAT TSV"
        ),
        (200, "1\tb\n2\tc\n".to_owned())
    );
    // grafana: read-only.
    assert_eq!(
        query(port, Some("grafana:grafana"), "SELECT count() FROM t FINAL"),
        (200, "2\n".to_owned())
    );
    let (st, body) = query(
        port,
        Some("grafana:grafana"),
        "INSERT INTO t VALUES (3,'d',1)",
    );
    assert_ne!(st, 200);
    assert!(body.contains("readonly"), "{body}");

    let dir = ch.state_dir().to_path_buf();
    ch.stop().unwrap();
    assert!(!ch.is_running());
    assert!(!atlasmesh_test_support::clickhouse_server::ping(port));
    drop(ch);
    assert!(!dir.exists(), "temp state dir removed on drop");
}
