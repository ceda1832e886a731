//! The distance loops of the greedy k-center, each compiled twice by
//! [`patchcore_core::multiversion!`]: for the baseline target (x86-64: SSE2) and with AVX2,
//! the AVX2 build chosen at run time where the CPU has it.
//!
//! Why: release builds target baseline x86-64, where [`sq_dist`] runs on 128-bit registers;
//! the greedy spends most of its time in it. Both builds do the same arithmetic in the same
//! order (32 lane-wise accumulators, no fused multiply-add, a fixed final sum), so distances,
//! and therefore selections, are bit-identical on every x86-64 CPU.

use patchcore_core::multiversion;

use super::{MARGIN, max_first};

/// Squared Euclidean distance, computed from differences (not `|a|^2 + |b|^2 - 2ab`, whose
/// cancellation can flip near-tied greedy picks), with 32 independent lane accumulators (four
/// AVX2 registers) and a fixed order for the final sum.
#[inline(always)]
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 32;
    let mut acc = [0f32; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..L {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        let d = x - y;
        s += d * d;
    }
    // Pairwise, in a fixed order.
    let mut w = L;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    s + acc[0]
}

multiversion! {
    /// The plain greedy's update of rows `base..base + min_d.len()`: each row's squared
    /// distance to its nearest centre becomes the smaller of it and its distance to `centre`.
    /// Returns the farthest row of the chunk (largest distance, lowest index on ties).
    pub(crate) fn plain_chunk(
        data: &[f32],
        d: usize,
        base: usize,
        centre: &[f32],
        min_d: &mut [f32],
    ) -> (f32, usize) {
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        for (j, m) in min_d.iter_mut().enumerate() {
            let i = base + j;
            let dist = sq_dist(&data[i * d..(i + 1) * d], centre);
            if dist < *m {
                *m = dist;
            }
            best = max_first(best, (*m, i));
        }
        best
    }
}

multiversion! {
    /// Rows `base..base + min_d.len()` at their squared distance to `centre`, except the row
    /// `skip` (the centre itself).
    pub(crate) fn first_chunk(
        data: &[f32],
        d: usize,
        base: usize,
        centre: &[f32],
        skip: usize,
        min_d: &mut [f32],
    ) {
        for (j, m) in min_d.iter_mut().enumerate() {
            let i = base + j;
            if i != skip {
                *m = sq_dist(&data[i * d..(i + 1) * d], centre);
            }
        }
    }
}

multiversion! {
    /// The pruned greedy's pass over rows `base..base + min_d.len()`: a row whose centre is at
    /// squared distance `cc[owner]` from the new centre is measured only if
    /// `cc[owner] < MARGIN * min_d` (else the triangle inequality rules it out), and moves to
    /// `slot` when nearer. Centre rows (`owner == u32::MAX`) are left alone.
    pub(crate) fn flat_chunk(
        data: &[f32],
        d: usize,
        base: usize,
        centre: &[f32],
        cc: &[f32],
        slot: u32,
        min_d: &mut [f32],
        owner: &mut [u32],
    ) {
        for (j, (m, o)) in min_d.iter_mut().zip(owner.iter_mut()).enumerate() {
            if *o == u32::MAX {
                continue;
            }
            if cc[*o as usize] < MARGIN * *m {
                let i = base + j;
                let dist = sq_dist(&data[i * d..(i + 1) * d], centre);
                if dist < *m {
                    *m = dist;
                    *o = slot;
                }
            }
        }
    }
}

multiversion! {
    /// The pruned greedy's pass over some member rows of one cluster whose centre is at
    /// squared distance `bound` from the new centre: the rows that move to it (row, new
    /// squared distance) go to `moved`; returns the farthest row that stays.
    pub(crate) fn piece(
        data: &[f32],
        d: usize,
        rows: &[u32],
        min_d: &[f32],
        centre: &[f32],
        bound: f32,
        moved: &mut Vec<(u32, f32)>,
    ) -> (f32, usize) {
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        for &i in rows {
            let iu = i as usize;
            let m = min_d[iu];
            if bound < MARGIN * m {
                let dist = sq_dist(&data[iu * d..(iu + 1) * d], centre);
                if dist < m {
                    moved.push((i, dist));
                    continue;
                }
            }
            best = max_first(best, (m, iu));
        }
        best
    }
}

