//! The in-memory token table: open addressing with linear probing, a slot's home taken from the
//! key's top bits. Keys are well-mixed hashes, so the top bits spread them evenly; and because
//! [`crate::tokenize`] hands keys over sorted, the lookups for one message walk the table from front
//! to back instead of jumping around it, which is most of what a lookup costs in a table of a
//! million tokens.

use crate::model::Counts;

/// A map from token key to counts. Entries are never removed: a token whose counts fall to zero
/// stays as zeros (it carries no evidence), and the store drops it. Fill a large table in key order
/// only after sizing it ([`TokenTable::with_capacity`]): keys in order all have their homes at the
/// front of a table too small for the rest.
#[derive(Default)]
pub(crate) struct TokenTable {
    /// `(key, counts)`; key 0 marks an empty slot (the zero key itself lives in `zero`).
    slots: Vec<(u64, Counts)>,
    zero: Option<Counts>,
    len: usize,
}

impl TokenTable {
    pub fn with_capacity(n: usize) -> TokenTable {
        let slots = (n.max(8) * 2).next_power_of_two();
        TokenTable { slots: vec![(0, Counts::default()); slots], zero: None, len: 0 }
    }

    fn home(&self, key: u64) -> usize {
        // slots.len() is a power of two of at least 16: shift by the number of bits not used.
        (key >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    pub fn get(&self, key: u64) -> Option<Counts> {
        if key == 0 {
            return self.zero;
        }
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let (k, c) = self.slots[i];
            if k == key {
                return Some(c);
            }
            if k == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// The counts of `key`, inserted as zeros if absent.
    pub fn entry(&mut self, key: u64) -> &mut Counts {
        if key == 0 {
            if self.zero.is_none() {
                self.len += 1;
            }
            return self.zero.get_or_insert_default();
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        while self.slots[i].0 != key && self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        if self.slots[i].0 == 0 {
            self.slots[i].0 = key;
            self.len += 1;
        }
        &mut self.slots[i].1
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut bigger = TokenTable::with_capacity(old.len().max(8));
        bigger.zero = self.zero;
        bigger.len = usize::from(self.zero.is_some());
        for (k, c) in old.into_iter().filter(|(k, _)| *k != 0) {
            *bigger.entry(k) = c;
        }
        *self = bigger;
    }

    /// Every entry, the zero key included.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Counts)> + '_ {
        self.zero.map(|c| (0, c)).into_iter().chain(self.slots.iter().copied().filter(|(k, _)| *k != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_finds_grows_and_keeps_the_zero_key() {
        let mut t = TokenTable::default();
        assert_eq!(t.get(5), None);
        let keys: Vec<u64> = (0..10_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        for (n, &k) in keys.iter().enumerate() {
            t.entry(k).spam = n as u32 + 1;
        }
        assert_eq!(t.len, keys.len());
        for (n, &k) in keys.iter().enumerate() {
            assert_eq!(t.get(k).map(|c| c.spam), Some(n as u32 + 1), "key {k:#x}");
        }
        assert_eq!(t.get(0).map(|c| c.spam), Some(1), "key 0 is the first one");
        assert_eq!(t.get(12345), None);
        t.entry(keys[3]).ham += 2;
        assert_eq!(t.get(keys[3]), Some(Counts { spam: 4, ham: 2 }));
        assert_eq!(t.iter().count(), keys.len());
        // Colliding homes: keys that share their top bits probe past each other.
        let mut c = TokenTable::with_capacity(4);
        for k in [1u64, 2, 3, 4, 5] {
            c.entry(k).ham = k as u32;
        }
        assert!([1u64, 2, 3, 4, 5].iter().all(|&k| c.get(k).map(|x| x.ham) == Some(k as u32)));
    }
}
