//! Exact samplers for the discrete Laplace and discrete Gaussian distributions (Canonne,
//! Kamath & Steinke, "The Discrete Gaussian for Differential Privacy", 2020, algorithms 1–3),
//! the samplers OpenDP uses.
//!
//! Every step is integer arithmetic on a uniform random source, so the output distribution is
//! exactly the one the privacy proof assumes: no floating-point `ln(u)` whose rounding leaks
//! the value it is added to (Mironov, CCS 2012). Randomness is ChaCha20, seeded from the
//! operating system, or from a caller's seed for reproducible tests.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A cryptographically secure source of the random bits the samplers consume.
pub struct NoiseSource {
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for NoiseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoiseSource")
    }
}

impl NoiseSource {
    /// Seeded by the operating system's random number generator.
    pub fn from_os() -> Self {
        Self {
            rng: ChaCha20Rng::from_os_rng(),
        }
    }

    /// Seeded deterministically (tests only: the same seed gives the same noise).
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    fn next_u128(&mut self) -> u128 {
        (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64())
    }

    /// Uniform on `0..n` (n > 0), by rejection so that no value is favoured.
    pub fn uniform_below(&mut self, n: u128) -> u128 {
        debug_assert!(n > 0);
        if n.is_power_of_two() {
            return self.next_u128() & (n - 1);
        }
        let mask = u128::MAX >> n.leading_zeros();
        loop {
            let candidate = self.next_u128() & mask;
            if candidate < n {
                return candidate;
            }
        }
    }

    /// True with probability `numerator / denominator` (numerator ≤ denominator).
    fn bernoulli(&mut self, numerator: u128, denominator: u128) -> bool {
        self.uniform_below(denominator) < numerator
    }

    /// True with probability exp(−numerator / denominator), for any non-negative ratio.
    fn bernoulli_exp_minus(&mut self, numerator: u128, denominator: u128) -> bool {
        let whole = numerator / denominator;
        for _ in 0..whole {
            if !self.bernoulli_exp_minus_at_most_one(1, 1) {
                return false;
            }
        }
        self.bernoulli_exp_minus_at_most_one(numerator % denominator, denominator)
    }

    /// exp(−γ) for γ = numerator / denominator in [0, 1]: the count of successive successes of
    /// Bernoulli(γ/k), k = 1, 2, …, is odd with probability exp(−γ).
    fn bernoulli_exp_minus_at_most_one(&mut self, numerator: u128, denominator: u128) -> bool {
        let mut k: u128 = 1;
        loop {
            // Bernoulli(γ/k) as Bernoulli(γ) and Bernoulli(1/k): no product to overflow.
            if !(self.bernoulli(numerator, denominator) && self.bernoulli(1, k)) {
                return k % 2 == 1;
            }
            k += 1;
        }
    }

    /// A draw from the discrete Laplace distribution on the integers with scale
    /// `numerator / denominator`: P(x) ∝ exp(−|x| · denominator / numerator).
    pub fn discrete_laplace(&mut self, numerator: u128, denominator: u128) -> i128 {
        debug_assert!(numerator > 0 && denominator > 0);
        loop {
            let u = self.uniform_below(numerator);
            if !self.bernoulli_exp_minus(u, numerator) {
                continue;
            }
            let mut v: u128 = 0;
            while self.bernoulli_exp_minus(1, 1) {
                v += 1;
            }
            let Some(x) = v.checked_mul(numerator).and_then(|tv| tv.checked_add(u)) else {
                continue;
            };
            let magnitude = x / denominator;
            let negative = self.rng.next_u32() & 1 == 1;
            if negative && magnitude == 0 {
                continue;
            }
            let magnitude = i128::try_from(magnitude).unwrap_or(i128::MAX);
            return if negative { -magnitude } else { magnitude };
        }
    }

    /// A draw from the discrete Gaussian distribution on the integers with parameter `sigma`
    /// (a positive integer): P(x) ∝ exp(−x² / 2σ²).
    pub fn discrete_gaussian(&mut self, sigma: u128) -> i128 {
        debug_assert!(sigma > 0);
        let t = sigma + 1;
        let sigma_squared = sigma * sigma;
        loop {
            let y = self.discrete_laplace(t, 1);
            // Accept with probability exp(−(|y| − σ²/t)² / 2σ²) = exp(−(|y|·t − σ²)² / (2σ²t²)).
            let Some(distance) = y.unsigned_abs().checked_mul(t).map(|yt| yt.abs_diff(sigma_squared)) else {
                continue;
            };
            let Some(numerator) = distance.checked_mul(distance) else {
                continue;
            };
            let Some(denominator) = sigma_squared.checked_mul(2).and_then(|d| d.checked_mul(t * t)) else {
                continue;
            };
            if self.bernoulli_exp_minus(numerator, denominator) {
                return y;
            }
        }
    }
}

