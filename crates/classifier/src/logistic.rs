//! Online logistic regression on hashed binary features (as in the TREC 2005-2007 spam tracks:
//! Goodman & Yih 2006, Sculley & Wachman 2007).
//!
//! A message is a set of feature indices ([`crate::features`]) read as a unit vector `x` (each
//! present feature `1/sqrt(n)`); its score is `b + w·x`, its spam probability `1 / (1 + e^-score)`.
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
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { rate: 1.0, margin: 4.0, max_steps: 8 }
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
    pub fn score(&self, f: &[u32]) -> f32 {
        if f.is_empty() {
            return self.w[0];
        }
        let sum: f32 = f.iter().map(|&i| self.w[i as usize]).sum();
        self.w[0] + sum * scale(f.len())
    }

    /// One logistic-loss gradient step toward `class`; the indices changed are `0` and `f`.
    pub fn step(&mut self, f: &[u32], class: Class, rate: f32) {
        let p = sigmoid(self.score(f));
        let g = rate * (target(class) - p as f32);
        self.w[0] += g * BIAS_RATE;
        let g = g * scale(f.len());
        for &i in f {
            self.w[i as usize] += g;
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
        while steps < t.max_steps && y * self.score(f) < t.margin {
            self.step(f, class, t.rate);
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
        assert!(w.score(&f) > 0.0);
        let before = w.as_slice().to_vec();
        if w.score(&f) >= t.margin {
            assert_eq!(w.learn(&f, Class::Spam, &t), 0, "already past the margin: nothing changes");
            assert_eq!(w.as_slice(), &before[..]);
        }
        w.learn(&f, Class::Ham, &t);
        assert!(w.score(&f) < 0.0, "moved to the other side");
        assert!(sigmoid(w.score(&f)) < 0.5);
    }
}
