//! A private PostgreSQL server for tests that stop PostgreSQL (the machine's server is shared by
//! every test and must stay up): `initdb` into a temp dir, `postgres` on a free port with
//! trust authentication. Stopping is a fast shutdown; a restart keeps the data. Uses the
//! newest `/usr/lib/postgresql/<version>/bin` (or `$PG_BIN`); as root, the server runs as the
//! `postgres` user (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

use crate::daemon::{free_port, temp_dir, Daemon};

/// A running private PostgreSQL; stopped (and its data removed) on drop.
#[derive(Debug)]
pub struct PostgresServer {
    daemon: Daemon,
    port: u16,
    dir: PathBuf,
}

impl PostgresServer {
    /// Initialises a cluster and starts it; returns once it accepts connections.
    pub fn start() -> anyhow::Result<PostgresServer> {
        let bin = pg_bin()?;
        let port = free_port()?;
        let dir = temp_dir("postgres")?;
        let data = dir.join("data");
        let as_root = {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
        };
        if as_root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()?
                .success();
            if !ok {
                bail!("chown of {} to postgres failed", dir.display());
            }
        }
        let out = as_user(as_root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let postgres = bin.join("postgres");
        let socket_dir = dir.clone();
        let daemon = Daemon::start(
            "postgres",
            &dir.join("postgres.log"),
            // Fast shutdown: a SIGKILLed postmaster leaves backends holding its shared memory.
            Signal::SIGINT,
            move || {
                let mut c = as_user(as_root, &postgres);
                c.arg("-D")
                    .arg(&data)
                    .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
                    .arg("-k")
                    .arg(&socket_dir)
                    .args(["-c", "fsync=off", "-c", "max_connections=200"]);
                c
            },
            move || ready(port),
        )?;
        Ok(PostgresServer { daemon, port, dir })
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Fast shutdown; waits for the server to exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.daemon.stop()
    }

    /// Starts it again on the same port and data; returns once it accepts connections.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.restart()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let _ = self.daemon.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cmd`, run as the `postgres` user when we are root.
fn as_user(as_root: bool, cmd: &Path) -> Command {
    if as_root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

/// The server binaries: `$PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql (set PG_BIN)")?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .context("no PostgreSQL server under /usr/lib/postgresql (set PG_BIN)")
}

/// True when the server on 127.0.0.1:`port` accepts connections (`pg_isready`).
fn ready(port: u16) -> bool {
    let Ok(bin) = pg_bin() else { return false };
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "2"])
        .status()
        .is_ok_and(|s| s.success())
}
