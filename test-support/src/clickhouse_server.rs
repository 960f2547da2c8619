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
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long `start`/`restart` wait for `GET /ping` to answer `Ok.`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running private ClickHouse server; killed (and its temp dir removed) on drop.
#[derive(Debug)]
pub struct ClickHouseServer {
    child: Option<Child>,
    http_port: u16,
    tcp_port: u16,
    state_dir: PathBuf,
    remove_state_dir: bool,
}

impl ClickHouseServer {
    /// Starts a server on `http_port` (or a free one) and a free TCP port, with a fresh state
    /// dir under the temp dir, and waits until it answers `/ping`.
    pub fn start(http_port: Option<u16>) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "atlasmesh-clickhouse-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
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
        let mut server = ClickHouseServer {
            child: None,
            http_port,
            tcp_port,
            state_dir: state_dir.to_path_buf(),
            remove_state_dir: false,
        };
        server.launch()?;
        Ok(server)
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
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stops the server: SIGTERM, then SIGKILL after 15 s; waits for the process to exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().context("waiting for clickhouse-server")?;
        Ok(())
    }

    /// Stops and starts the server again with the same ports and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let script = script_path();
        if !script.exists() {
            bail!("ClickHouse start script not found at {}", script.display());
        }
        std::fs::create_dir_all(&self.state_dir)?;
        let log_path = self.state_dir.join("server.stdout.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let child = Command::new(&script)
            .arg(&self.state_dir)
            .arg(self.http_port.to_string())
            .arg(self.tcp_port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", script.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ping(self.http_port) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "clickhouse-server exited with {status} before becoming ready; output:\n{}",
                    tail(&log_path)
                );
            }
            if Instant::now() >= deadline {
                let _ = self.stop();
                bail!(
                    "clickhouse-server did not answer /ping on port {} within {:?}; output:\n{}",
                    self.http_port,
                    READY_TIMEOUT,
                    tail(&log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
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

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
