//! A clamd client: the INSTREAM command over a Unix or TCP socket, under a deadline and a limit on
//! connections open at once.
//!
//! Why a connection per scan instead of a pool of open connections: outside an `IDSESSION` clamd
//! answers one command and closes the connection, and inside one its replies are asynchronous and
//! tagged, and one stream that times out leaves the whole session in an unknown state. A new
//! connection costs tens of microseconds on a Unix socket, far below a scan; what matters is not
//! opening more connections than clamd has threads, which the semaphore bounds.
//!
//! Protocol: `zINSTREAM\0`, then chunks each preceded by its length as 4 bytes big-endian, then a
//! zero length; the reply (NUL-terminated with the `z` prefix) is `stream: OK`, `stream: NAME FOUND`
//! or `... ERROR` (e.g. `INSTREAM size limit exceeded. ERROR`). Every failure is an error the caller
//! must treat as "not scanned": nothing here ever reports clean without clamd saying `OK`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

/// Longest reply read from clamd.
const MAX_REPLY: usize = 4096;

/// Where clamd listens: `unix:/run/clamav/clamd.ctl` or `tcp:127.0.0.1:3310`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix:").filter(|p| p.starts_with('/')) {
            return Ok(Address::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s
            .strip_prefix("tcp:")
            .filter(|a| a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()))
        {
            return Ok(Address::Tcp(a.to_string()));
        }
        Err(format!("`{s}` is not a clamd address (use unix:/path/to/clamd.ctl or tcp:host:port)"))
    }
}

/// How to reach clamd and how long to wait.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: Address,
    /// Deadline for connecting (and for waiting for a free connection slot).
    pub connect_timeout: Duration,
    /// Deadline for one whole scan, connection included.
    pub scan_timeout: Duration,
    /// Most connections to clamd open at once.
    pub max_connections: usize,
    /// Bytes sent per INSTREAM chunk.
    pub chunk_size: usize,
    /// Largest stream sent; larger data is not sent (clamd would refuse it past its StreamMaxLength).
    pub max_stream_bytes: usize,
}

/// What clamd said about a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// A signature matched: its name (sanitised).
    Found(String),
}

/// Why a stream was not scanned. None of these is clean.
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd: {0}")]
    Connect(std::io::Error),
    #[error("clamd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("talking to clamd failed: {0}")]
    Io(std::io::Error),
    /// The stream is larger than clamd (or `max_stream_bytes`) accepts: it cannot be scanned whole.
    #[error("too large for clamd: {0}")]
    SizeLimit(String),
    #[error("clamd error: {0}")]
    Clamd(String),
    #[error("unexpected reply from clamd: {0}")]
    Protocol(String),
}

impl ClamdError {
    /// The data itself cannot be scanned (as opposed to clamd being unavailable).
    pub fn is_size_limit(&self) -> bool {
        matches!(self, ClamdError::SizeLimit(_))
    }
}

/// A clamd client; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Clamd {
    settings: Settings,
    slots: Arc<Semaphore>,
}

impl Clamd {
    pub fn new(settings: Settings) -> Clamd {
        let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
        Clamd { settings, slots }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Scan `data` with INSTREAM under the scan deadline.
    pub async fn scan(&self, data: &[u8]) -> Result<Outcome, ClamdError> {
        if data.len() > self.settings.max_stream_bytes {
            let why = format!("{} bytes, more than {}", data.len(), self.settings.max_stream_bytes);
            return Err(ClamdError::SizeLimit(why));
        }
        let deadline = Instant::now() + self.settings.scan_timeout;
        let connect_by = deadline.min(Instant::now() + self.settings.connect_timeout);
        let slot = timeout_at(connect_by, self.slots.acquire())
            .await
            .map_err(|_| ClamdError::Timeout(self.settings.connect_timeout))?
            .map_err(|_| ClamdError::Protocol("client closed".into()))?;
        let reply = match &self.settings.address {
            Address::Unix(path) => {
                let s = timeout_at(connect_by, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| ClamdError::Timeout(self.settings.connect_timeout))?
                    .map_err(ClamdError::Connect)?;
                self.exchange(s, data, deadline).await
            }
            Address::Tcp(addr) => {
                let s = timeout_at(connect_by, tokio::net::TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| ClamdError::Timeout(self.settings.connect_timeout))?
                    .map_err(ClamdError::Connect)?;
                s.set_nodelay(true).map_err(ClamdError::Io)?;
                self.exchange(s, data, deadline).await
            }
        };
        drop(slot);
        parse_reply(&reply?)
    }

    /// `PING` → `PONG`, for health checks.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        let reply = match &self.settings.address {
            Address::Unix(p) => {
                let s = timeout_at(deadline, tokio::net::UnixStream::connect(p))
                    .await
                    .map_err(|_| ClamdError::Timeout(self.settings.connect_timeout))?
                    .map_err(ClamdError::Connect)?;
                command(s, b"zPING\0", deadline).await?
            }
            Address::Tcp(a) => {
                let s = timeout_at(deadline, tokio::net::TcpStream::connect(a.as_str()))
                    .await
                    .map_err(|_| ClamdError::Timeout(self.settings.connect_timeout))?
                    .map_err(ClamdError::Connect)?;
                command(s, b"zPING\0", deadline).await?
            }
        };
        if reply.trim() == "PONG" { Ok(()) } else { Err(ClamdError::Protocol(clean(&reply))) }
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        data: &[u8],
        deadline: Instant,
    ) -> Result<String, ClamdError> {
        let timeout = self.settings.scan_timeout;
        let sent = timeout_at(deadline, send_stream(&mut s, data, self.settings.chunk_size.max(1)))
            .await
            .map_err(|_| ClamdError::Timeout(timeout))?;
        // clamd may refuse mid-stream (size limit) and close: its reply says why, so read it even
        // when writing failed.
        let reply =
            timeout_at(deadline, read_reply(&mut s)).await.map_err(|_| ClamdError::Timeout(timeout))?;
        match (sent, reply) {
            (_, Ok(r)) if !r.is_empty() => Ok(r),
            (Err(e), _) => Err(ClamdError::Io(e)),
            (Ok(()), Err(e)) => Err(ClamdError::Io(e)),
            (Ok(()), Ok(_)) => Err(ClamdError::Protocol("empty reply".into())),
        }
    }
}

