//! A private Tansu broker for tests that stop, start late or restart the broker, on its own
//! port with its own SQLite storage under the system temp dir (the stack's broker is shared by
//! every test and must stay up). Needs `tansu` on `PATH` (`scripts/stack up` installs it) or in
//! `$TANSU_BIN`.
//!
//! ```no_run
//! let port = atlasmesh_test_support::tansu_broker::free_port()?;
//! let mut broker = atlasmesh_test_support::tansu_broker::TansuBroker::start_on(port)?;
//! broker.stop()?;
//! broker.restart()?; // same port, same storage
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use crate::daemon::free_port;
use crate::daemon::{temp_dir, Daemon};

/// A running private broker; killed (and its storage removed) on drop.
#[derive(Debug)]
pub struct TansuBroker {
    daemon: Daemon,
    port: u16,
    dir: PathBuf,
}

impl TansuBroker {
    /// Starts a broker listening on (and advertising) 127.0.0.1:`port` with fresh storage,
    /// and waits until it answers.
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        let dir = temp_dir(&format!("tansu-{port}"))?;
        let bin = std::env::var_os("TANSU_BIN").unwrap_or_else(|| "tansu".into());
        let work = dir.clone();
        let daemon = Daemon::start(
            "tansu",
            &dir.join("tansu.log"),
            Signal::SIGKILL,
            move || {
                let url = format!("tcp://127.0.0.1:{port}");
                let mut c = Command::new(&bin);
                c.current_dir(&work)
                    .args([
                        "broker",
                        "--listener-url",
                        &url,
                        "--advertised-listener-url",
                        &url,
                    ])
                    .args(["--storage-engine", "sqlite://tansu.db"]);
                c
            },
            move || api_versions(port),
        )?;
        Ok(TansuBroker { daemon, port, dir })
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGKILL: a crash as far as clients can tell) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.daemon.stop()
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.restart()
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.daemon.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// True when a broker on 127.0.0.1:`port` answers an ApiVersions v0 request (the cheapest
/// request there is, whatever the number of topics) within 10 s.
pub fn api_versions(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    // size 15 | api_key 18 | version 0 | correlation id 1 | client id "stack"
    let req = b"\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05stack";
    if s.write_all(req).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head[4..8] == [0, 0, 0, 1]
}
