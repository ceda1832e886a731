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

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// Set by [`on_baseline`] for the calls it makes on this thread.
    static BASELINE_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the AVX2 builds run for a call on this thread: the CPU has AVX2,
/// `PATCHCORE_FORCE_BASELINE` is not set (to anything but `0` or empty; read once per
/// process) and the call is not inside [`on_baseline`].
pub fn avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    let process = *AVX2.get_or_init(|| {
        let forced =
            std::env::var("PATCHCORE_FORCE_BASELINE").is_ok_and(|v| !v.is_empty() && v != "0");
        !forced && cpu_has_avx2()
    });
    process && !BASELINE_HERE.with(Cell::get)
}

/// Runs `f` with every multiversioned kernel that `f` calls on this thread taking its
/// baseline build (calls `f` hands to other threads, e.g. rayon's, are not affected). The
/// kernel tests compare each kernel's two builds with it, bit for bit.
pub fn on_baseline<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BASELINE_HERE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(BASELINE_HERE.with(|c| c.replace(true)));
    f()
}

/// Whether this CPU has AVX2 (whatever `PATCHCORE_FORCE_BASELINE` says).
#[cfg(target_arch = "x86_64")]
pub fn cpu_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether this CPU has AVX2 (whatever `PATCHCORE_FORCE_BASELINE` says).
#[cfg(not(target_arch = "x86_64"))]
pub fn cpu_has_avx2() -> bool {
    false
}

/// Whether a comparison of [`on_baseline`] with the dispatched call compares two different
/// builds in this process; when not, says why on stderr (a kernel parity test then has
/// nothing to compare, and `.ci/run` checks that it ran where AVX2 exists).
pub fn both_builds_differ() -> bool {
    if avx2() {
        return true;
    }
    eprintln!(
        "kernel parity: the AVX2 build does not run here ({}): baseline compared with itself",
        if cpu_has_avx2() {
            "PATCHCORE_FORCE_BASELINE is set"
        } else {
            "the CPU has no AVX2"
        }
    );
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
    fn on_baseline_switches_this_thread_only_and_restores() {
        let before = crate::dispatch::avx2();
        crate::dispatch::on_baseline(|| {
            assert!(!crate::dispatch::avx2());
            let other = std::thread::spawn(crate::dispatch::avx2).join().unwrap();
            assert_eq!(other, before, "another thread keeps its dispatch");
        });
        assert_eq!(crate::dispatch::avx2(), before);
    }

    #[test]
    fn both_builds_compute_the_body() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.25).collect();
        let expect: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a).to_bits(), expect.to_bits());
    }
}
