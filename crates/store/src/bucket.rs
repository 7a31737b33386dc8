//! The packed form of one bucket of token counts (see the migration): entries sorted by key, 16
//! bytes each: key u64, spam u32, ham u32, little-endian.

use crate::bayes::TokenCount;

const ENTRY: usize = 16;

/// Buckets are numbered by the top `BITS` bits of the token key. Fewer, larger buckets make bulk
/// learning cheap (a batch rewrites every bucket once, in as many statements as there are buckets);
/// more, smaller buckets make learning one message cheap (it rewrites about one bucket per token).
/// 4,096 buckets of a 1M-token store hold 4 KB each.
pub(crate) const BITS: u32 = 12;
pub(crate) const COUNT: i64 = 1 << BITS;

/// The bucket a token key belongs to.
pub(crate) fn of(token: u64) -> i64 {
    (token >> (64 - BITS)) as i64
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<TokenCount>, &'static str> {
    if !bytes.len().is_multiple_of(ENTRY) {
        return Err("length is not a multiple of 16");
    }
    let mut out = Vec::with_capacity(bytes.len() / ENTRY);
    for e in bytes.chunks_exact(ENTRY) {
        let (k, rest) = e.split_at(8);
        let (s, h) = rest.split_at(4);
        out.push(TokenCount {
            token: u64::from_le_bytes(k.try_into().expect("8 bytes")),
            spam: u32::from_le_bytes(s.try_into().expect("4 bytes")),
            ham: u32::from_le_bytes(h.try_into().expect("4 bytes")),
        });
    }
    if out.windows(2).any(|w| w[0].token >= w[1].token) {
        return Err("keys are not sorted and distinct");
    }
    Ok(out)
}

pub(crate) fn encode(tokens: &[TokenCount]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tokens.len() * ENTRY);
    for t in tokens {
        out.extend_from_slice(&t.token.to_le_bytes());
        out.extend_from_slice(&t.spam.to_le_bytes());
        out.extend_from_slice(&t.ham.to_le_bytes());
    }
    out
}

/// `current` with `changes` (sorted by key: key, spam delta, ham delta) applied. Counts never go
/// below zero (unlearning re-tokenizes the message, and a token the tokenizer of the time did not
/// produce has nothing to take back); tokens left with no counts are dropped.
pub(crate) fn merge(current: &[TokenCount], changes: &[(u64, i64, i64)]) -> Vec<TokenCount> {
    let apply = |count: u32, delta: i64| u32::try_from((i64::from(count) + delta).max(0)).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(current.len() + changes.len());
    let (mut i, mut j) = (0, 0);
    while i < current.len() || j < changes.len() {
        let next = match (current.get(i), changes.get(j)) {
            (Some(c), Some(&(k, s, h))) if c.token == k => {
                i += 1;
                j += 1;
                TokenCount { token: k, spam: apply(c.spam, s), ham: apply(c.ham, h) }
            }
            (Some(c), Some(&(k, _, _))) if c.token < k => {
                i += 1;
                *c
            }
            (Some(c), None) => {
                i += 1;
                *c
            }
            (_, Some(&(k, s, h))) => {
                j += 1;
                TokenCount { token: k, spam: apply(0, s), ham: apply(0, h) }
            }
            (None, None) => unreachable!("the loop condition"),
        };
        if next.spam > 0 || next.ham > 0 {
            out.push(next);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc(token: u64, spam: u32, ham: u32) -> TokenCount {
        TokenCount { token, spam, ham }
    }

    #[test]
    fn encode_decode_round_trip_and_corruption_is_caught() {
        let tokens = [tc(1, 2, 3), tc(u64::MAX, u32::MAX, 0)];
        assert_eq!(decode(&encode(&tokens)).unwrap(), tokens);
        assert!(decode(&[0; 15]).is_err());
        assert!(decode(&encode(&[tc(2, 1, 1), tc(1, 1, 1)])).is_err());
        assert_eq!(of(u64::MAX), COUNT - 1);
    }

    #[test]
    fn merge_adds_updates_clamps_and_drops_empty_tokens() {
        let current = [tc(10, 1, 0), tc(20, 0, 2), tc(30, 5, 5)];
        let changes = [(5, 1, 0), (10, -1, 0), (20, -1, 1), (40, 0, -3)];
        assert_eq!(merge(&current, &changes), [tc(5, 1, 0), tc(20, 0, 3), tc(30, 5, 5)]);
    }
}
