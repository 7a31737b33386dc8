//! Queue ids: 16 lower-case hex digits, time-ordered, generated here and nowhere else.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A queue id. The only way to get one from outside text is [`QueueId::parse`], which is strict, so a
/// queue id can always be used as a file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(String);

impl QueueId {
    pub fn parse(s: &str) -> Result<QueueId, String> {
        if s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(QueueId(s.to_string()))
        } else {
            Err(format!("`{}` is not a queue id (16 hex digits)", s.escape_default()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes ids: 11 hex digits of milliseconds since the epoch, then 5 of a counter that starts at random.
#[derive(Debug)]
pub(crate) struct Generator {
    counter: AtomicU32,
}

impl Generator {
    pub(crate) fn new() -> Generator {
        Generator { counter: AtomicU32::new(rand::random::<u32>()) }
    }

    pub(crate) fn next(&self) -> QueueId {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & 0xf_ffff;
        QueueId(format!("{:011x}{:05x}", ms & 0xfff_ffff_ffff, n))
    }
}
