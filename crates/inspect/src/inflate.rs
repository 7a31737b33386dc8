//! Inflating in memory: zlib and raw deflate data, already in a slice, straight into a vector's
//! spare capacity (flate2's `decompress_vec`). Nothing is zero-filled before it is written and
//! nothing passes through a reader's buffer, which is what reading a decoder through `io::Read`
//! costs. The vector's capacity bounds every step: callers grow it only as far as their limit.

use flate2::{Decompress, FlushDecompress, Status};

/// Smallest capacity a step grows an empty vector to.
const MIN_STEP: usize = 256;

/// A deflate stream being inflated from a slice.
pub(crate) struct Inflater<'a> {
    z: Decompress,
    input: &'a [u8],
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The output is full (its capacity reached): grow it and step again for more.
    Full,
    /// The stream's end: no more output.
    End,
    /// The input ran out before the stream's end.
    Truncated,
    /// The data is not valid deflate (what came before the fault was kept).
    Corrupt,
}

impl<'a> Inflater<'a> {
    /// A zlib stream (a two-byte header and an Adler-32 trailer: PDF's FlateDecode).
    pub fn zlib(input: &'a [u8]) -> Self {
        Inflater { z: Decompress::new(true), input }
    }

    /// Raw deflate (a zip member's data).
    pub fn raw(input: &'a [u8]) -> Self {
        Inflater { z: Decompress::new(false), input }
    }

    /// Start over on another zlib stream, keeping the decompressor's memory (many small streams,
    /// as in a PDF, then cost no allocation each).
    pub fn restart_zlib(&mut self, input: &'a [u8]) {
        self.z.reset(true);
        self.input = input;
    }

    /// Input bytes consumed so far (at the stream's end, exactly the stream's length).
    pub fn consumed(&self) -> u64 {
        self.z.total_in()
    }

    /// Inflate into `out` until its capacity is reached, growing it first when it is full
    /// (doubling, to at most `limit` bytes, never past it). With `out.len() >= limit` nothing is
    /// inflated and the step is [`Step::Full`].
    pub fn step(&mut self, out: &mut Vec<u8>, limit: usize) -> Step {
        if out.len() >= limit {
            return Step::Full;
        }
        if out.len() == out.capacity() {
            let want = (out.len().saturating_mul(2)).max(MIN_STEP).min(limit);
            out.reserve_exact(want - out.len());
        }
        loop {
            let consumed = usize::try_from(self.z.total_in()).unwrap_or(usize::MAX);
            let rest = self.input.get(consumed..).unwrap_or_default();
            let before = (self.z.total_in(), out.len());
            let status = self.z.decompress_vec(rest, out, FlushDecompress::None);
            let progress = before != (self.z.total_in(), out.len());
            match status {
                Err(_) => return Step::Corrupt,
                Ok(Status::StreamEnd) => return Step::End,
                _ if out.len() == out.capacity() => return Step::Full,
                _ if !progress => return Step::Truncated,
                // Input left and room left: zlib returned early (between blocks); go on.
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, ZlibEncoder};
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn whole_bounded_truncated_and_corrupt() {
        let text: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        let packed = deflate(&text);
        let mut out = Vec::new();
        let mut z = Inflater::raw(&packed);
        let mut steps = 0;
        while z.step(&mut out, usize::MAX) == Step::Full {
            steps += 1;
        }
        assert_eq!(out, text);
        assert!(steps > 5, "grew by doubling: {steps} steps");
        // The capacity bounds the output exactly.
        let mut out = Vec::new();
        let mut z = Inflater::raw(&packed);
        while z.step(&mut out, 1000) == Step::Full && out.len() < 1000 {}
        assert_eq!(out, text[..1000]);
        assert_eq!(z.step(&mut out, 1000), Step::Full);
        // Cut input, and a corrupt block type.
        let mut out = Vec::new();
        let mut z = Inflater::raw(&packed[..packed.len() / 2]);
        let end = loop {
            match z.step(&mut out, usize::MAX) {
                Step::Full => {}
                other => break other,
            }
        };
        assert_eq!(end, Step::Truncated);
        assert!(!out.is_empty() && text.starts_with(&out));
        assert_eq!(Inflater::raw(b"\xff\xff\xff").step(&mut Vec::new(), 100), Step::Corrupt);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"zlib").unwrap();
        let zlib = z.finish().unwrap();
        let mut out = Vec::new();
        let mut z = Inflater::zlib(b"\x78\x9c\xff");
        assert_eq!(z.step(&mut out, 100), Step::Corrupt);
        z.restart_zlib(&zlib);
        assert_eq!(z.step(&mut out, 100), Step::End);
        assert_eq!(out, b"zlib");
    }
}
