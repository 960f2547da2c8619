//! The latest values' `HSET`s written in RESP straight from the encoded entries into one
//! buffer kept from flush to flush, and sent on a connection of their own.
//!
//! Through the `redis` crate a flush of 10,000 vehicles copied every value three times
//! (into each command's arguments, into the packed pipeline, into the connection's write
//! buffer), each into memory freshly allocated for that flush: a fifth of the flush's CPU
//! (BENCHMARKS §3n). Here the commands are encoded once, into memory already mapped, and the
//! replies (one integer per `HSET`) are read without building values. Plain TCP and Unix
//! sockets only; a `rediss://` URL keeps the crate's path ([`Bulk::for_connection`] gives
//! `None`).

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, Result};

/// Error replies that say "later", as the `redis` crate's transient kinds (loading, try
/// again, cluster or master down).
const TRANSIENT: [&str; 4] = ["LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN"];

/// As the connection manager's (`RedisSink::connect`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, Clone)]
enum Target {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// A connection for bulk writes, opened on first use and again after an error.
pub(super) struct Bulk {
    target: Target,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    /// `CLIENT SETNAME`: `CLIENT LIST` tells this connection apart.
    name: String,
    stream: Option<Box<dyn Stream>>,
    /// The commands of one send, encoded ([`Bulk::commands`]).
    out: Vec<u8>,
    /// Replies read and not parsed yet.
    input: Vec<u8>,
    /// Commands written whose replies are not all read (a send cancelled midway).
    in_flight: bool,
}

impl Bulk {
    /// A bulk writer for `info`'s server, or `None` where it cannot go (TLS); the
    /// connection is named `atlasmesh-latest:<prefix>` (spaces and control characters as
    /// `_`).
    pub fn for_connection(info: &redis::ConnectionInfo, prefix: &str) -> Option<Bulk> {
        let target = match &info.addr {
            redis::ConnectionAddr::Tcp(host, port) => Target::Tcp(host.clone(), *port),
            redis::ConnectionAddr::Unix(path) => Target::Unix(path.clone()),
            redis::ConnectionAddr::TcpTls { .. } => return None,
        };
        Some(Bulk {
            target,
            db: info.redis.db,
            username: info.redis.username.clone(),
            password: info.redis.password.clone(),
            name: client_name(prefix),
            stream: None,
            out: Vec::new(),
            input: Vec::new(),
            in_flight: false,
        })
    }

    /// Starts the commands of a send: empties the buffer (its memory kept; a send
    /// cancelled midway may have left commands in it).
    pub fn begin(&mut self) {
        self.out.clear();
    }

    /// The buffer the next send's commands are appended to.
    pub fn commands_appended(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Sends what [`Bulk::commands_appended`] holds and empties it: `n` commands, each
    /// answered by an integer or `+OK`; the first error reply, if any, is the error. A
    /// connection that fails, does not answer in time or was left mid-send by a cancelled
    /// send is dropped (the next send opens another).
    pub async fn send(&mut self, n: usize) -> Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let result = self.try_send(n).await;
        self.out.clear();
        if matches!(result, Err(Error::Unavailable(_))) {
            self.stream = None;
            self.input.clear();
        }
        result
    }

    async fn try_send(&mut self, n: usize) -> Result<()> {
        if self.in_flight {
            // A send was cancelled between writing and its last reply: its replies would be
            // taken for this one's.
            self.stream = None;
            self.input.clear();
        }
        if self.stream.is_none() {
            self.stream = Some(self.connect().await?);
        }
        let stream = self.stream.as_mut().expect("connected above");
        self.in_flight = true;
        let result = tokio::time::timeout(RESPONSE_TIMEOUT, async {
            let io = |e: std::io::Error| Error::Unavailable(format!("redis: {e}"));
            stream.write_all(&self.out).await.map_err(io)?;
            stream.flush().await.map_err(io)?;
            read_replies(stream, &mut self.input, n).await
        })
        .await
        .map_err(|_| Error::Unavailable("redis: no answer to the bulk write in time".into()))?;
        self.in_flight = false;
        result
    }

