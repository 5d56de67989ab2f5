//! Vector kernels over plain f32 slices: the inner loops of every vector function.
//!
//! Eight independent accumulators let the compiler keep the loop in SIMD registers;
//! the scalar tail handles lengths that are not a multiple of eight.

const LANES: usize = 8;

/// Σ a_i·b_i. The slices must have the same length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let chunks_a = a.chunks_exact(LANES);
    let chunks_b = b.chunks_exact(LANES);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for lane in 0..LANES {
            acc[lane] += ca[lane] * cb[lane];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// The Euclidean norm ‖a‖.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// a·b / (‖a‖·‖b‖), or `None` when either vector is all zeros (the angle is undefined).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Option<f32> {
    let denominator = norm(a) * norm(b);
    (denominator > 0.0).then(|| dot(a, b) / denominator)
}

/// Writes a / ‖a‖ into `out`; an all-zero vector stays all zeros.
pub fn normalize_into(a: &[f32], out: &mut [f32]) {
    let n = norm(a);
    let scale = if n > 0.0 { 1.0 / n } else { 0.0 };
    for (o, x) in out.iter_mut().zip(a) {
        *o = x * scale;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn reference_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
    }

    fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
        (0usize..70).prop_flat_map(|n| {
            (
                prop::collection::vec(-100f32..100f32, n),
                prop::collection::vec(-100f32..100f32, n),
            )
        })
    }

    proptest! {
        #[test]
        fn dot_matches_reference((a, b) in pair()) {
            let expected = reference_dot(&a, &b);
            let scale = a.iter().chain(&b).map(|x| f64::from(x.abs())).fold(1.0, f64::max);
            let tolerance = 1e-5 * scale * scale * (a.len() as f64 + 1.0);
            prop_assert!((f64::from(dot(&a, &b)) - expected).abs() <= tolerance);
        }

        #[test]
        fn cosine_matches_reference((a, b) in pair()) {
            let na = reference_dot(&a, &a).sqrt();
            let nb = reference_dot(&b, &b).sqrt();
            match cosine_similarity(&a, &b) {
                None => prop_assert!(na == 0.0 || nb == 0.0),
                Some(c) => {
                    let expected = reference_dot(&a, &b) / (na * nb);
                    prop_assert!((f64::from(c) - expected).abs() < 1e-4, "{c} vs {expected}");
                }
            }
        }

        #[test]
        fn normalized_vectors_have_unit_norm(a in prop::collection::vec(-100f32..100f32, 1..70)) {
            let mut out = vec![0.0; a.len()];
            normalize_into(&a, &mut out);
            let n = reference_dot(&out, &out).sqrt();
            if reference_dot(&a, &a) > 1e-12 {
                prop_assert!((n - 1.0).abs() < 1e-4);
            } else {
                prop_assert!(out.iter().all(|x| *x == 0.0));
            }
        }
    }
}
