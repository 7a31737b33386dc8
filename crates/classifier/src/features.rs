//! The features of one message for the logistic model: hashed, binary, at most a bounded number.
//!
//! Two kinds, hashed into one index space of [`DIM`] weights (index 0 is the bias, never a feature):
//! - the tokens of [`crate::tokenize`]: header, sender, subject and body words, adjacent word pairs,
//!   URL hosts, MIME shape (at most `max_tokens`);
//! - byte 4-grams of the first [`NGRAM_BYTES`] bytes of the message body as sent (after the header
//!   block), ASCII letters folded and runs of white space read as one space: they see what the
//!   normalised view renders away (HTML tags and attributes, encodings, obfuscated spellings), the
//!   strongest single feature family of the TREC spam tracks. Not the header block's: its 4-grams
//!   (relay names, dates, message ids, per-sender field layouts) let a model recognise the mail it
//!   learned, and in 5-fold cross-validation on training mail they look best, but they age badly:
//!   learning the older part of the training mail and checking the newer part (as the benchmark's
//!   split does), body 4-grams miss about a third less spam at 0.1% to 0.3% false positives
//!   (`bench/RESULTS-classifier.md`, "Tuning"). The header's words are tokens already.
//!
//! Tokens hash into the lower half of the index space, 4-grams into the upper half ([`is_ngram`]), so
//! the model can weigh the two blocks apart. A message's features are a sorted set of distinct
//! indices (binary features); the model reads them as a unit vector ([`crate::logistic`]).

use message::MessageView;
use std::cell::RefCell;

/// The version of the feature space: what each index of the model's weights stands for. It is stored
/// with the model, and a model learned in another version is neither judged with (the classifier
/// stays silent, `serve`, `scan` and `doctor` say why) nor learned into, until `portcullis learn
/// --reset` clears it and records this version.
///
/// **Bump it with any change that gives a message other features or other feature values**: in this
/// file, in [`crate::tokenize`] (tokens, namespaces, bounds, [`crate::tokenize::WINDOW`]), in
/// [`crate::hash`], or in how [`crate::logistic`] weighs the two blocks (`Tuning::ngram_share`). The
/// test `tests::the_feature_space_is_pinned` fails on such a change until its pin is updated; update
/// the pin and this number together. 0 is never a version: it stands for a model learned before
/// versions were recorded.
///
/// History: 1, tokens and 4-grams weighed as two blocks (0.6 and 0.4, `f0ca16c`).
pub const VERSION: u32 = 1;

/// Bits of a feature index: the model holds `2^BITS` weights.
pub const BITS: u32 = 20;
/// Weights in the model (index 0 is the bias).
pub const DIM: usize = 1 << BITS;
/// Bytes of the body as sent read for 4-grams (tuned on training mail: 12,000 missed less spam than
/// 3,000 or 6,000 learning older mail and checking newer).
pub const NGRAM_BYTES: usize = 12_000;

/// Which features are taken (fixed in code; the knobs are for tuning on training mail).
#[derive(Debug, Clone, Copy)]
pub struct FeatureTuning {
    /// Take the tokens of [`crate::tokenize`].
    pub tokens: bool,
    /// Bytes read for 4-grams (0: none).
    pub ngram_bytes: usize,
    /// Read 4-grams from the start of the raw message (header included); false: from the body.
    pub ngrams_from_header: bool,
}

impl Default for FeatureTuning {
    fn default() -> Self {
        FeatureTuning { tokens: true, ngram_bytes: NGRAM_BYTES, ngrams_from_header: false }
    }
}

/// The distinct feature indices of `view`, sorted (as learning stores them): at most
/// `max_tokens + NGRAM_BYTES`.
pub fn extract(view: &MessageView, max_tokens: usize) -> Vec<u32> {
    extract_with(view, max_tokens, &FeatureTuning::default())
}

/// [`extract`] with other feature choices (for tuning on training mail).
pub fn extract_with(view: &MessageView, max_tokens: usize, t: &FeatureTuning) -> Vec<u32> {
    let mut out = all(view, max_tokens, t);
    sort_distinct(&mut out);
    out
}

/// The same features as [`extract`] in no particular order: what a verdict needs (the score is a
/// sum), at a fraction of the cost of sorting.
pub fn extract_unordered(view: &MessageView, max_tokens: usize) -> Vec<u32> {
    let mut out = all(view, max_tokens, &FeatureTuning::default());
    distinct(&mut out);
    out
}

