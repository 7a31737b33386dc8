//! Online logistic regression on hashed binary features (as in the TREC 2005-2007 spam tracks:
//! Goodman & Yih 2006, Sculley & Wachman 2007).
//!
//! A message is a set of feature indices ([`crate::features`]) read as a unit vector `x` of two
//! blocks, its tokens and its 4-grams: each present feature of a block of `n` weighs `sqrt(s/n)`,
//! where `s` is the block's share of the length ([`Tuning::ngram_share`]); its score is `b + w·x`, its spam probability `1 / (1 + e^-score)`.
//! Learning a message as class `y` (+1 spam, -1 ham) takes logistic-loss gradient steps
//! `w += rate * (t - p) * x` (`t` 1 for spam, 0 for ham) while the message is not yet on its side by
//! [`Tuning::margin`] ("thick threshold" training), at most [`Tuning::max_steps`] of them: a message
//! the model already gets right with room to spare changes nothing, one it gets wrong moves the
//! weights until it is right, and learning it as the other class later (a person correcting a
//! verdict) moves them until the score has crossed to the other side.

use crate::Class;

/// The constants of learning (fixed in code, tuned on training mail only).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Step size of one gradient step.
    pub rate: f32,
    /// Score a learned message must reach on its side (`y * score`) before learning stops.
    pub margin: f32,
    /// Most gradient steps for one message.
    pub max_steps: u32,
    /// Share of the message vector's squared length given to its 4-grams, the rest to its tokens
    /// (0: one block, every feature `1/sqrt(n)`). A message has several times more 4-grams than
    /// tokens, so in one block the 4-grams outvote the tokens by their number alone. Tuned on
    /// training mail (`examples/eval.rs`, `SHARE`): 0.4 missed less spam at 0.1% false positives than
    /// one block in every split tried, most of all when the checked mail's senders were never learned
    /// (`GROUP=sender`: 17.6% instead of 27.2%); 0.3 to 0.6 are close.
    pub ngram_share: f32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { rate: 1.0, margin: 4.0, max_steps: 8, ngram_share: 0.4 }
    }
}

/// The value of a present feature in each block: (tokens, 4-grams). A block a message lacks gives
/// its share to the other.
fn values(f: &[u32], t: &Tuning) -> (f32, f32) {
    if t.ngram_share <= 0.0 {
        let s = scale(f.len());
        return (s, s);
    }
    let n = f.iter().filter(|&&i| crate::features::is_ngram(i)).count();
    match (f.len() - n, n) {
        (_, 0) => (scale(f.len()), 0.0),
        (0, _) => (0.0, scale(n)),
        (tok, n) => ((1.0 - t.ngram_share).sqrt() * scale(tok), t.ngram_share.sqrt() * scale(n)),
    }
}

/// The weights: `DIM` of them, index 0 the bias.
#[derive(Clone)]
pub struct Weights {
    w: Vec<f32>,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { w: vec![0.0; crate::features::DIM] }
    }
}

impl Weights {
    /// Weights from a full vector (loading); `None` unless it has `DIM` entries.
    pub fn from_vec(w: Vec<f32>) -> Option<Weights> {
        (w.len() == crate::features::DIM).then_some(Weights { w })
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.w
    }

    /// Add `(index, delta)` changes (indices out of range are ignored).
    pub fn add(&mut self, changes: &[(u32, f32)]) {
        for &(i, d) in changes {
            if let Some(w) = self.w.get_mut(i as usize) {
                *w += d;
            }
        }
    }

    /// `b + w·x` for the features `f` (distinct, never 0, in any order).
    pub fn score(&self, f: &[u32], t: &Tuning) -> f32 {
        if f.is_empty() {
            return self.w[0];
        }
        let (a, b) = values(f, t);
        let (mut sa, mut sb) = (0.0f32, 0.0f32);
        for &i in f {
            if crate::features::is_ngram(i) { sb += self.w[i as usize] } else { sa += self.w[i as usize] }
        }
        self.w[0] + sa * a + sb * b
    }

    /// One logistic-loss gradient step toward `class`; the indices changed are `0` and `f`.
    pub fn step(&mut self, f: &[u32], class: Class, t: &Tuning) {
        let p = sigmoid(self.score(f, t));
        let g = t.rate * (target(class) - p as f32);
        self.w[0] += g * BIAS_RATE;
        let (a, b) = values(f, t);
        for &i in f {
            self.w[i as usize] += g * if crate::features::is_ngram(i) { b } else { a };
        }
    }

    /// Learn `f` as `class`: gradient steps while it is not on its side by the margin, at most
    /// `max_steps`. Returns how many steps were taken (0: nothing changed).
    pub fn learn(&mut self, f: &[u32], class: Class, t: &Tuning) -> u32 {
        let y = match class {
            Class::Spam => 1.0,
            Class::Ham => -1.0,
        };
        let mut steps = 0;
        while steps < t.max_steps && y * self.score(f, t) < t.margin {
            self.step(f, class, t);
            steps += 1;
        }
        steps
    }
}

/// Learn `examples` (features and class) `passes` times over, in a fixed shuffled order (so a run of
/// one class, such as a folder of spam, is mixed with the rest).
pub fn train(w: &mut Weights, examples: &[(&[u32], Class)], passes: usize, t: &Tuning) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for _ in 0..passes {
        for &i in &order {
            w.learn(examples[i].0, examples[i].1, t);
        }
    }
}

/// The bias moves slower than the features: it is shared by every message, and a run of one class
/// (a folder of spam learned at once) must not swing it.
const BIAS_RATE: f32 = 0.05;

fn scale(n: usize) -> f32 {
    1.0 / (n as f32).sqrt()
}

fn target(class: Class) -> f32 {
    match class {
        Class::Spam => 1.0,
        Class::Ham => 0.0,
    }
}

/// The logistic function.
pub fn sigmoid(score: f32) -> f64 {
    1.0 / (1.0 + (-f64::from(score)).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_stops_at_the_margin_and_relearning_crosses_over() {
        let mut w = Weights::default();
        let t = Tuning::default();
        let f = [3, 70, 900];
        let steps = w.learn(&f, Class::Spam, &t);
        assert!(steps > 0 && steps <= t.max_steps);
        assert!(w.score(&f, &t) > 0.0);
        let before = w.as_slice().to_vec();
        if w.score(&f, &t) >= t.margin {
            assert_eq!(w.learn(&f, Class::Spam, &t), 0, "already past the margin: nothing changes");
            assert_eq!(w.as_slice(), &before[..]);
        }
        w.learn(&f, Class::Ham, &t);
        assert!(w.score(&f, &t) < 0.0, "moved to the other side");
        assert!(sigmoid(w.score(&f, &t)) < 0.5);
    }

    #[test]
    fn blocks_share_the_length_and_a_missing_block_gives_its_share_away() {
        let t = Tuning::default();
        let ngram = crate::features::NGRAM_BASE;
        let (tok, ng) = values(&[1, 2, 3, 4, ngram + 1], &t);
        let length = 4.0 * tok * tok + ng * ng;
        assert!((length - 1.0).abs() < 1e-5 && (ng * ng - t.ngram_share).abs() < 1e-5);
        assert_eq!(values(&[1, 2, 3, 4], &t), (0.5, 0.0));
        assert_eq!(values(&[ngram + 1, ngram + 2, ngram + 3, ngram + 4], &t), (0.0, 0.5));
        assert_eq!(Weights::default().score(&[], &t), 0.0);
    }
}
