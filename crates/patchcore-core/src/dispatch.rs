//! Run-time CPU dispatch, one mechanism for every kernel of the workspace.
//!
//! Release builds target baseline x86-64 (SSE2). A hot loop written once in
//! [`multiversion!`](crate::multiversion) is compiled twice, for the baseline and with AVX2,
//! and the AVX2 build runs where the CPU has it. Both builds execute the same source, so a
//! kernel that does its arithmetic in a fixed order (no fused multiply-add: the macro enables
//! `avx2` only, not `fma`) gives the same bits on every x86-64 CPU.
//!
//! `PATCHCORE_FORCE_BASELINE=1` in the environment (read once per process) makes every kernel
//! take its baseline build, so a machine with AVX2 can test the path a machine without it
//! runs.

use std::sync::OnceLock;

/// Whether the AVX2 builds run: the CPU has AVX2 and `PATCHCORE_FORCE_BASELINE` is not set
/// (to anything but `0` or empty). Checked once per process.
pub fn avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        let forced =
            std::env::var("PATCHCORE_FORCE_BASELINE").is_ok_and(|v| !v.is_empty() && v != "0");
        !forced && cpu_has_avx2()
    })
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx2() -> bool {
    false
}

/// Defines `fn $name(..)` whose body runs compiled with AVX2 where [`avx2`] says so, and
/// compiled for the baseline target otherwise. The only `unsafe` is the call of the AVX2
/// build after that check, allowed on the generated function alone.
///
/// ```
/// patchcore_core::multiversion! {
///     /// Sum of squares.
///     pub fn sum_sq(v: &[f32]) -> f32 {
///         v.iter().map(|x| x * x).sum()
///     }
/// }
/// assert_eq!(sum_sq(&[1.0, 2.0]), 5.0);
/// ```
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        #[allow(unsafe_code)] // the AVX2 build is called only after the run-time check
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::dispatch::avx2() {
                    // SAFETY: the CPU supports AVX2 (checked by `dispatch::avx2`).
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    crate::multiversion! {
        fn dot(a: &[f32], b: &[f32]) -> f32 {
            a.iter().zip(b).map(|(x, y)| x * y).sum()
        }
    }

    #[test]
    fn both_builds_compute_the_body() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
        let expect: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a).to_bits(), expect.to_bits());
    }
}