multiversion! {
    /// The lazy greedy's update of some rows of cluster `j`: each row (skipped when it no
    /// longer belongs to `j`) is measured against the queued centres (slot, squared distance
    /// to `j`'s centre) its distance to `j`'s centre cannot rule out, in queue order, and
    /// moves to the nearest strictly nearer one. Rows that stay go to `stay`, the others to
    /// `moved` (row, slot, new squared distance); returns the farthest row that stays.
    pub(crate) fn apply_queued(
        data: &[f32],
        d: usize,
        rows: &[u32],
        j: u32,
        owner: &[u32],
        min_d: &[f32],
        queued: &[(u32, f32)],
        centres: &[f32],
        stay: &mut Vec<u32>,
        moved: &mut Vec<(u32, u32, f32)>,
    ) -> (f32, usize) {
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        for &i in rows {
            let iu = i as usize;
            if owner[iu] != j {
                continue;
            }
            let m0 = min_d[iu];
            let (mut m, mut o) = (m0, j);
            let x = &data[iu * d..(iu + 1) * d];
            for &(s, c) in queued {
                if c < MARGIN * m0 {
                    let s = s as usize;
                    let dist = sq_dist(x, &centres[s * d..(s + 1) * d]);
                    if dist < m {
                        m = dist;
                        o = s as u32;
                    }
                }
            }
            if o == j {
                stay.push(i);
                best = max_first(best, (m0, iu));
            } else {
                moved.push((i, o, m));
            }
        }
        best
    }
}

multiversion! {
    /// `out[j]` = squared distance from `centre` to row `j` of `rows` (`[out.len(), d]`).
    pub(crate) fn dists_to(rows: &[f32], d: usize, centre: &[f32], out: &mut [f32]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = sq_dist(&rows[j * d..(j + 1) * d], centre);
        }
    }
}

multiversion! {
    /// The smallest squared distance from `x` to the rows `selected` of `data`.
    pub(crate) fn nearest_of(data: &[f32], d: usize, x: &[f32], selected: &[usize]) -> f32 {
        selected
            .iter()
            .map(|&c| sq_dist(x, &data[c * d..(c + 1) * d]))
            .fold(f32::INFINITY, f32::min)
    }
}

multiversion! {
    /// The farthest of `rows` from `from` (largest squared distance, lowest row on ties).
    pub(crate) fn farthest_of(data: &[f32], d: usize, rows: &[u32], from: &[f32]) -> (f32, usize) {
        rows.iter().fold((f32::NEG_INFINITY, usize::MAX), |b, &i| {
            let i = i as usize;
            max_first(b, (sq_dist(&data[i * d..(i + 1) * d], from), i))
        })
    }
}

