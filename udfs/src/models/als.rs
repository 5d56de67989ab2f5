//! Implicit-feedback matrix factorisation (iALS, Hu, Koren & Volinsky 2008), solved the way the
//! `implicit` library does: alternating least squares where each user's (item's) vector takes a
//! few conjugate-gradient steps from its previous value per sweep, confidence `alpha·weight` on
//! observed pairs (preference 1) and 1 elsewhere (preference 0), L2 regularisation — the same
//! model `implicit` fits. Rows solve in parallel.

use rayon::prelude::*;

use crate::table_function::interactions::{Csr, Interactions};

/// Training settings.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AlsConfig {
    pub factors: usize,
    pub iterations: usize,
    pub regularization: f32,
    pub alpha: f32,
    pub seed: u64,
}

/// Conjugate-gradient steps per row and sweep (`implicit`'s default).
const CG_STEPS: usize = 3;

/// Trained factors, row-major: `users × factors` and `items × factors`.
#[derive(Debug)]
pub struct AlsModel {
    pub user_factors: Vec<f32>,
    pub item_factors: Vec<f32>,
    /// The weighted squared error plus regularisation after the last sweep, per unit of
    /// confidence (as `implicit` reports it).
    pub loss: f32,
}

/// Deterministic uniform numbers in [0, 1) from a seed (SplitMix64).
#[derive(Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    pub(crate) fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(Self::GAMMA);
        Self::mix(self.0)
    }

    /// The `n`-th draw from now (`n ≥ 1`) without drawing it: a draw depends only on its
    /// position, so many can be made in parallel.
    #[inline(always)]
    pub(crate) fn peek(&self, n: u64) -> f32 {
        Self::mix(self.0.wrapping_add(n.wrapping_mul(Self::GAMMA)))
    }

    /// Moves past the next `n` draws.
    pub(crate) fn skip(&mut self, n: u64) {
        self.0 = self.0.wrapping_add(n.wrapping_mul(Self::GAMMA));
    }

    #[inline(always)]
    fn mix(state: u64) -> f32 {
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::vector::kernels::dot(a, b)
}

/// `YᵀY + λI` for the rows of `y`.
fn gram(y: &[f32], factors: usize, regularization: f32) -> Vec<f32> {
    let rows = y.len() / factors;
    let mut result = vec![0.0f32; factors * factors];
    if rows > 0 {
        // SAFETY: result is factors × factors; Yᵀ is read from y (rows × factors) with row
        // stride 1 and column stride `factors`; y itself with strides (factors, 1).
        unsafe {
            gemm::gemm(
                factors,
                factors,
                rows,
                result.as_mut_ptr(),
                1,
                factors as isize,
                false,
                y.as_ptr(),
                factors as isize,
                1,
                y.as_ptr(),
                1,
                factors as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            );
        }
    }
    for d in 0..factors {
        result[d * factors + d] += regularization;
    }
    result
}

fn times(matrix: &[f32], v: &[f32], out: &mut [f32]) {
    let n = v.len();
    for (row, o) in out.iter_mut().enumerate() {
        *o = dot(&matrix[row * n..(row + 1) * n], v);
    }
}

