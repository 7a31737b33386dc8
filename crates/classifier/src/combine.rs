//! Combining token evidence into one spam probability: Robinson's per-token estimate, then Fisher's
//! chi-square combining (as bogofilter and SpamAssassin do).
//!
//! Per token, from `s` spam and `h` ham counts out of `S` spam and `H` ham messages learned:
//! `p = (s/S) / (s/S + h/H)`, pulled toward [`Tuning::unknown`] by Robinson's strength `x`:
//! `f = (x * unknown + n * p) / (x + n)`. The number of observations `n` is counted half-way to
//! what it would be if both classes had as many messages learned ([`Tuning::balance`]): operators
//! learn far more ham than spam, and raw counts make every spam token weaker evidence than a ham
//! token merely for that, while full balancing makes one spam's rare words too strong (newsletters
//! then look like spam). Word pairs get a larger `x` than words ([`Tuning::pair_strength`]). Tokens with
//! `|f - 0.5|` below [`Tuning::min_deviation`] say too little and are left out; of the rest, the
//! [`Tuning::max_significant`] furthest from 0.5 are combined:
//! `H = Q(-2 Σ ln f, 2k)`, `S = Q(-2 Σ ln (1-f), 2k)`, spam probability `(1 + H - S) / 2`, where `Q`
//! is the chi-square survival function. Chi-square combining is deliberately decisive: most messages
//! land near 0 or 1, and the middle means the evidence disagrees.
//!
//! The constants were tuned on training mail only (an older/newer split of the benchmark's
//! training set, see `bench/`), never on the messages the benchmark tests with.

/// The constants of the combining (fixed in code, tuned on training mail only).
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Robinson's `x`: the probability assumed for a token never seen.
    pub unknown: f64,
    /// Robinson's `s`: how many observations the prior is worth, for single tokens.
    pub strength: f64,
    /// Robinson's `s` for word pairs: pairs are many and correlated with their words, so each
    /// needs more observations before it counts as much.
    pub pair_strength: f64,
    /// Tokens closer than this to 0.5 are ignored.
    pub min_deviation: f64,
    /// At most this many tokens are combined (the most significant).
    pub max_significant: usize,
    /// Per-token probabilities are kept within `[clamp, 1 - clamp]`.
    pub clamp: f64,
    /// How far token counts are scaled as if both classes had as many messages learned (0: raw
    /// counts, 1: fully balanced), so the smaller class's tokens are not weaker evidence merely for
    /// being from fewer messages.
    pub balance: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            unknown: 0.5,
            strength: 1.0,
            pair_strength: 10.0,
            min_deviation: 0.1,
            max_significant: 5000,
            clamp: 1e-4,
            balance: 0.5,
        }
    }
}

/// One token's estimate from its counts and the totals. `None` for a token never learned.
pub fn token_probability(
    spam: u32,
    ham: u32,
    total_spam: u64,
    total_ham: u64,
    strength: f64,
    t: &Tuning,
) -> Option<f64> {
    let mut n = f64::from(spam) + f64::from(ham);
    if n == 0.0 {
        return None;
    }
    let bad = f64::from(spam) / (total_spam.max(1) as f64);
    let good = f64::from(ham) / (total_ham.max(1) as f64);
    let p = bad / (bad + good);
    if t.balance > 0.0 {
        let big = total_spam.max(total_ham).max(1) as f64;
        n = (bad + good) * big * t.balance + n * (1.0 - t.balance);
    }
    let f = (strength * t.unknown + n * p) / (strength + n);
    Some(f.clamp(t.clamp, 1.0 - t.clamp))
}

/// The spam probability from the per-token estimates `fs` (reordered in place), and how many
/// tokens were combined. `None` when no token is significant.
pub fn combine(fs: &mut Vec<f64>, t: &Tuning) -> Option<(f64, usize)> {
    fs.retain(|f| (f - 0.5).abs() >= t.min_deviation);
    if fs.is_empty() {
        return None;
    }
    if fs.len() > t.max_significant {
        let k = t.max_significant;
        fs.select_nth_unstable_by(k - 1, |a, b| (b - 0.5).abs().total_cmp(&(a - 0.5).abs()));
        fs.truncate(k);
    }
    let (mut ln_f, mut ln_1f) = (0.0, 0.0);
    for &f in fs.iter() {
        ln_f += f.ln();
        ln_1f += (1.0 - f).ln();
    }
    let dof = fs.len();
    let h = chi2_survival(-2.0 * ln_f, dof);
    let s = chi2_survival(-2.0 * ln_1f, dof);
    Some(((1.0 + h - s) / 2.0, dof))
}

