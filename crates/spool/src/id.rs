//! Queue ids: 16 lower-case hex digits, time-ordered, generated here and nowhere else.
//!
//! An id is 11 hex digits of milliseconds since the epoch, then 5 (20 bits) of which the top
//! [`NODE_TAG_BITS`] are the node's tag ([`node_tag`], from `cluster.node_name`) and the rest a counter
//! that starts at random. Nodes sharing one store share its quarantine index and tracking history, both
//! keyed by queue id, and a release delivered by another node is imported into that node's spool under
//! the same id: two nodes with different tags can never mint the same id, whatever their counters. (A
//! counter alone, started at random, made two busy nodes collide: each millisecond both used gave a
//! one-in-a-million chance, dozens of times a day at a thousand messages a second.)

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

/// Bits of an id's last 20 that name the node (1,024 tags); the other 10 count, so one node mints at
/// most 1,024 distinct ids per millisecond (a million a second, far beyond what a spool writes).
pub const NODE_TAG_BITS: u32 = 10;
const COUNTER_BITS: u32 = 20 - NODE_TAG_BITS;

/// The tag a node named `name` puts in its ids: a hash (FNV-1a) of the name, cut to [`NODE_TAG_BITS`].
/// Two names can share a tag (one pair in 1,024): the cluster checks that no two nodes it knows do
/// (see `Store::nodes` and the node's start-up check).
pub fn node_tag(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    (hash ^ (hash >> NODE_TAG_BITS) ^ (hash >> (2 * NODE_TAG_BITS))) & ((1 << NODE_TAG_BITS) - 1)
}

/// Makes ids (see the module documentation).
#[derive(Debug)]
pub(crate) struct Generator {
    /// The node's tag, already shifted to its place in the last 20 bits.
    tag: u32,
    /// The next counter value (only its low bits are used).
    pub(crate) counter: AtomicU32,
}

impl Generator {
    /// A generator for the node named `node` (`cluster.node_name`; empty on a single node).
    pub(crate) fn new(node: &str) -> Generator {
        Generator { tag: node_tag(node) << COUNTER_BITS, counter: AtomicU32::new(rand::random::<u32>()) }
    }

    pub(crate) fn next(&self) -> QueueId {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & ((1 << COUNTER_BITS) - 1);
        QueueId(format!("{:011x}{:05x}", ms & 0xfff_ffff_ffff, self.tag | n))
    }
}
