//! How one released aggregate is made differentially private: the lattice its contributions are
//! rounded to, and the discrete noise added on that lattice.
//!
//! This is OpenDP's construction for real-valued releases: each contribution is rounded to a
//! multiple of a power of two `unit` (about a millionth of the noise scale, far below anything
//! the noise lets through), sums are exact integers in that unit, and the noise is an exact
//! integer draw ([`super::noise`]). The rounding can move one contribution by half a unit, which
//! the sensitivity includes; the release is `(sum + noise) · unit`, a post-processing of an
//! integer release, so converting it to f64 costs no privacy.

use super::noise::{NoiseSource, scale_over_epsilon};

/// The smallest and largest epsilon accepted: beyond them the noise is either everything or
/// nothing, and the exact samplers' integers would outgrow 128 bits.
pub const EPSILON_RANGE: (f64, f64) = (1e-6, 1e6);

/// How many lattice steps the noise scale spans: 2^20, so rounding is invisible under the noise.
const STEPS_PER_SCALE: i32 = 20;

/// The noise of one release, on its lattice.
#[derive(Debug, Clone, PartialEq)]
enum Noise {
    /// Nothing to hide: every contribution is 0.
    None,
    /// Discrete Laplace with scale `numerator / denominator` units.
    Laplace { numerator: u128, denominator: u128 },
    /// Discrete Gaussian with parameter `sigma` units.
    Gaussian { sigma: u128 },
}

/// The lattice and noise of one released number (or of each coordinate of a released vector).
#[derive(Debug, Clone, PartialEq)]
pub struct Mechanism {
    /// The lattice step is 2^exponent.
    exponent: i32,
    noise: Noise,
}

impl Mechanism {
    /// A count where each privacy unit adds at most 1: discrete Laplace with scale 1/ε on the
    /// integers.
    pub fn count(epsilon: f64) -> Option<Self> {
        let (numerator, denominator) = scale_over_epsilon(1, epsilon)?;
        Some(Self {
            exponent: 0,
            noise: Noise::Laplace { numerator, denominator },
        })
    }

    /// A sum where each privacy unit adds a number of magnitude at most `bound`: discrete
    /// Laplace with scale `bound / ε`.
    pub fn laplace_sum(bound: f64, epsilon: f64) -> Option<Self> {
        if bound == 0.0 {
            return Some(Self {
                exponent: 0,
                noise: Noise::None,
            });
        }
        let exponent = lattice_exponent(bound / epsilon);
        // |round(x / unit)| ≤ round(bound / unit) for |x| ≤ bound.
        let units = (bound * 2f64.powi(-exponent)).round().max(1.0) as u128;
        let (numerator, denominator) = scale_over_epsilon(units, epsilon)?;
        Some(Self {
            exponent,
            noise: Noise::Laplace { numerator, denominator },
        })
    }

    /// A vector sum where each privacy unit adds a vector of L2 norm at most `norm_bound`:
    /// discrete Gaussian noise on each coordinate, with the smallest σ that is (ε, δ)-DP by the
    /// analytic Gaussian mechanism (Balle & Wang, ICML 2018).
    pub fn gaussian_sum(norm_bound: f64, dim: usize, epsilon: f64, delta: f64) -> Option<Self> {
        if norm_bound == 0.0 {
            return Some(Self {
                exponent: 0,
                noise: Noise::None,
            });
        }
        let exponent = lattice_exponent(analytic_gaussian_sigma(norm_bound, epsilon, delta));
        // Rounding each coordinate moves a vector by at most √dim / 2 units.
        let units = norm_bound * 2f64.powi(-exponent) + (dim as f64).sqrt() / 2.0;
        let sigma = analytic_gaussian_sigma(units, epsilon, delta).ceil();
        (sigma.is_finite() && sigma < 2f64.powi(60)).then_some(Self {
            exponent,
            noise: Noise::Gaussian { sigma: sigma as u128 },
        })
    }

    /// The lattice step contributions are rounded to.
    pub fn unit(&self) -> f64 {
        2f64.powi(self.exponent)
    }

    /// A contribution in lattice units.
    pub fn to_units(&self, x: f64) -> i128 {
        (x * 2f64.powi(-self.exponent)).round() as i128
    }

    /// The private release of an exact sum of contributions in lattice units.
    pub fn release(&self, exact_units: i128, source: &mut NoiseSource) -> f64 {
        let noise = match self.noise {
            Noise::None => 0,
            Noise::Laplace { numerator, denominator } => source.discrete_laplace(numerator, denominator),
            Noise::Gaussian { sigma } => source.discrete_gaussian(sigma),
        };
        exact_units.saturating_add(noise) as f64 * self.unit()
    }

