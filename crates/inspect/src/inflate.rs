//! Inflating in memory: zlib and raw deflate data, already in a slice, straight into a vector's
//! spare capacity (flate2's `decompress_vec`), and the headers of gzip members around raw deflate.
//! Nothing is zero-filled before it is written and nothing passes through a reader's buffer, which
//! is what reading a decoder through `io::Read` costs. The vector's capacity bounds every step:
//! callers grow it only as far as their limit.

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

/// What a gzip member's header says (RFC 1952, 2.3).
pub(crate) struct GzipHeader<'a> {
    /// Header bytes: the member's deflate data starts here.
    pub len: usize,
    /// The original file name (`FNAME`), without its terminating zero.
    pub name: Option<&'a [u8]>,
}

/// The gzip member header at the start of `d`; `Err` says why it is not one (a wrong magic or
/// method, reserved flags, a header cut short, or a header CRC that does not match).
pub(crate) fn gzip_header(d: &[u8]) -> Result<GzipHeader<'_>, &'static str> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    const CUT: &str = "gzip header cut short";
    let fixed = d.get(..10).ok_or(CUT)?;
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err("not a gzip member (magic or method)");
    }
    let flags = fixed[3];
    if flags & 0xe0 != 0 {
        return Err("gzip header with reserved flags set");
    }
    let mut len = 10;
    if flags & FEXTRA != 0 {
        let x = d.get(len..len + 2).ok_or(CUT)?;
        len += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    let zero_terminated = |len: &mut usize| -> Result<&[u8], &'static str> {
        let field = d.get(*len..).ok_or(CUT)?;
        let end = memchr::memchr(0, field).ok_or(CUT)?;
        *len += end + 1;
        Ok(&field[..end])
    };
    let name = if flags & FNAME != 0 { Some(zero_terminated(&mut len)?) } else { None };
    if flags & FCOMMENT != 0 {
        zero_terminated(&mut len)?;
    }
    if flags & FHCRC != 0 {
        let sum = d.get(len..len + 2).ok_or(CUT)?;
        let mut crc = flate2::Crc::new();
        crc.update(d.get(..len).ok_or(CUT)?);
        if u16::from_le_bytes([sum[0], sum[1]]) != crc.sum() as u16 {
            return Err("gzip header checksum does not match");
        }
        len += 2;
    }
    if len > d.len() {
        return Err(CUT);
    }
    Ok(GzipHeader { len, name })
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