async fn send_stream<S: AsyncWrite + Unpin>(s: &mut S, data: &[u8], chunk: usize) -> std::io::Result<()> {
    s.write_all(b"zINSTREAM\0").await?;
    for piece in data.chunks(chunk) {
        s.write_all(&(piece.len() as u32).to_be_bytes()).await?;
        s.write_all(piece).await?;
    }
    s.write_all(&0u32.to_be_bytes()).await?;
    s.flush().await
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmd: &[u8],
    deadline: Instant,
) -> Result<String, ClamdError> {
    let t = Duration::from_secs(0);
    timeout_at(deadline, s.write_all(cmd))
        .await
        .map_err(|_| ClamdError::Timeout(t))?
        .map_err(ClamdError::Io)?;
    timeout_at(deadline, read_reply(&mut s))
        .await
        .map_err(|_| ClamdError::Timeout(t))?
        .map_err(ClamdError::Io)
}

/// Read up to the NUL that ends a `z` reply (or the end of the connection), at most [`MAX_REPLY`].
async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while out.len() < MAX_REPLY {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(i) = out.iter().position(|&b| b == 0) {
            out.truncate(i);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Read clamd's verdict on a stream.
pub fn parse_reply(reply: &str) -> Result<Outcome, ClamdError> {
    let r = reply.trim_end_matches(['\0', '\n']).trim();
    let body = r.strip_prefix("stream:").map(str::trim).unwrap_or(r);
    if body == "OK" {
        return Ok(Outcome::Clean);
    }
    if let Some(name) = body.strip_suffix(" FOUND") {
        return Ok(Outcome::Found(clean(name)));
    }
    if let Some(err) = body.strip_suffix("ERROR") {
        let err = clean(err.trim().trim_end_matches('.'));
        if err.to_ascii_lowercase().contains("size limit") {
            return Err(ClamdError::SizeLimit(err));
        }
        return Err(ClamdError::Clamd(err));
    }
    Err(ClamdError::Protocol(clean(r)))
}

/// A signature name or message as data: printable ASCII, at most 128 characters.
fn clean(s: &str) -> String {
    s.chars().take(128).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(parse_reply("stream: OK").unwrap(), Outcome::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature FOUND\0").unwrap(),
            Outcome::Found("Eicar-Test-Signature".into())
        );
        assert!(parse_reply("INSTREAM size limit exceeded. ERROR").unwrap_err().is_size_limit());
        assert!(matches!(parse_reply("stream: Can't allocate memory ERROR"), Err(ClamdError::Clamd(_))));
        assert!(matches!(parse_reply("UNKNOWN COMMAND"), Err(ClamdError::Protocol(_))));
        assert!(matches!(parse_reply(""), Err(ClamdError::Protocol(_))));
    }

    #[test]
    fn addresses() {
        assert_eq!("unix:/run/clamd.ctl".parse::<Address>().unwrap(), Address::Unix("/run/clamd.ctl".into()));
        assert_eq!("tcp:127.0.0.1:3310".parse::<Address>().unwrap(), Address::Tcp("127.0.0.1:3310".into()));
        for bad in ["unix:relative", "tcp:host", "127.0.0.1:3310", "tcp::1"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