/// Every feature index of `view`, repeats included.
fn all(view: &MessageView, max_tokens: usize, t: &FeatureTuning) -> Vec<u32> {
    let mut out = Vec::with_capacity(max_tokens.min(4096) + t.ngram_bytes);
    if t.tokens {
        out.extend(crate::tokenize::tokenize(view, max_tokens).iter().map(|&k| index(k)));
    }
    let text = if t.ngrams_from_header { &view.raw_head[..] } else { body_start(&view.raw_head) };
    ngrams(&text[..text.len().min(t.ngram_bytes.min(NGRAM_BYTES * 2))], &mut out);
    out
}

thread_local! {
    /// One bit per index, all clear between calls: [`distinct`]'s memory (128 KiB per thread that
    /// judges messages), kept so a verdict neither allocates nor clears it whole.
    static SEEN: RefCell<Vec<u64>> = RefCell::new(vec![0; DIM / 64]);
}

/// Drop repeated indices (below [`DIM`]), keeping the first of each in place.
fn distinct(v: &mut Vec<u32>) {
    SEEN.with_borrow_mut(|seen| {
        v.retain(|&x| {
            let (word, bit) = ((x >> 6) as usize, 1u64 << (x & 63));
            let new = seen[word] & bit == 0;
            seen[word] |= bit;
            new
        });
        for &x in v.iter() {
            seen[(x >> 6) as usize] = 0;
        }
    });
}

/// Sort and deduplicate indices below [`DIM`]: a two-pass radix sort (10 bits a pass), several times
/// faster than a comparison sort on the few thousand indices of a message.
fn sort_distinct(v: &mut Vec<u32>) {
    const RADIX: u32 = BITS / 2;
    const _: () = assert!(BITS == 2 * RADIX);
    let mask = (1u32 << RADIX) - 1;
    let mut other = vec![0u32; v.len()];
    for shift in [0, RADIX] {
        let mut at = [0usize; 1 << RADIX];
        for &x in v.iter() {
            at[((x >> shift) & mask) as usize] += 1;
        }
        let mut sum = 0;
        for slot in at.iter_mut() {
            (*slot, sum) = (sum, sum + *slot);
        }
        for &x in v.iter() {
            let b = ((x >> shift) & mask) as usize;
            other[at[b]] = x;
            at[b] += 1;
        }
        std::mem::swap(v, &mut other);
    }
    v.dedup();
}

/// The index of a 64-bit token key (keys are well mixed: their top bits are as good as any), in the
/// lower half of the index space.
fn index(key: u64) -> u32 {
    let i = (key >> (64 - BITS + 1)) as u32;
    i.max(1)
}

/// Whether index `i` is a 4-gram's (the upper half of the index space) rather than a token's.
pub fn is_ngram(i: u32) -> bool {
    i >= NGRAM_BASE
}

/// The first 4-gram index.
pub(crate) const NGRAM_BASE: u32 = 1 << (BITS - 1);

