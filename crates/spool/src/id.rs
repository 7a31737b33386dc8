//! Queue ids: 16 lower-case hex digits, time-ordered, generated here and nowhere else.
//!
//! An id is 11 hex digits of milliseconds since the epoch, then 5 (20 bits) of which the top
//! [`NODE_TAG_BITS`] are the node's tag ([`NodeTag`]) and the rest a counter that starts at random.
//! Nodes sharing one store share its quarantine index and tracking history, both keyed by queue id, and
//! a release delivered by another node is imported into that node's spool under the same id: the store
//! gives each node a tag no other node holds (`store::Store::node_claim_tag`), so two nodes never mint
//! the same id, whatever their counters. (A counter alone, started at random, made two busy nodes
//! collide: each millisecond both used gave a one-in-a-million chance, dozens of times a day at a
//! thousand messages a second. A tag hashed from the node's name made one pair of names in 1,024
//! share a tag.)
//!
//! Nothing reads the tag back: an id is only ever required to be unique, so ids minted under another
//! tag (before a node's tag changed, or by another node) are as valid as any.

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

/// The tag a node puts in the ids it mints: a number below `1 << NODE_TAG_BITS` that no other node
/// sharing its store holds (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeTag(pub(crate) u16);

impl NodeTag {
    /// Tag `n`, if it fits in [`NODE_TAG_BITS`].
    pub fn new(n: u16) -> Option<NodeTag> {
        (u32::from(n) < 1 << NODE_TAG_BITS).then_some(NodeTag(n))
    }

    pub fn get(self) -> u16 {
        self.0
    }
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
    /// A generator for the node holding `tag`.
    pub(crate) fn new(tag: NodeTag) -> Generator {
        Generator { tag: u32::from(tag.0) << COUNTER_BITS, counter: AtomicU32::new(rand::random::<u32>()) }
    }

    pub(crate) fn next(&self) -> QueueId {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0) as u64;
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & ((1 << COUNTER_BITS) - 1);
        QueueId(format!("{:011x}{:05x}", ms & 0xfff_ffff_ffff, self.tag | n))
    }
}
