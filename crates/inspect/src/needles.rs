//! Which of a fixed set of ASCII needles occur in some bytes, matched in any ASCII case: one pass
//! of a DFA over every byte, overlapping occurrences included (a needle inside or across another
//! one's occurrence is still seen).
//!
//! The automaton is `aho_corasick`'s (standard match semantics, so each match state lists every
//! needle ending there, suffixes included), copied once into a compact table made for this one
//! question: the answer is a set, not a list of matches, so nothing is allocated per match.
//!
//! # The table
//! Bytes are folded into at most [`CLASSES`] classes (every byte no needle holds is one class; an
//! ASCII letter and its other case are one), and a state is numbered by its row's first entry, a
//! multiple of [`CLASSES`]. A step is then `table[state | class]`, an index below 2^16 into a table
//! of 2^16 entries, so it needs no bounds check. Match states are numbered first, so "was a needle
//! seen" is one comparison, made once per [`CHUNK`] bytes on the lowest state the chunk went
//! through: only a chunk that passed a match state is stepped again to record its needles. This
//! is what makes the pass cheaper than stepping the crate's own DFA (about half the instructions
//! per byte). A long haystack is stepped in [`LANES`] parts side by side, since one chain of steps
//! waits on the memory's latency at every byte.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// Byte classes at most; also the width of a table row (a power of two).
const CLASSES: usize = 64;
/// Entries in the table: every index a `u16` state and a class can make.
const TABLE: usize = 1 << 16;
/// Bytes stepped between two checks for a match state.
const CHUNK: usize = 8;
/// Parts of a long haystack stepped side by side (see [`NeedleSet::occurring`]).
const LANES: usize = 4;
/// Bytes a part must have at least for a haystack to be cut into parts.
const SPLIT: usize = 1024;

/// A set of at most [`NeedleSet::MAX`] needles, compiled once.
pub(crate) struct NeedleSet {
    /// The class of every byte.
    class: [u8; 256],
    /// The next state for each state and class, at `state | class`.
    table: Box<[u16; TABLE]>,
    start: u16,
    /// States below this are match states.
    match_end: u16,
    /// The needles each match state completes, one bit each, at `state / CLASSES`.
    needles: Vec<u64>,
    /// Every needle's bit.
    all: u64,
    /// The longest needle's length.
    longest: usize,
}

impl NeedleSet {
    /// Needles per set: the answer is one bit each in a `u64`.
    pub const MAX: usize = 64;

    /// Compile `needles` (ASCII, matched in any ASCII case). Panics on an empty or non-ASCII
    /// needle, more than [`NeedleSet::MAX`], or a set too large for the table: the sets are
    /// constants of this crate, so that is a programming error.
    pub fn new(needles: &[&str]) -> NeedleSet {
        assert!(needles.len() <= Self::MAX, "at most {} needles", Self::MAX);
        assert!(needles.iter().all(|n| !n.is_empty()), "an empty needle matches everywhere");
        assert!(needles.iter().all(|n| n.is_ascii()), "needles are ASCII");
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(needles)
            .expect("a small set of ASCII needles builds a DFA");
        let (class, representatives) = classes(needles);
        let Ok(start) = dfa.start_state(Anchored::No) else {
            unreachable!("the DFA is built for unanchored searches")
        };
        // Every state reachable from the start, in the order found (`index`: where each of the
        // crate's state ids was found), then renumbered: match states first.
        let mut found = vec![start];
        let mut index = vec![usize::MAX; start.as_usize() + 1];
        index[start.as_usize()] = 0;
        let mut next = Vec::new();
        while let Some(&sid) = found.get(next.len() / representatives.len()) {
            for &b in &representatives {
                let to = dfa.next_state(Anchored::No, sid, b);
                if index.len() <= to.as_usize() {
                    index.resize(to.as_usize() + 1, usize::MAX);
                }
                if index[to.as_usize()] == usize::MAX {
                    index[to.as_usize()] = found.len();
                    found.push(to);
                }
                next.push(index[to.as_usize()]);
            }
        }
        let mut order: Vec<usize> = (0..found.len()).collect();
        order.sort_by_key(|&i| !dfa.is_match(found[i]));
        let mut number = vec![0u16; found.len()];
        for (new, &old) in order.iter().enumerate() {
            number[old] = u16::try_from(new * CLASSES).expect("the needles fit the table");
        }
        let mut table = vec![0u16; TABLE].into_boxed_slice();
        for (old, row) in next.chunks(representatives.len()).enumerate() {
            for (c, &to) in row.iter().enumerate() {
                table[usize::from(number[old]) | c] = number[to];
            }
        }
        let matching = order.iter().take_while(|&&i| dfa.is_match(found[i]));
        let ending =
            |sid| (0..dfa.match_len(sid)).fold(0, |m, i| m | 1 << dfa.match_pattern(sid, i).as_usize());
        let needle_bits: Vec<u64> = matching.map(|&i| ending(found[i])).collect();
        NeedleSet {
            class,
            table: table.try_into().expect("the table has TABLE entries"),
            start: number[0],
            match_end: u16::try_from(needle_bits.len() * CLASSES).expect("the needles fit the table"),
            needles: needle_bits,
            all: u64::MAX.checked_shr((Self::MAX - needles.len()) as u32).unwrap_or(0),
            longest: needles.iter().map(|n| n.len()).max().unwrap_or(1),
        }
    }

