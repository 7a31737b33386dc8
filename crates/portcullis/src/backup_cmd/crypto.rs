//! Encrypted archives: a passphrase, Argon2id to a 256-bit key, and ChaCha20-Poly1305 (ring) over the
//! tar stream in 64 KiB chunks, STREAM-style.
//!
//! ```text
//! "PCBKENC1" | m_cost KiB (u32 BE) | t_cost (u32 BE) | p_cost (u32 BE) | salt (16) | nonce prefix (7)
//! then chunks: ciphertext of up to 64 KiB of plaintext + 16-byte tag
//! ```
//! Chunk `i` uses nonce `prefix || i (u32 BE) || last (0 or 1)` and the whole header as associated data.
//! Only the final chunk has `last = 1` and it is shorter than a full chunk (possibly empty), so
//! reordered, dropped, appended or truncated chunks and any change to the header fail to decrypt.
//! The header's Argon2 costs are bounded when read, so an archive cannot make restore use unbounded
//! memory or time.

use anyhow::{Context, bail};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

pub(crate) const MAGIC: &[u8; 8] = b"PCBKENC1";
const HEADER_LEN: usize = 8 + 12 + 16 + 7;
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
/// Argon2id costs for new archives: 64 MiB, 3 passes, 1 lane.
const M_COST: u32 = 64 * 1024;
const T_COST: u32 = 3;
const P_COST: u32 = 1;
/// Most an archive may ask for: 1 GiB, 10 passes, 8 lanes.
const MAX_M_COST: u32 = 1024 * 1024;
const MAX_T_COST: u32 = 10;
const MAX_P_COST: u32 = 8;

/// The passphrase in `path` (one trailing newline removed). At least 8 bytes.
pub(crate) fn read_passphrase(path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut p = std::fs::read(path).with_context(|| format!("reading passphrase file {}", path.display()))?;
    if p.ends_with(b"\n") {
        p.pop();
        if p.ends_with(b"\r") {
            p.pop();
        }
    }
    if p.len() < 8 {
        bail!("the passphrase in {} is shorter than 8 bytes", path.display());
    }
    Ok(p)
}

fn derive(passphrase: &[u8], salt: &[u8], m: u32, t: u32, p: u32) -> anyhow::Result<LessSafeKey> {
    let params =
        argon2::Params::new(m, t, p, Some(32)).map_err(|e| anyhow::anyhow!("Argon2 parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon.hash_password_into(passphrase, salt, &mut key).map_err(|e| anyhow::anyhow!("Argon2: {e}"))?;
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|_| anyhow::anyhow!("bad key length"))?;
    Ok(LessSafeKey::new(unbound))
}

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    Nonce::assume_unique_for_key(n)
}

/// Encrypts everything written to it; call [`EncryptWriter::finish`] to write the final chunk.
pub(crate) struct EncryptWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    header: Vec<u8>,
    prefix: [u8; 7],
    counter: u32,
    buf: Vec<u8>,
}

impl<W: Write> EncryptWriter<W> {
    pub fn new(inner: W, passphrase: &[u8]) -> anyhow::Result<EncryptWriter<W>> {
        EncryptWriter::with_costs(inner, passphrase, [M_COST, T_COST, P_COST])
    }

    /// With explicit Argon2id costs (m KiB, t, p); tests use small ones.
    fn with_costs(mut inner: W, passphrase: &[u8], costs: [u32; 3]) -> anyhow::Result<EncryptWriter<W>> {
        let rng = ring::rand::SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut prefix = [0u8; 7];
        ring::rand::SecureRandom::fill(&rng, &mut salt).map_err(|_| anyhow::anyhow!("no randomness"))?;
        ring::rand::SecureRandom::fill(&rng, &mut prefix).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut header = MAGIC.to_vec();
        for v in costs {
            header.extend_from_slice(&v.to_be_bytes());
        }
        header.extend_from_slice(&salt);
        header.extend_from_slice(&prefix);
        let key = derive(passphrase, &salt, costs[0], costs[1], costs[2])?;
        inner.write_all(&header)?;
        Ok(EncryptWriter { inner, key, header, prefix, counter: 0, buf: Vec::with_capacity(2 * CHUNK) })
    }

