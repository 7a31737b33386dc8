//! Which of a fixed set of ASCII needles occur in some bytes, matched in any ASCII case: one pass
//! of an Aho-Corasick DFA over every byte, overlapping occurrences included (a needle inside or
//! across another one's occurrence is still seen).
//!
//! This is the overlapping search of `aho_corasick` without its iterator: the same automaton
//! (standard match semantics, so each match state lists every needle ending there, suffixes
//! included) stepped a byte at a time, and every needle of every match state recorded. The answer
//! is a set, not a list of matches, so nothing is allocated per match and the loop is a table
//! lookup per byte.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

/// A set of at most [`NeedleSet::MAX`] needles, compiled once.
pub(crate) struct NeedleSet {
    dfa: DFA,
}

impl NeedleSet {
    /// Needles per set: the answer is one bit each in a `u64`.
    pub const MAX: usize = 64;

    /// Compile `needles` (ASCII, matched in any ASCII case). Panics on an empty needle or more than
    /// [`NeedleSet::MAX`]: the sets are constants of this crate, so that is a programming error.
    pub fn new(needles: &[&str]) -> NeedleSet {
        assert!(needles.len() <= Self::MAX, "at most {} needles", Self::MAX);
        assert!(needles.iter().all(|n| !n.is_empty()), "an empty needle matches everywhere");
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(needles)
            .expect("a small set of ASCII needles builds a DFA");
        NeedleSet { dfa }
    }

    /// Bit `i` is set when needle `i` occurs somewhere in `haystack`.
    pub fn occurring(&self, haystack: &[u8]) -> u64 {
        let dfa = &self.dfa;
        let Ok(mut state) = dfa.start_state(Anchored::No) else {
            unreachable!("the DFA is built for unanchored searches")
        };
        let all = u64::MAX.checked_shr((Self::MAX - dfa.patterns_len()) as u32).unwrap_or(0);
        let mut seen = 0u64;
        for &b in haystack {
            state = dfa.next_state(Anchored::No, state, b);
            if dfa.is_special(state) && dfa.is_match(state) {
                for i in 0..dfa.match_len(state) {
                    seen |= 1 << dfa.match_pattern(state, i).as_usize();
                }
                // Every needle seen: the rest of the haystack cannot change the answer.
                if seen == all {
                    break;
                }
            }
        }
        seen
    }
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
        let mut seed = 0x9e37_79b9u32;
        for len in 0..400 {
            let mut hay = Vec::new();
            for _ in 0..len % 40 {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                hay.extend_from_slice(alphabet[seed as usize % alphabet.len()]);
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
}