/// A positive finite f64 as `mantissa · 2^exponent` with an odd mantissa: the exact rational
/// every float is, so a scale like 1/ε can be sampled exactly.
pub fn dyadic(x: f64) -> (u64, i32) {
    debug_assert!(x.is_finite() && x > 0.0);
    let bits = x.to_bits();
    let stored_exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut mantissa, mut exponent) = match stored_exponent {
        0 => (fraction, -1074),
        _ => (fraction | (1u64 << 52), stored_exponent - 1075),
    };
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += zeros as i32;
    (mantissa, exponent)
}

/// `units / epsilon` as an exact ratio of integers (numerator, denominator), or `None` when it
/// does not fit the samplers' 128-bit arithmetic (epsilon far outside any useful range).
pub fn scale_over_epsilon(units: u128, epsilon: f64) -> Option<(u128, u128)> {
    let (mantissa, exponent) = dyadic(epsilon);
    let (numerator, denominator) = if exponent < 0 {
        (
            units.checked_mul(1u128.checked_shl(exponent.unsigned_abs())?)?,
            u128::from(mantissa),
        )
    } else {
        (
            units,
            u128::from(mantissa).checked_mul(1u128.checked_shl(exponent as u32)?)?,
        )
    };
    // Keep room for the sampler's products.
    (numerator < 1 << 110 && denominator < 1 << 110).then_some((numerator, denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variance(draws: &[i128]) -> f64 {
        let n = draws.len() as f64;
        let mean = draws.iter().map(|x| *x as f64).sum::<f64>() / n;
        draws.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)
    }

    #[test]
    fn dyadic_is_exact() {
        for x in [1.0, 0.5, 0.1, 3.0, 1e-6, 1e6, 123.456] {
            let (m, e) = dyadic(x);
            assert_eq!(m % 2, 1, "{x}");
            assert_eq!(m as f64 * 2f64.powi(e), x);
        }
    }

    #[test]
    fn discrete_laplace_has_its_variance() {
        // Var = 2p / (1 − p)² with p = exp(−1/scale).
        let mut source = NoiseSource::seeded(7);
        for (numerator, denominator) in [(1u128, 1u128), (5, 2), (40, 1)] {
            let scale = numerator as f64 / denominator as f64;
            let draws: Vec<i128> = (0..20_000)
                .map(|_| source.discrete_laplace(numerator, denominator))
                .collect();
            let p = (-1.0 / scale).exp();
            let expected = 2.0 * p / (1.0 - p).powi(2);
            let ratio = variance(&draws) / expected;
            assert!((0.93..1.07).contains(&ratio), "scale {scale}: variance ratio {ratio}");
            let mean = draws.iter().sum::<i128>() as f64 / draws.len() as f64;
            assert!(mean.abs() < 0.05 * scale.max(1.0), "scale {scale}: mean {mean}");
        }
    }

    #[test]
    fn discrete_gaussian_has_its_variance() {
        let mut source = NoiseSource::seeded(11);
        for sigma in [1u128, 3, 50] {
            let draws: Vec<i128> = (0..20_000).map(|_| source.discrete_gaussian(sigma)).collect();
            // For σ ≥ 1 the discrete Gaussian's variance is σ² to within 1e-3 relative.
            let ratio = variance(&draws) / (sigma * sigma) as f64;
            assert!((0.94..1.06).contains(&ratio), "sigma {sigma}: variance ratio {ratio}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_noise() {
        let draw = |seed| {
            let mut source = NoiseSource::seeded(seed);
            (0..8).map(|_| source.discrete_laplace(10, 1)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }

    #[test]
    fn scales_of_useful_epsilons_fit() {
        for epsilon in [1e-6, 0.1, 1.0, 10.0, 1e6] {
            let (n, d) = scale_over_epsilon(1 << 21, epsilon).expect("fits");
            let scale = n as f64 / d as f64;
            assert!((scale / ((1 << 21) as f64 / epsilon) - 1.0).abs() < 1e-12);
        }
    }
}