    /// Bit `i` is set when needle `i` occurs somewhere in `haystack`.
    ///
    /// A step waits on the one before it (the next state is a load whose index is the state), so
    /// one pass runs at the memory's latency, not its speed. A long haystack is therefore cut into
    /// [`LANES`] parts stepped side by side, each independent of the others; every part but the
    /// first starts [`NeedleSet::longest`] - 1 bytes early, so a needle ending in it is seen whole.
    pub fn occurring(&self, haystack: &[u8]) -> u64 {
        let part = haystack.len() / LANES;
        if part < SPLIT {
            return self.run(self.start, haystack, 0).1;
        }
        let back = self.longest - 1;
        let lanes: [&[u8]; LANES] = std::array::from_fn(|l| {
            let end = if l == LANES - 1 { haystack.len() } else { (l + 1) * part };
            &haystack[(l * part).saturating_sub(back)..end]
        });
        let mut states = [self.start; LANES];
        let mut seen = 0u64;
        let together = lanes.iter().map(|l| l.len()).min().unwrap_or(0) / CHUNK * CHUNK;
        for at in (0..together).step_by(CHUNK) {
            let chunks: [&[u8; CHUNK]; LANES] =
                std::array::from_fn(|l| lanes[l][at..at + CHUNK].try_into().expect("CHUNK bytes"));
            let from = states;
            let mut lowest = [u16::MAX; LANES];
            // Byte by byte, every lane in turn: the lanes' steps overlap in time.
            for i in 0..CHUNK {
                for ((state, low), chunk) in states.iter_mut().zip(&mut lowest).zip(&chunks) {
                    *state = self.step(*state, chunk[i]);
                    *low = (*low).min(*state);
                }
            }
            for l in 0..LANES {
                if lowest[l] < self.match_end {
                    seen |= self.needles_ending_in(from[l], chunks[l]);
                }
            }
            if seen == self.all {
                return seen;
            }
        }
        for (lane, state) in lanes.iter().zip(states) {
            seen = self.run(state, &lane[together..], seen).1;
            if seen == self.all {
                break;
            }
        }
        seen
    }

    /// Step through `bytes` from `state`, adding the needles that end in them to `seen`; the
    /// state reached (or where it stopped, once every needle is seen) and the needles seen.
    fn run(&self, mut state: u16, bytes: &[u8], mut seen: u64) -> (u16, u64) {
        let chunks = bytes.chunks_exact(CHUNK);
        let rest = chunks.remainder();
        for chunk in chunks.chain([rest]) {
            let from = state;
            let mut lowest = u16::MAX;
            for &b in chunk {
                state = self.step(state, b);
                lowest = lowest.min(state);
            }
            if lowest < self.match_end {
                seen |= self.needles_ending_in(from, chunk);
                // Every needle seen: the rest of the haystack cannot change the answer.
                if seen == self.all {
                    break;
                }
            }
        }
        (state, seen)
    }

    fn step(&self, state: u16, b: u8) -> u16 {
        self.table[usize::from(state | u16::from(self.class[usize::from(b)]))]
    }

    /// The needles that end in `chunk`, stepped again from `state` (where it started).
    fn needles_ending_in(&self, mut state: u16, chunk: &[u8]) -> u64 {
        let mut seen = 0;
        for &b in chunk {
            state = self.step(state, b);
            if state < self.match_end {
                seen |= self.needles[usize::from(state) / CLASSES];
            }
        }
        seen
    }
}