/// `Q(chi, 2k)`: the probability that a chi-square variable with `2k` degrees of freedom is at least
/// `chi`. For even degrees of freedom this is a Poisson tail, `e^-m Σ_{i<k} m^i / i!` with
/// `m = chi / 2`. Summed directly while `e^-m` is representable (each term is a Poisson
/// probability, so nothing overflows), and in log space beyond, so that hundreds of tokens neither
/// underflow nor overflow.
pub fn chi2_survival(chi: f64, k: usize) -> f64 {
    let m = chi / 2.0;
    if m <= 0.0 {
        return 1.0;
    }
    if m < 700.0 {
        let (mut term, mut sum) = ((-m).exp(), 0.0);
        sum += term;
        for i in 1..k {
            term *= m / i as f64;
            sum += term;
            if i as f64 > m && term < sum * 1e-17 {
                break;
            }
        }
        return sum.min(1.0);
    }
    let ln_m = m.ln();
    let mut ln_term = -m;
    let mut ln_sum = ln_term;
    for i in 1..k {
        ln_term += ln_m - (i as f64).ln();
        ln_sum = log_add(ln_sum, ln_term);
        // Terms fall once i passes m; stop when they no longer move the sum.
        if i as f64 > m && ln_term < ln_sum - 40.0 {
            break;
        }
    }
    ln_sum.exp().min(1.0)
}

fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_survival_matches_known_values() {
        // Q(x, 2) = e^(-x/2); Q(x, 4) = e^(-x/2)(1 + x/2).
        assert!((chi2_survival(3.0, 1) - (-1.5f64).exp()).abs() < 1e-12);
        assert!((chi2_survival(3.0, 2) - (-1.5f64).exp() * 2.5).abs() < 1e-12);
        assert_eq!(chi2_survival(0.0, 5), 1.0);
        // Far past where e^-m underflows, the tail is still right: Q(2k, 2k) is close to 1/2.
        let mid = chi2_survival(2000.0, 1000);
        assert!((0.49..0.51).contains(&mid), "{mid}");
        assert!(chi2_survival(20_000.0, 1000) < 1e-100);
        // The direct sum and the log-space sum agree where they meet.
        let (below, above) = (chi2_survival(1399.0, 700), chi2_survival(1401.0, 700));
        assert!((below - above).abs() < 0.05 && (0.4..0.6).contains(&below), "{below} {above}");
    }

    #[test]
    fn robinson_estimate_pulls_rare_tokens_toward_the_prior() {
        let t = Tuning::default();
        let once = token_probability(1, 0, 100, 100, t.strength, &t).unwrap();
        let often = token_probability(50, 0, 100, 100, t.strength, &t).unwrap();
        assert!(once > 0.5 && once < often, "{once} {often}");
        assert!((token_probability(10, 10, 100, 100, t.strength, &t).unwrap() - 0.5).abs() < 1e-9);
        // Totals differ: the same count is stronger evidence in the smaller class.
        assert!(token_probability(10, 10, 100, 1000, t.strength, &t).unwrap() > 0.8);
        assert_eq!(token_probability(0, 0, 100, 100, t.strength, &t), None);
    }

    #[test]
    fn fisher_combining_is_decisive_and_symmetric() {
        let t = Tuning::default();
        let (spam, n) = combine(&mut vec![0.99; 20], &t).unwrap();
        assert!(spam > 0.999 && n == 20, "{spam}");
        let (ham, _) = combine(&mut vec![0.01; 20], &t).unwrap();
        assert!(ham < 0.001, "{ham}");
        assert!((spam + ham - 1.0).abs() < 1e-9);
        let (torn, _) = combine(&mut [vec![0.99; 10], vec![0.01; 10]].concat(), &t).unwrap();
        assert!((torn - 0.5).abs() < 1e-9, "{torn}");
        assert_eq!(combine(&mut vec![0.5, 0.55], &t), None, "insignificant tokens say nothing");
        let few = Tuning { max_significant: 150, ..t };
        let (_, used) = combine(&mut vec![0.9; 500], &few).unwrap();
        assert_eq!(used, 150);
    }
}