multiversion! {
    /// `(x_i · dir, i)` for each row `i` of `rows`, into `out`.
    pub(crate) fn project_on(data: &[f32], d: usize, rows: &[u32], dir: &[f32], out: &mut Vec<(f32, u32)>) {
        for &i in rows {
            let x = &data[i as usize * d..(i as usize + 1) * d];
            let mut acc = [0f32; 8];
            let mut cx = x.chunks_exact(8);
            let mut cd = dir.chunks_exact(8);
            for (p, q) in (&mut cx).zip(&mut cd) {
                for l in 0..8 {
                    acc[l] += p[l] * q[l];
                }
            }
            let tail: f32 = cx.remainder().iter().zip(cd.remainder()).map(|(p, q)| p * q).sum();
            out.push((acc.iter().sum::<f32>() + tail, i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sq_dist_matches_the_textbook_sum() {
        for d in [1usize, 7, 31, 32, 33, 128, 152] {
            let a: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..d).map(|i| (i as f32 * 0.11).cos()).collect();
            let want: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum();
            let got = sq_dist(&a, &b) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.max(1.0),
                "d {d}: {got} vs {want}"
            );
        }
    }

    /// Runs `f` dispatched (AVX2 where it runs) and on the baseline build; both results.
    fn both<T>(f: impl Fn() -> T) -> (T, T) {
        (f(), patchcore_core::dispatch::on_baseline(&f))
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_kernel_gives_the_same_bits_on_both_builds() {
        use rand::{Rng, SeedableRng};
        patchcore_core::dispatch::both_builds_differ();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for d in [1usize, 7, 8, 33, 128, 152] {
            let n = 97;
            let data: Vec<f32> = (0..n * d).map(|_| rng.random_range(-3.0..3.0)).collect();
            let centre: Vec<f32> = (0..d).map(|_| rng.random_range(-3.0..3.0)).collect();
            let min0: Vec<f32> = (0..n).map(|_| rng.random_range(0.0..60.0)).collect();
            let rows: Vec<u32> = (0..n as u32).filter(|_| rng.random_bool(0.7)).collect();
            let k = 5;
            let owner0: Vec<u32> = (0..n)
                .map(|i| {
                    if i % 11 == 0 {
                        u32::MAX
                    } else {
                        (i % k) as u32
                    }
                })
                .collect();
            let cc: Vec<f32> = (0..k).map(|_| rng.random_range(0.0..40.0)).collect();
            let centres: Vec<f32> = (0..k * d).map(|_| rng.random_range(-3.0..3.0)).collect();
            let queued: Vec<(u32, f32)> = (0..k as u32).map(|s| (s, cc[s as usize])).collect();
            let what = |name: &str| format!("{name}, d = {d}");

            let (a, b) = both(|| {
                let mut m = min0.clone();
                let r = plain_chunk(&data, d, 0, &centre, &mut m);
                (r.0.to_bits(), r.1, bits(&m))
            });
            assert_eq!(a, b, "{}", what("plain_chunk"));
            let (a, b) = both(|| {
                let mut m = min0.clone();
                first_chunk(&data, d, 0, &centre, 3, &mut m);
                bits(&m)
            });
            assert_eq!(a, b, "{}", what("first_chunk"));
            let (a, b) = both(|| {
                let (mut m, mut o) = (min0.clone(), owner0.clone());
                flat_chunk(&data, d, 0, &centre, &cc, 2, &mut m, &mut o);
                (bits(&m), o)
            });
            assert_eq!(a, b, "{}", what("flat_chunk"));
            let (a, b) = both(|| {
                let mut moved = Vec::new();
                let r = piece(&data, d, &rows, &min0, &centre, 10.0, &mut moved);
                let moved: Vec<(u32, u32)> = moved.iter().map(|(i, x)| (*i, x.to_bits())).collect();
                (r.0.to_bits(), r.1, moved)
            });
            assert_eq!(a, b, "{}", what("piece"));
            let (a, b) = both(|| {
                let (mut stay, mut moved) = (Vec::new(), Vec::new());
                let r = apply_queued(
                    &data, d, &rows, 1, &owner0, &min0, &queued, &centres, &mut stay, &mut moved,
                );
                let moved: Vec<(u32, u32, u32)> = moved
                    .iter()
                    .map(|(i, s, x)| (*i, *s, x.to_bits()))
                    .collect();
                (r.0.to_bits(), r.1, stay, moved)
            });
            assert_eq!(a, b, "{}", what("apply_queued"));
            let (a, b) = both(|| {
                let mut out = vec![0f32; n];
                dists_to(&data, d, &centre, &mut out);
                bits(&out)
            });
            assert_eq!(a, b, "{}", what("dists_to"));
            let sel: Vec<usize> = rows.iter().map(|&r| r as usize).collect();
            let (a, b) = both(|| nearest_of(&data, d, &centre, &sel).to_bits());
            assert_eq!(a, b, "{}", what("nearest_of"));
            let (a, b) = both(|| {
                let r = farthest_of(&data, d, &rows, &centre);
                (r.0.to_bits(), r.1)
            });
            assert_eq!(a, b, "{}", what("farthest_of"));
            let (a, b) = both(|| {
                let mut out = Vec::new();
                project_on(&data, d, &rows, &centre, &mut out);
                out.iter()
                    .map(|(x, i)| (x.to_bits(), *i))
                    .collect::<Vec<_>>()
            });
            assert_eq!(a, b, "{}", what("project_on"));
            // The dispatched distances also equal the plain sum computed here.
            let mut out = vec![0f32; n];
            dists_to(&data, d, &centre, &mut out);
            for (j, &o) in out.iter().enumerate() {
                assert_eq!(
                    o.to_bits(),
                    sq_dist(&data[j * d..(j + 1) * d], &centre).to_bits()
                );
            }
        }
    }
}
