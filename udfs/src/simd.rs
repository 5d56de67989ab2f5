//! The instruction set of the element-wise loops, chosen when they run. recfusion is built for
//! baseline x86-64, so a loop the compiler vectorises does so with 4-lane SSE2 (and a 64-bit
//! multiply, as in the dropout draws, not at all) while the CPU underneath may have 8-lane
//! AVX2 or 16-lane AVX-512; gemm picks for itself, our loops did not. [`simd_versions!`]
//! compiles a function's body once per instruction set and calls the widest this CPU has.
//! Every version does the same arithmetic in the same order — Rust never fuses a multiply and
//! an add on its own, and the loops' reductions are laned by hand — so results do not depend
//! on the machine.

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::sync::atomic::{AtomicU8, Ordering};

    pub const BASELINE: u8 = 1;
    pub const AVX2: u8 = 2;
    pub const AVX512: u8 = 3;

    /// The widest version this CPU runs, found once.
    #[inline]
    pub fn level() -> u8 {
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        match LEVEL.load(Ordering::Relaxed) {
            0 => {
                use std::arch::is_x86_feature_detected as has;
                // AVX-512 with 64-bit lanes (DQ), byte masks (BW) and its narrower forms (VL).
                let level = if has!("avx512f") && has!("avx512dq") && has!("avx512bw") && has!("avx512vl") {
                    AVX512
                } else if has!("avx2") && has!("fma") {
                    AVX2
                } else {
                    BASELINE
                };
                LEVEL.store(level, Ordering::Relaxed);
                level
            }
            level => level,
        }
    }
}

/// `fn name(args) -> R { body }` with `body` compiled for AVX-512, for AVX2 and for the
/// baseline, the widest this CPU has chosen at each call (one relaxed load). What `body` calls
/// is compiled into each version only where it is inlined, so the helpers of a kernel are
/// `#[inline(always)]`; a closure handed to another thread is compiled on its own, so a
/// parallel loop calls a kernel inside each task. Arguments are plain identifiers; no generics.
macro_rules! simd_versions {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                match $crate::simd::x86::level() {
                    // SAFETY: this CPU has every feature the version is compiled for.
                    $crate::simd::x86::AVX512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::simd::x86::AVX2 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use simd_versions;

#[cfg(test)]
mod tests {
    /// A sum laned by hand, as the training loops' are.
    fn laned_sum(values: &[f32]) -> f32 {
        let mut lanes = [0f32; 16];
        let chunks = values.chunks_exact(16);
        let rest: f32 = chunks.remainder().iter().sum();
        for chunk in chunks {
            lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += v);
        }
        lanes.iter().sum::<f32>() + rest
    }

    simd_versions! {
        fn widest_laned_sum(values: &[f32]) -> f32 {
            laned_sum(values)
        }
    }

    /// The chosen version gives the baseline's bits.
    #[test]
    fn every_version_sums_alike() {
        let values: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 113) as f32 / 17.0 - 3.0).collect();
        assert_eq!(widest_laned_sum(&values).to_bits(), laned_sum(&values).to_bits());
    }
}