    async fn connect(&mut self) -> Result<Box<dyn Stream>> {
        let unavailable = |e: std::io::Error| Error::Unavailable(format!("redis: {e}"));
        let open = async {
            let mut s: Box<dyn Stream> = match &self.target {
                Target::Tcp(host, port) => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    s.set_nodelay(true)?;
                    Box::new(s)
                }
                Target::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            };
            let mut hello = Vec::new();
            let mut n = 0;
            if let Some(password) = &self.password {
                let args: Vec<&[u8]> = match &self.username {
                    Some(user) => vec![b"AUTH", user.as_bytes(), password.as_bytes()],
                    None => vec![b"AUTH", password.as_bytes()],
                };
                put_command(&mut hello, &args);
                n += 1;
            }
            if self.db != 0 {
                put_command(&mut hello, &[b"SELECT", self.db.to_string().as_bytes()]);
                n += 1;
            }
            // The name is for operators: a server that refuses it (an ACL) still gets the
            // writes.
            put_command(&mut hello, &[b"CLIENT", b"SETNAME", self.name.as_bytes()]);
            s.write_all(&hello).await?;
            let mut input = Vec::new();
            if let Err(e) = read_replies(&mut s, &mut input, n).await {
                return Ok(Err(e));
            }
            match read_replies(&mut s, &mut input, 1).await {
                Ok(()) | Err(Error::Other(_)) => {}
                Err(e) => return Ok(Err(e)),
            }
            Ok::<_, std::io::Error>(Ok(s))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(Error::Unavailable(
                "redis: bulk connection not open in time".into(),
            )),
        }
    }
}

/// The bulk connection's name for `prefix`.
pub(super) fn client_name(prefix: &str) -> String {
    let clean = |c: char| {
        if c.is_whitespace() || c.is_control() {
            '_'
        } else {
            c
        }
    };
    format!(
        "atlasmesh-latest:{}",
        prefix.chars().map(clean).collect::<String>()
    )
}

/// Appends the array header of a command of `args` arguments (its name included).
pub(super) fn put_array(out: &mut Vec<u8>, args: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends one argument as a bulk string.
pub(super) fn put_bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// Appends `HSET key field value…` of `fields`.
pub(super) fn put_hset<'a>(
    out: &mut Vec<u8>,
    key: &str,
    fields: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
) {
    put_array(out, 2 + 2 * fields.len());
    put_bulk(out, b"HSET");
    put_bulk(out, key.as_bytes());
    for (field, value) in fields {
        put_bulk(out, field);
        put_bulk(out, value);
    }
}

/// Appends a whole command.
pub(super) fn put_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    put_array(out, args.len());
    for a in args {
        put_bulk(out, a);
    }
}

