//! The depthwise kernel: one channel plane per task, zero-padded and split into stride phases
//! so that every tap is a contiguous run, register-blocked over runs of output columns.

use super::activate;
use crate::layers::Act;

/// Outputs accumulated together in the depthwise kernel (one AVX2 register).
pub(super) const LANES: usize = 8;
/// Runs of LANES outputs computed together (independent add chains).
const JOBS: usize = 4;
/// Largest depthwise kernel the host path takes (7x7).
pub(super) const MAX_TAPS: usize = 49;

/// Shape of one depthwise plane: input `h x w`, kernel `k`, stride `s`, top / left padding,
/// padded height `hp`, phase width `wph` (at least `ceil(padded width / s)`), output width `wo`.
#[derive(Debug, Clone, Copy)]
pub(super) struct DwGeometry {
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) pt: usize,
    pub(super) pl: usize,
    pub(super) hp: usize,
    pub(super) wph: usize,
    pub(super) wo: usize,
    pub(super) act: Act,
}

patchcore_core::multiversion! {
    /// One channel of a depthwise convolution, with AVX2 where the CPU has it (the crate is
    /// built for the x86-64 baseline; the same source compiled for AVX2 runs about twice as
    /// fast). Both paths do the same multiplies and adds in the same order: the same bits.
    pub(super) fn depthwise_plane(
        g: &DwGeometry,
        plane: &[f32],
        wk: &[f32],
        bias: f32,
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        depthwise_plane_body(g, plane, wk, bias, scratch, out);
    }
}

/// Writes the zero-padded `plane` into `scratch` split into `s` column phases: phase p holds
/// padded columns p, p + s, p + 2s, ..., so tap (ky, kx) of output row oy reads the contiguous
/// run phase[kx % s][oy * s + ky][kx / s ..][..wo].
#[inline(always)]
fn split_phases(g: &DwGeometry, plane: &[f32], scratch: &mut [f32]) {
    let DwGeometry {
        h,
        w,
        s,
        pt,
        pl,
        hp,
        wph,
        ..
    } = *g;
    scratch.fill(0.0);
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for p in 0..s {
            let dst = &mut scratch[p * hp * wph + (y + pt) * wph..][..wph];
            // Padded column p + i*s is input column p + i*s - pl.
            let i0 = pl.saturating_sub(p).div_ceil(s);
            let x0 = p + i0 * s - pl;
            if x0 >= w {
                continue;
            }
            if s == 1 {
                dst[i0..i0 + (w - x0)].copy_from_slice(&row[x0..]);
            } else {
                for (d, &v) in dst[i0..].iter_mut().zip(row[x0..].iter().step_by(s)) {
                    *d = v;
                }
            }
        }
    }
}

#[inline(always)]
fn depthwise_plane_body(
    g: &DwGeometry,
    plane: &[f32],
    wk: &[f32],
    bias: f32,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    let DwGeometry {
        k,
        s,
        hp,
        wph,
        wo,
        act,
        ..
    } = *g;
    split_phases(g, plane, scratch);
    // Outputs are computed in runs of LANES, each accumulated in registers over all k*k taps
    // and stored once; JOBS runs at a time so that their add chains overlap. The phases are
    // wide enough (`wph` is rounded up by the caller) for the last run of a row to read LANES
    // values without leaving the row.
    let mut taps = [0usize; MAX_TAPS];
    for ky in 0..k {
        for kx in 0..k {
            taps[ky * k + kx] = (kx % s) * hp * wph + ky * wph + kx / s;
        }
    }
    let taps = &taps[..k * k];
    let runs = wo.div_ceil(LANES);
    let jobs = out.len() / wo * runs;
    // Job j: output row j / runs, columns (j % runs) * LANES ..; its first tap reads from
    // scratch[base(j) + taps[t]].
    let base = |j: usize| (j / runs) * s * wph + (j % runs) * LANES;
    let mut store = |j: usize, acc: &[f32; LANES]| {
        let (oy, c0) = (j / runs, (j % runs) * LANES);
        let n = LANES.min(wo - c0);
        for (d, &a) in out[oy * wo + c0..oy * wo + c0 + n].iter_mut().zip(acc) {
            *d = activate(a, act);
        }
    };
    let mut j = 0;
    while j + JOBS <= jobs {
        let b: [usize; JOBS] = std::array::from_fn(|i| base(j + i));
        let mut acc = [[bias; LANES]; JOBS];
        for (t, &off) in taps.iter().enumerate() {
            let wv = wk[t];
            for i in 0..JOBS {
                let src: &[f32; LANES] = scratch[b[i] + off..b[i] + off + LANES]
                    .try_into()
                    .expect("LANES values");
                for l in 0..LANES {
                    acc[i][l] += wv * src[l];
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            store(j + i, a);
        }
        j += JOBS;
    }
    while j < jobs {
        let b = base(j);
        let mut acc = [bias; LANES];
        for (t, &off) in taps.iter().enumerate() {
            let wv = wk[t];
            let src: &[f32; LANES] = scratch[b + off..b + off + LANES]
                .try_into()
                .expect("LANES values");
            for l in 0..LANES {
                acc[l] += wv * src[l];
            }
        }
        store(j, &acc);
        j += 1;
    }
}
