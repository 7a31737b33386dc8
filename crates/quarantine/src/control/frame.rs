//! One bounded line from a stream: what both ends of the control socket read. Generic over the
//! stream, so tests use in-memory pipes.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why no line was read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the line is longer than {0} bytes")]
    TooLong(usize),
    #[error("the peer closed the connection before a whole line")]
    Closed,
    #[error("reading a line: {0}")]
    Io(#[from] std::io::Error),
}

/// Read up to and including `\n`, returning the line without it; never more than `max` bytes are
/// kept (a longer line is an error as soon as it passes `max`, without reading the rest).
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Err(FrameError::Closed);
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let content = if done { take - 1 } else { take };
        if line.len() + content > max {
            return Err(FrameError::TooLong(max));
        }
        line.extend_from_slice(&buf[..content]);
        reader.consume(take);
        if done {
            return Ok(line);
        }
    }
}
