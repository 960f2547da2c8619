//! A private Redis server for tests that stop Redis or lose its data (the local stack's Redis is
//! shared by every test and must stay up). It keeps nothing on disk, as a cache may: after
//! [`RedisServer::restart`] it is empty. Needs `redis-server` on `PATH` (or `$REDIS_SERVER_BIN`).

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::daemon::{free_port, temp_dir, Daemon};

/// A running private Redis; killed (and its dir removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    daemon: Daemon,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts an empty Redis on a free port and waits until it answers `PING`.
    pub fn start() -> anyhow::Result<RedisServer> {
        let port = free_port()?;
        let dir = temp_dir("redis")?;
        let bin = std::env::var_os("REDIS_SERVER_BIN").unwrap_or_else(|| "redis-server".into());
        let work = dir.clone();
        let daemon = Daemon::start(
            "redis-server",
            &dir.join("redis.log"),
            Signal::SIGKILL,
            move || {
                let mut c = Command::new(&bin);
                c.current_dir(&work).args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]);
                c
            },
            move || ping(port),
        )?;
        Ok(RedisServer { daemon, port, dir })
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: its data is gone).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.daemon.stop()
    }

    /// Starts it again on the same port, empty; returns once it answers.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.restart()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.daemon.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when Redis on 127.0.0.1:`port` answers `PING` with `PONG`.
pub fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