/// One sweep: updates every row of `x` against the fixed `y`, where `pairs` holds each
/// row's observed columns with their weights.
fn sweep(x: &mut [f32], y: &[f32], pairs: &Csr, config: &AlsConfig) {
    let f = config.factors;
    let yty = gram(y, f, config.regularization);
    x.par_chunks_mut(f).enumerate().for_each_init(
        || (vec![0.0f32; f], vec![0.0f32; f], vec![0.0f32; f]),
        |(r, p, ap), (row, xu)| {
            // r = b − A·x, with A = YᵀY + λI + Σ (c − 1)·y·yᵀ and b = Σ c·y.
            times(&yty, xu, r);
            r.iter_mut().for_each(|v| *v = -*v);
            for (i, w) in pairs.row(row) {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                let c = config.alpha * w;
                let scale = c - (c - 1.0) * dot(yi, xu);
                r.iter_mut().zip(yi).for_each(|(rv, yv)| *rv += scale * yv);
            }
            p.copy_from_slice(r);
            let mut rs_old = dot(r, r);
            if rs_old < 1e-20 {
                return;
            }
            for _ in 0..CG_STEPS {
                times(&yty, p, ap);
                for (i, w) in pairs.row(row) {
                    let yi = &y[i as usize * f..(i as usize + 1) * f];
                    let c = config.alpha * w;
                    let scale = (c - 1.0) * dot(yi, p);
                    ap.iter_mut().zip(yi).for_each(|(a, yv)| *a += scale * yv);
                }
                let step = rs_old / dot(p, ap);
                xu.iter_mut().zip(p.iter()).for_each(|(xv, pv)| *xv += step * pv);
                r.iter_mut().zip(ap.iter()).for_each(|(rv, av)| *rv -= step * av);
                let rs_new = dot(r, r);
                if rs_new < 1e-20 {
                    break;
                }
                let ratio = rs_new / rs_old;
                p.iter_mut().zip(r.iter()).for_each(|(pv, rv)| *pv = rv + ratio * *pv);
                rs_old = rs_new;
            }
        },
    );
}

/// The loss `implicit` reports: Σ c·(p − x·y)² over all pairs plus λ(‖X‖² + ‖Y‖²), divided by
/// the total confidence.
fn loss(x: &[f32], y: &[f32], pairs: &Csr, config: &AlsConfig) -> f32 {
    let f = config.factors;
    let yty = gram(y, f, 0.0);
    let (total, confidence): (f64, f64) = x
        .par_chunks(f)
        .enumerate()
        .map(|(row, xu)| {
            let mut product = vec![0.0f32; f];
            times(&yty, xu, &mut product);
            let mut total = f64::from(dot(&product, xu));
            let mut confidence = 0.0f64;
            for (i, w) in pairs.row(row) {
                let s = dot(&y[i as usize * f..(i as usize + 1) * f], xu);
                let c = config.alpha * w;
                total += f64::from(c * (1.0 - s) * (1.0 - s) - s * s);
                confidence += f64::from(c);
            }
            total += f64::from(config.regularization * dot(xu, xu));
            (total, confidence)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let item_regularization: f64 = y.chunks(f).map(|v| f64::from(config.regularization * dot(v, v))).sum();
    let unobserved = (x.len() / f) as f64 * (y.len() / f) as f64 - pairs.indices.len() as f64;
    ((total + item_regularization) / (confidence + unobserved)) as f32
}

/// Trains iALS on `interactions`. `on_iteration(done, loss)` is told after every sweep (with
/// the loss when `report_loss`, which costs about 1/factors of a sweep) and may stop training
/// by returning false.
pub fn train(
    interactions: &Interactions,
    config: &AlsConfig,
    report_loss: bool,
    mut on_iteration: impl FnMut(usize, Option<f32>) -> bool,
) -> AlsModel {
    let f = config.factors;
    let mut random = SplitMix::new(config.seed);
    let mut init = |rows: usize| (0..rows * f).map(|_| random.next_f32() * 0.01).collect::<Vec<f32>>();
    let mut user_factors = init(interactions.users());
    let mut item_factors = init(interactions.items());
    for iteration in 0..config.iterations {
        sweep(&mut user_factors, &item_factors, &interactions.by_user, config);
        sweep(&mut item_factors, &user_factors, &interactions.by_item, config);
        let current = report_loss.then(|| loss(&user_factors, &item_factors, &interactions.by_user, config));
        if !on_iteration(iteration + 1, current) {
            break;
        }
    }
    let loss = loss(&user_factors, &item_factors, &interactions.by_user, config);
    AlsModel {
        user_factors,
        item_factors,
        loss,
    }
}