    /// The standard deviation of the noise this mechanism adds, in the released value's units.
    pub fn noise_std(&self) -> f64 {
        let std_units = match self.noise {
            Noise::None => 0.0,
            Noise::Laplace { numerator, denominator } => {
                // Var = 2p / (1 − p)², p = exp(−1/scale).
                let p = (-(denominator as f64) / numerator as f64).exp();
                (2.0 * p).sqrt() / (1.0 - p)
            }
            Noise::Gaussian { sigma } => sigma as f64,
        };
        std_units * self.unit()
    }
}

/// The lattice exponent for noise of the given scale: 2^20 steps per scale.
fn lattice_exponent(scale: f64) -> i32 {
    scale.log2().floor() as i32 - STEPS_PER_SCALE
}

/// ln Φ(x), the log of the standard normal CDF, accurate far into the lower tail.
fn ln_normal_cdf(x: f64) -> f64 {
    if x > -30.0 {
        (0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)).ln()
    } else {
        let x2 = x * x;
        -x2 / 2.0 - (-x).ln() - 0.5 * (2.0 * std::f64::consts::PI).ln() + (1.0 - 1.0 / x2 + 3.0 / (x2 * x2)).ln()
    }
}

/// The δ of the Gaussian mechanism with noise σ and L2 sensitivity Δ at a given ε (Balle &
/// Wang, theorem 8): Φ(Δ/2σ − εσ/Δ) − e^ε Φ(−Δ/2σ − εσ/Δ).
fn gaussian_delta(sensitivity: f64, sigma: f64, epsilon: f64) -> f64 {
    let a = sensitivity / (2.0 * sigma);
    let b = epsilon * sigma / sensitivity;
    ln_normal_cdf(a - b).exp() - (epsilon + ln_normal_cdf(-a - b)).exp()
}

/// The smallest σ for which the Gaussian mechanism with L2 sensitivity Δ is (ε, δ)-DP.
pub fn analytic_gaussian_sigma(sensitivity: f64, epsilon: f64, delta: f64) -> f64 {
    let mut high = sensitivity / epsilon;
    while gaussian_delta(sensitivity, high, epsilon) > delta {
        high *= 2.0;
    }
    let mut low = high / 2.0;
    while low > 0.0 && gaussian_delta(sensitivity, low, epsilon) <= delta {
        high = low;
        low /= 2.0;
    }
    for _ in 0..100 {
        let middle = (low + high) / 2.0;
        if gaussian_delta(sensitivity, middle, epsilon) <= delta {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_analytic_gaussian_is_tighter_than_the_classic_bound() {
        // The classic σ = Δ √(2 ln(1.25/δ)) / ε is (ε, δ)-DP for ε < 1; the analytic one is
        // smaller and still meets δ.
        for epsilon in [0.1, 0.5, 0.9] {
            let classic = (2.0 * (1.25f64 / 1e-5).ln()).sqrt() / epsilon;
            let sigma = analytic_gaussian_sigma(1.0, epsilon, 1e-5);
            assert!(sigma < classic, "ε {epsilon}: {sigma} vs {classic}");
            assert!(sigma > 0.5 * classic, "ε {epsilon}: {sigma} vs {classic}");
            assert!(gaussian_delta(1.0, sigma, epsilon) <= 1e-5);
            assert!(gaussian_delta(1.0, sigma * 0.99, epsilon) > 1e-5);
        }
        // It scales with the sensitivity and stays finite for large ε.
        let one = analytic_gaussian_sigma(1.0, 2.0, 1e-6);
        assert!((analytic_gaussian_sigma(8.0, 2.0, 1e-6) / one - 8.0).abs() < 1e-9);
        assert!(analytic_gaussian_sigma(1.0, 1e4, 1e-6).is_finite());
    }

    #[test]
    fn a_sum_s_noise_is_bound_over_epsilon() {
        let mechanism = Mechanism::laplace_sum(10.0, 0.5).unwrap();
        let expected = std::f64::consts::SQRT_2 * 10.0 / 0.5;
        assert!((mechanism.noise_std() / expected - 1.0).abs() < 1e-5);
        // Contributions round to about a millionth of the scale.
        assert!(mechanism.unit() <= 20.0 / 1e6);
        assert_eq!(Mechanism::laplace_sum(0.0, 1.0).unwrap().noise_std(), 0.0);
    }

    #[test]
    fn releases_come_back_on_the_lattice() {
        let mechanism = Mechanism::laplace_sum(1.0, 1.0).unwrap();
        let mut source = NoiseSource::seeded(1);
        let exact = mechanism.to_units(123.456);
        let released = mechanism.release(exact, &mut source);
        assert_eq!(released / mechanism.unit(), (released / mechanism.unit()).round());
    }
}
