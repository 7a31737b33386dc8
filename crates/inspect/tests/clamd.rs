//! The clamd client against stand-in servers on a private Unix socket: framing, verdicts, and every
//! failure being an error (never clean). The real clamd is exercised by tests/test_attachments.py.

use inspect::clamd::{Address, Clamd, ClamdError, Outcome, Settings};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

fn client(path: &Path, scan_timeout: Duration) -> Clamd {
    Clamd::new(Settings {
        address: Address::Unix(path.to_path_buf()),
        connect_timeout: Duration::from_millis(500),
        scan_timeout,
        max_connections: 2,
        chunk_size: 1000,
        max_stream_bytes: 1 << 20,
    })
}

/// Read one INSTREAM request: the command, then length-prefixed chunks up to the zero length.
async fn read_stream(s: &mut tokio::net::UnixStream) -> (Vec<u8>, usize) {
    let mut cmd = [0u8; 10];
    s.read_exact(&mut cmd).await.unwrap();
    assert_eq!(&cmd, b"zINSTREAM\0");
    let (mut data, mut chunks) = (Vec::new(), 0);
    loop {
        let n = s.read_u32().await.unwrap() as usize;
        if n == 0 {
            return (data, chunks);
        }
        let mut buf = vec![0; n];
        s.read_exact(&mut buf).await.unwrap();
        data.extend(buf);
        chunks += 1;
    }
}

#[tokio::test]
async fn framing_and_a_found_signature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let (data, chunks) = read_stream(&mut s).await;
        s.write_all(b"stream: Test.Sig FOUND\0").await.unwrap();
        (data, chunks)
    });
    let payload: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
    let got = client(&path, Duration::from_secs(5)).scan(&payload).await.unwrap();
    assert_eq!(got, Outcome::Found("Test.Sig".into()));
    let (data, chunks) = server.await.unwrap();
    assert_eq!((data, chunks), (payload, 3));
}

#[tokio::test]
async fn size_limit_refused_mid_stream_is_unscannable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 10 + 4 + 1000];
        s.read_exact(&mut head).await.unwrap();
        s.write_all(b"INSTREAM size limit exceeded. ERROR\0").await.unwrap();
    });
    let err = client(&path, Duration::from_secs(5)).scan(&vec![7u8; 900_000]).await.unwrap_err();
    assert!(err.is_size_limit(), "{err}");
    let too_big = client(&path, Duration::from_secs(5)).scan(&vec![0u8; 2 << 20]).await.unwrap_err();
    assert!(too_big.is_size_limit());
}

#[tokio::test]
async fn silent_or_absent_clamd_is_an_error_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clamd.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = read_stream(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await; // never answers
    });
    let started = Instant::now();
    let err = client(&path, Duration::from_millis(300)).scan(b"data").await.unwrap_err();
    assert!(matches!(err, ClamdError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let missing = dir.path().join("nobody.sock");
    let err = client(&missing, Duration::from_secs(1)).scan(b"data").await.unwrap_err();
    assert!(matches!(err, ClamdError::Connect(_)), "{err}");
    let hangup = dir.path().join("hangup.sock");
    let l2 = UnixListener::bind(&hangup).unwrap();
    tokio::spawn(async move {
        let (s, _) = l2.accept().await.unwrap();
        drop(s);
    });
    assert!(client(&hangup, Duration::from_secs(1)).scan(b"data").await.is_err());
}