/// The class of every byte, and one byte of each class. Class 0 is every byte no needle holds in
/// either case (0xff stands for it: needles are ASCII); every other byte a needle holds is a class
/// of its own, shared with its other case when it is a letter.
fn classes(needles: &[&str]) -> ([u8; 256], Vec<u8>) {
    let mut class = [0u8; 256];
    let mut representatives = vec![0xff];
    for b in needles.iter().flat_map(|n| n.bytes()).map(|b| b.to_ascii_lowercase()) {
        if class[usize::from(b)] == 0 {
            let c = u8::try_from(representatives.len()).expect("at most CLASSES byte classes");
            assert!(usize::from(c) < CLASSES, "at most {CLASSES} byte classes");
            class[usize::from(b)] = c;
            class[usize::from(b.to_ascii_uppercase())] = c;
            representatives.push(b);
        }
    }
    (class, representatives)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasick, AhoCorasickKind};

    /// The overlapping iterator of `aho_corasick`, as the scans used it before.
    fn oracle(needles: &[&str], haystack: &[u8]) -> u64 {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(AhoCorasickKind::DFA))
            .build(needles)
            .unwrap();
        ac.find_overlapping_iter(haystack).fold(0, |seen, m| seen | 1 << m.pattern().as_usize())
    }

    #[test]
    fn same_set_as_the_overlapping_iterator() {
        // Needles that are prefixes, suffixes and overlaps of one another.
        let needles = [
            "\r\nset ",
            "set objshell",
            "createobject(",
            "createobject(\"",
            "activexobject",
            "new activexobject",
            "wscript.",
            "wscript.shell",
            ";\n",
            "a",
            "<script",
            "script",
        ];
        let set = NeedleSet::new(&needles);
        let alphabet: &[&[u8]] = &[
            b"\r\n",
            b"Set ",
            b"objSHELL",
            b"CreateObject(",
            b"\"",
            b"new ",
            b"ActiveXObject",
            b"WScript.",
            b"shell",
            b";",
            b"\n",
            b"<",
            b"script",
            b"x",
            b"\xff",
            b" ",
        ];
        let mut next = crate::xorshift(0x9e37_79b9);
        for len in 0..400 {
            let mut hay = Vec::new();
            for _ in 0..len % 40 {
                hay.extend_from_slice(alphabet[next() as usize % alphabet.len()]);
            }
            assert_eq!(set.occurring(&hay), oracle(&needles, &hay), "{:?}", String::from_utf8_lossy(&hay));
        }
        assert_eq!(set.occurring(b""), 0);
        // Every needle seen early: the answer is complete, whatever follows.
        let every: Vec<u8> =
            needles.iter().flat_map(|n| n.bytes().chain(*b" ")).chain(vec![b'x'; 5000]).collect();
        assert_eq!(set.occurring(&every), (1 << needles.len()) - 1);
        assert_eq!(set.occurring(&every), oracle(&needles, &every));
        assert_eq!(set.occurring(b"\r\nSET OBJSHELL"), oracle(&needles, b"\r\nSET OBJSHELL"));
        assert_eq!(set.occurring(b"\r\nSET OBJSHELL") & 0b11, 0b11);
    }

    #[test]
    fn long_haystacks_cut_into_parts_miss_nothing() {
        let needles = ["wscript.shell", "<script", "script", "a", "createobject(\"", ";\n"];
        let set = NeedleSet::new(&needles[..]);
        let mut next = crate::xorshift(0x2545_f491);
        for len in [4 * SPLIT, 4 * SPLIT + 7, 10_000, 65_536 + 3] {
            let part = len / LANES;
            for needle in needles {
                // The needle across, just before and just after every cut, in a filler it is not in.
                for cut in (1..LANES).map(|l| l * part) {
                    for shift in 0..=needle.len() {
                        let mut hay = vec![b'x'; len];
                        let at = (cut + shift).saturating_sub(needle.len()).min(len - needle.len());
                        hay[at..at + needle.len()].copy_from_slice(needle.to_uppercase().as_bytes());
                        assert_eq!(set.occurring(&hay), oracle(&needles, &hay), "{needle} at {at} of {len}");
                    }
                }
            }
            // Random bytes of the needles' letters, and every needle seen early.
            let letters = b"wscript.hel<ao(\";\n x";
            let hay: Vec<u8> = (0..len).map(|_| letters[next() as usize % letters.len()]).collect();
            assert_eq!(set.occurring(&hay), oracle(&needles, &hay));
        }
        let mut hay = vec![b'x'; 8 * SPLIT];
        hay[5000..5013].copy_from_slice(b"WScript.Shell");
        assert_eq!(set.occurring(&hay), oracle(&needles, &hay));
    }
}
