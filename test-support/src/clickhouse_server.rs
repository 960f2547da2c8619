//! A private ClickHouse server for tests, started from the repo's `deploy/clickhouse` config via
//! `scripts/clickhouse-server` (the same script `scripts/stack` uses), with its own state
//! directory under the system temp dir.
//!
//! ```no_run
//! let ch = atlasmesh_test_support::clickhouse_server::ClickHouseServer::start(None)?;
//! let url = ch.url(); // "http://127.0.0.1:<port>", user `default` without password
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Environment: `ATLASMESH_CLICKHOUSE_SCRIPT` overrides the script path,
//! `CLICKHOUSE_SERVER_BIN` the server binary (passed through to the script).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use crate::daemon::{free_port, temp_dir, Daemon};

/// A running private ClickHouse server; killed (and its temp dir removed) on drop.
#[derive(Debug)]
pub struct ClickHouseServer {
    daemon: Option<Daemon>,
    http_port: u16,
    tcp_port: u16,
    state_dir: PathBuf,
    remove_state_dir: bool,
}

impl ClickHouseServer {
    /// Starts a server on `http_port` (or a free one) and a free TCP port, with a fresh state
    /// dir under the temp dir, and waits until it answers `/ping`.
    pub fn start(http_port: Option<u16>) -> anyhow::Result<Self> {
        let dir = temp_dir("clickhouse")?;
        let mut server = Self::start_in(&dir, http_port, None)?;
        server.remove_state_dir = true;
        Ok(server)
    }

    /// Starts a server keeping its state in `state_dir` (kept on drop). Ports default to free
    /// ones.
    pub fn start_in(
        state_dir: &Path,
        http_port: Option<u16>,
        tcp_port: Option<u16>,
    ) -> anyhow::Result<Self> {
        let http_port = match http_port {
            Some(p) => p,
            None => free_port()?,
        };
        let tcp_port = match tcp_port {
            Some(p) => p,
            None => loop {
                let p = free_port()?;
                if p != http_port {
                    break p;
                }
            },
        };
        let script = script_path();
        if !script.exists() {
            bail!("ClickHouse start script not found at {}", script.display());
        }
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let dir = state_dir.to_path_buf();
        let daemon = Daemon::start(
            "clickhouse-server",
            &state_dir.join("server.stdout.log"),
            Signal::SIGTERM,
            move || {
                let mut c = Command::new(&script);
                c.arg(&dir)
                    .arg(http_port.to_string())
                    .arg(tcp_port.to_string());
                c
            },
            move || ping(http_port),
        )?;
        Ok(ClickHouseServer {
            daemon: Some(daemon),
            http_port,
            tcp_port,
            state_dir: state_dir.to_path_buf(),
            remove_state_dir: false,
        })
    }

    /// Base HTTP URL, e.g. `http://127.0.0.1:8123` (user `default`, no password).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Native protocol port (for `clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Server log files live here.
    pub fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(Daemon::is_running)
    }

    /// Stops the server: SIGTERM, then SIGKILL after a grace; waits for the process to exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match self.daemon.as_mut() {
            Some(d) => d.stop(),
            None => Ok(()),
        }
    }

    /// Stops and starts the server again with the same ports and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        match self.daemon.as_mut() {
            Some(d) => d.restart(),
            None => bail!("no server to restart"),
        }
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        drop(self.daemon.take()); // killed
        if self.remove_state_dir {
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}

/// `scripts/clickhouse-server` of this repository (or `$ATLASMESH_CLICKHOUSE_SCRIPT`).
pub fn script_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ATLASMESH_CLICKHOUSE_SCRIPT") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("clickhouse-server")
}

/// True when `GET /ping` on 127.0.0.1:`port` answers `Ok.`.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.") && buf.contains(" 200 ") && buf.ends_with("Ok.\n")
}