    fn seal(&mut self, len: usize, last: bool) -> io::Result<()> {
        let mut chunk: Vec<u8> = self.buf.drain(..len).collect();
        let n = nonce(&self.prefix, self.counter, last);
        self.key
            .seal_in_place_append_tag(n, Aad::from(&self.header), &mut chunk)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.counter = self.counter.checked_add(1).ok_or_else(|| io::Error::other("archive too large"))?;
        self.inner.write_all(&chunk)
    }

    /// Write the final chunk and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let len = self.buf.len();
        self.seal(len, true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        // Keep at least one byte back: the final chunk must be shorter than a full one or empty.
        while self.buf.len() > CHUNK {
            self.seal(CHUNK, false)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts an archive written by [`EncryptWriter`]; any damage is an error, never short data.
pub(crate) struct DecryptReader<R: Read> {
    inner: BufReader<R>,
    key: LessSafeKey,
    header: Vec<u8>,
    prefix: [u8; 7],
    counter: u32,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> DecryptReader<R> {
    pub fn new(inner: R, passphrase: &[u8]) -> anyhow::Result<DecryptReader<R>> {
        let mut inner = BufReader::with_capacity(CHUNK + TAG + 1, inner);
        let mut header = vec![0u8; HEADER_LEN];
        inner.read_exact(&mut header).context("reading the encryption header")?;
        if &header[..8] != MAGIC {
            bail!("not an encrypted Portcullis archive");
        }
        let word = |i: usize| u32::from_be_bytes(header[8 + 4 * i..12 + 4 * i].try_into().expect("4 bytes"));
        let (m, t, p) = (word(0), word(1), word(2));
        if m > MAX_M_COST || t > MAX_T_COST || p > MAX_P_COST {
            bail!("the archive asks for Argon2 costs beyond the limits (m={m} KiB, t={t}, p={p})");
        }
        let key = derive(passphrase, &header[20..36], m, t, p)?;
        let prefix: [u8; 7] = header[36..43].try_into().expect("7 bytes");
        Ok(DecryptReader { inner, key, header, prefix, counter: 0, plain: Vec::new(), pos: 0, done: false })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut chunk = Vec::with_capacity(CHUNK + TAG);
        (&mut self.inner).take((CHUNK + TAG) as u64).read_to_end(&mut chunk)?;
        let last = self.inner.fill_buf()?.is_empty();
        if !last && chunk.len() < CHUNK + TAG {
            return Err(io::Error::other("damaged archive: short chunk"));
        }
        if chunk.len() < TAG {
            return Err(io::Error::other("truncated archive (no final chunk)"));
        }
        let n = nonce(&self.prefix, self.counter, last);
        let plain = self
            .key
            .open_in_place(n, Aad::from(&self.header), &mut chunk)
            .map_err(|_| io::Error::other("wrong passphrase, or the archive was damaged or truncated"))?;
        self.plain = plain.to_vec();
        self.pos = 0;
        self.counter += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut w = EncryptWriter::with_costs(Vec::new(), b"correct horse", [64, 1, 1]).unwrap();
        w.write_all(&data).unwrap();
        let sealed = w.finish().unwrap();
        let mut back = Vec::new();
        DecryptReader::new(&sealed[..], b"correct horse").unwrap().read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        sealed
    }

    #[test]
    fn encrypts_and_refuses_damage() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            round_trip(len);
        }
        let sealed = round_trip(2 * CHUNK + 10);
        let read = |bytes: &[u8], pass: &[u8]| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            DecryptReader::new(bytes, pass).map_err(io::Error::other)?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert!(read(&sealed, b"wrong horse").is_err());
        // Cut after the first full chunk: it decrypts as a non-final chunk, then there is nothing.
        assert!(read(&sealed[..HEADER_LEN + CHUNK + TAG], b"correct horse").is_err());
        assert!(read(&sealed[..sealed.len() - 1], b"correct horse").is_err());
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN + 5] ^= 1;
        assert!(read(&flipped, b"correct horse").is_err());
        let mut costly = sealed.clone();
        costly[8..12].copy_from_slice(&(4u32 << 20).to_be_bytes());
        assert!(read(&costly, b"correct horse").is_err());
    }
}