/// The body as sent: what follows the first empty line of the raw message (all of it when none).
fn body_start(raw: &[u8]) -> &[u8] {
    let mut at = 0;
    while let Some(nl) = memchr(b'\n', &raw[at..]) {
        let line_end = at + nl;
        let line = &raw[at..line_end];
        if line.is_empty() || line == b"\r" {
            return &raw[line_end + 1..];
        }
        at = line_end + 1;
    }
    raw
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Hashed 4-grams of `body`, letters folded, white space runs as one space.
fn ngrams(body: &[u8], out: &mut Vec<u32>) {
    let mut window: u32 = 0;
    let mut filled = 0;
    let mut last_space = true;
    for &b in body {
        let c = FOLDED[usize::from(b)];
        if c == b' ' {
            if last_space {
                continue;
            }
            last_space = true;
        } else {
            last_space = false;
        }
        window = (window << 8) | u32::from(c);
        filled += 1;
        if filled >= 4 {
            // A multiplicative hash into the top bits, kept apart from token indices by its seed.
            let h = (u64::from(window) ^ 0x5bd1_e995_0000_0000).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            out.push(NGRAM_BASE | (h >> (64 - BITS + 1)) as u32);
        }
    }
}

/// Each byte as a 4-gram reads it: ASCII white space as a space, ASCII letters lower-case, the rest as
/// it is (one load per byte of body, where the tests it stands for take several comparisons).
const FOLDED: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_whitespace() { b' ' } else { c.to_ascii_lowercase() };
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(raw: &str) -> Vec<u32> {
        extract(&message::parse(raw.as_bytes(), &message::MessageLimits::default()), 6000)
    }

    #[test]
    fn features_are_sorted_distinct_bounded_and_never_the_bias() {
        let f = feats("Subject: hello\r\n\r\n<b>Hello</b>   hello hello world\r\n");
        assert!(f.windows(2).all(|w| w[0] < w[1]));
        assert!(!f.contains(&0));
        assert!(f.iter().all(|&i| (i as usize) < DIM));
        let long = format!("Subject: x\n\n{}\n", "lorem ipsum dolor sit amet ".repeat(10_000));
        let n = feats(&long).len();
        assert!(n <= 6000 + NGRAM_BYTES, "{n}");
    }

    #[test]
    fn unordered_features_are_the_same_set() {
        let raw = "Subject: hello world\r\n\r\n<b>Hello</b> hello world, see http://x.example/a\r\n";
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let sorted = extract(&view, 6000);
        for _ in 0..2 {
            // twice: the bit set must be clear again after each call
            let mut unordered = extract_unordered(&view, 6000);
            assert_eq!(unordered.len(), sorted.len());
            unordered.sort_unstable();
            assert_eq!(unordered, sorted);
        }
    }

    #[test]
    fn radix_sort_sorts_and_dedups() {
        let mut v: Vec<u32> = (0..5000u32).map(|i| i.wrapping_mul(2_654_435_761) % DIM as u32).collect();
        v.extend_from_slice(&[0, DIM as u32 - 1, 7, 7]);
        let mut want = v.clone();
        want.sort_unstable();
        want.dedup();
        sort_distinct(&mut v);
        assert_eq!(v, want);
    }

    /// A message with every kind of token (header fields, sender, relays, subject, body words and
    /// pairs, HTML, URLs, an attachment) and body 4-grams.
    const PINNED_MESSAGE: &str = "Received: from relay.example (relay.example [192.0.2.1]) by mx.our.test\r\n\
        From: \"Prize Desk\" <desk@prizes.example>\r\nReply-To: claims@elsewhere.example\r\n\
        Return-Path: <bounce@prizes.example>\r\nMessage-ID: <1@prizes.example>\r\nX-Mailer: Mass Mailer 2\r\n\
        List-Id: <offers.prizes.example>\r\nSubject: You have WON a prize\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        Claim your winnings now at http://claims.prizes.example/now?id=7 before Friday.\r\n--b\r\n\
        Content-Type: text/html\r\n\r\n<p>Claim <b>now</b> <a href=\"https://bit.example/x\">here</a></p>\r\n--b\r\n\
        Content-Type: application/zip; name=prize.zip\r\nContent-Disposition: attachment; filename=prize.zip\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nUEsDBAo=\r\n--b--\r\n";

    /// What [`VERSION`] stands for, as a hash of the features of [`PINNED_MESSAGE`] and of the block
    /// weighting: a change here means the feature space changed. Bump [`VERSION`], then set the pin
    /// to the value this test prints.
    #[test]
    fn the_feature_space_is_pinned() {
        const PIN: (u32, &str) = (1, "ce5417c31e0dec8a");
        let f = feats(PINNED_MESSAGE);
        let mut h = blake3::Hasher::new();
        for i in &f {
            h.update(&i.to_le_bytes());
        }
        h.update(&crate::logistic::Tuning::default().ngram_share.to_bits().to_le_bytes());
        let hash = h.finalize().to_hex()[..16].to_string();
        assert!(f.iter().any(|&i| is_ngram(i)) && f.iter().filter(|&&i| !is_ngram(i)).count() > 50, "{f:?}");
        assert_eq!(
            (VERSION, hash.as_str()),
            PIN,
            "the features changed: bump features::VERSION (stored models of the old version are then \
             refused until `portcullis learn --reset`) and set PIN to ({}, \"{hash}\")",
            VERSION + u32::from(hash != PIN.1)
        );
    }

    #[test]
    fn ngrams_fold_case_and_white_space() {
        let a = feats("Subject: a\n\nFREE   money\n");
        let b = feats("Subject: a\r\n\r\nfree money\r\n");
        assert_eq!(a, b);
        assert_eq!(body_start(b"A: b\r\n\r\nbody"), b"body");
        assert_eq!(body_start(b"no header end"), b"no header end");
    }
}
