//! Token keys: stable 64-bit hashes of token text. The model's weights are indexed by the keys' top
//! bits, so this function is part of the stored format: changing it orphans every learned weight.

/// FNV-1a over `namespace`, a separator, then `text` with ASCII letters folded to lower case, then
/// finished with a strong mixer so the bits are usable as a hash-table key as they are.
pub fn key(namespace: u8, text: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in [namespace, 0xff].iter().chain(text) {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h) & !1
}

/// The key of a sparse word pair: `first` then `second`, `distance` words apart (1 = adjacent).
pub fn pair(first: u64, second: u64, distance: u64) -> u64 {
    mix(first ^ second.rotate_left(23) ^ distance.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_case_folded_and_namespaced() {
        // Pinned: a change here would orphan every stored count.
        assert_eq!(key(b'w', b"viagra"), key(b'w', b"VIAGRA"));
        assert_ne!(key(b'w', b"viagra"), key(b's', b"viagra"));
        assert_eq!(key(b'w', b"viagra"), 0x3666_80c5_2fb9_5ba4);
        assert_ne!(pair(1, 2, 1), pair(2, 1, 1));
        assert_ne!(pair(1, 2, 1), pair(1, 2, 2));
    }
}