/// Reads `n` replies, each an integer or a status, from `input` (bytes read before and not
/// used yet) and then the stream, leaving in `input` what follows them; the first error reply is the error, once
/// all `n` are read (the connection stays in step). Anything else breaks the step: an
/// `Unavailable` error, so the connection is dropped.
async fn read_replies(
    stream: &mut (impl AsyncRead + Unpin),
    input: &mut Vec<u8>,
    n: usize,
) -> Result<()> {
    let (mut pos, mut got) = (0, 0);
    let mut failed: Option<String> = None;
    let mut chunk = [0u8; 4096];
    while got < n {
        while got < n {
            let Some(len) = input[pos..].windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            let line = &input[pos..pos + len];
            match line.first() {
                Some(b':' | b'+') => {}
                Some(b'-') => {
                    failed.get_or_insert_with(|| String::from_utf8_lossy(&line[1..]).into_owned());
                }
                _ => {
                    return Err(Error::Unavailable(format!(
                        "redis: unexpected reply to a bulk write: {:?}",
                        String::from_utf8_lossy(&line[..line.len().min(64)])
                    )))
                }
            }
            pos += len + 2;
            got += 1;
        }
        if got == n {
            break;
        }
        input.drain(..pos);
        pos = 0;
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|e| Error::Unavailable(format!("redis: {e}")))?;
        if read == 0 {
            return Err(Error::Unavailable(
                "redis: connection closed before every reply".into(),
            ));
        }
        input.extend_from_slice(&chunk[..read]);
    }
    input.drain(..pos); // what follows belongs to the next replies
    match failed {
        // The replies the `redis` crate's kinds call transient (`redis_class`): retried.
        Some(e) if TRANSIENT.contains(&e.split(' ').next().unwrap_or_default()) => {
            Err(Error::Unavailable(format!("redis: {e}")))
        }
        Some(e) => Err(Error::Other(format!("redis: {e}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The commands encode byte for byte as the `redis` crate packs them.
    #[test]
    fn commands_encode_as_the_crate_packs_them() {
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![b"HSET", b"k", b"f", b"v"],
            vec![b"HSET", "clé".as_bytes(), b"", &[0, 13, 10, 255], b"x"],
            vec![b"AUTH", b"pw"],
            vec![b"SELECT", b"12"],
        ];
        for args in cases {
            let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
            for a in &args[1..] {
                cmd.arg(*a);
            }
            let mut ours = Vec::new();
            put_command(&mut ours, &args);
            assert_eq!(ours, cmd.get_packed_command());
        }
        let long = vec![7u8; 100_000];
        let mut cmd = redis::cmd("HSET");
        cmd.arg("k").arg("f").arg(&long[..]);
        let mut ours = Vec::new();
        put_command(&mut ours, &[b"HSET", b"k", b"f", &long]);
        assert_eq!(ours, cmd.get_packed_command());
    }

    /// Replies split anywhere parse the same; an error reply is reported after all are read;
    /// a reply of another kind breaks the connection's step.
    #[tokio::test]
    async fn replies_parse_across_reads() {
        let replies = b":1\r\n+OK\r\n:1000\r\n-WRONGTYPE Operation against a key\r\n:0\r\n";
        for split in 1..replies.len() {
            let (a, b) = replies.split_at(split);
            let mut reader = tokio_test_reader(&[a, b]);
            let mut input = Vec::new();
            let r = read_replies(&mut reader, &mut input, 5).await;
            match r {
                Err(Error::Other(e)) => assert!(e.contains("WRONGTYPE"), "{e}"),
                other => panic!("split {split}: {other:?}"),
            }
        }
        let mut ok = tokio_test_reader(&[b":1\r", b"\n:2\r\n"]);
        assert!(read_replies(&mut ok, &mut Vec::new(), 2).await.is_ok());
        // Two calls on one stream: what the first read past its replies is the second's.
        let mut two = tokio_test_reader(&[b"+OK\r\n-ERR no name\r\n"]);
        let mut input = Vec::new();
        assert!(read_replies(&mut two, &mut input, 1).await.is_ok());
        assert!(matches!(
            read_replies(&mut two, &mut input, 1).await,
            Err(Error::Other(e)) if e.contains("no name")
        ));
        assert!(input.is_empty());
        let mut odd = tokio_test_reader(&[b"$3\r\nabc\r\n"]);
        assert!(matches!(
            read_replies(&mut odd, &mut Vec::new(), 1).await,
            Err(Error::Unavailable(_))
        ));
        let mut loading = tokio_test_reader(&[b"-LOADING Redis is loading\r\n:1\r\n"]);
        assert!(matches!(
            read_replies(&mut loading, &mut Vec::new(), 2).await,
            Err(Error::Unavailable(e)) if e.contains("LOADING")
        ));
        let mut short = tokio_test_reader(&[b":1\r\n"]);
        assert!(matches!(
            read_replies(&mut short, &mut Vec::new(), 2).await,
            Err(Error::Unavailable(_))
        ));
    }

    /// A reader giving `parts` one read each, then end of stream.
    fn tokio_test_reader(parts: &[&[u8]]) -> impl AsyncRead + Unpin {
        PartsReader {
            parts: parts.iter().map(|p| p.to_vec()).collect(),
        }
    }

    struct PartsReader {
        parts: std::collections::VecDeque<Vec<u8>>,
    }

    impl AsyncRead for PartsReader {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(p) = self.parts.pop_front() {
                buf.put_slice(&p);
            }
            std::task::Poll::Ready(Ok(()))
        }
    }
}
