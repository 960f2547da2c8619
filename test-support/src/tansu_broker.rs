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
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long `start_on`/`restart` wait for the broker to answer ApiVersions.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private broker; killed (and its storage removed) on drop.
#[derive(Debug)]
pub struct TansuBroker {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl TansuBroker {
    /// Starts a broker listening on (and advertising) 127.0.0.1:`port` with fresh storage,
    /// and waits until it answers.
    pub fn start_on(port: u16) -> anyhow::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "atlasmesh-tansu-{}-{}-{port}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut b = TansuBroker {
            child: None,
            port,
            dir,
        };
        b.launch()?;
        Ok(b)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (SIGKILL: a crash as far as clients can tell) and waits for it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().context("waiting for tansu")?;
        }
        Ok(())
    }

    /// Starts the broker again on the same port and storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let bin = std::env::var_os("TANSU_BIN").unwrap_or_else(|| "tansu".into());
        let log_path = self.dir.join("tansu.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&bin)
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} (is tansu installed?)", bin.to_string_lossy()))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        while !api_versions(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("tansu exited with {status}; log in {}", log_path.display());
            }
            if Instant::now() >= deadline {
                let _ = self.stop();
                bail!(
                    "tansu did not answer on port {} within {READY_TIMEOUT:?}; log in {}",
                    self.port,
                    log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
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
