//! The aggregators' few operations on plain `[h, w]` planes, with the arithmetic of the
//! reference implementations (PyTorch's `AvgPool2d`, `interpolate(mode="bilinear",
//! align_corners=False)` and `adaptive_avg_pool1d`; burn-flex computes the same expressions
//! in the same order, so the results are bit-identical to the burn path they replace).

/// `p x p` average with stride 1 and zero padding `p / 2`, padded cells counted
/// (`count_include_pad = True`): every window is divided by `p * p`. `p = 1` copies.
pub fn avg_pool_plane(src: &[f32], h: usize, w: usize, p: usize, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), h * w);
    debug_assert_eq!(dst.len(), h * w);
    if p == 1 {
        dst.copy_from_slice(src);
        return;
    }
    let r = p / 2;
    let div = (p * p) as f32;
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let mut sum = 0.0f32;
            for iy in y0..y1 {
                for v in &src[iy * w + x0..iy * w + x1] {
                    sum += v;
                }
            }
            dst[y * w + x] = sum / div;
        }
    }
}

/// The two source indices and the weight of the second for output coordinate `o` when
/// resizing `input` cells to `output` cells (half-pixel centres, clamped at the border).
fn taps(o: usize, input: usize, output: usize) -> (usize, usize, f32) {
    let ratio = input as f64 / output as f64;
    let c = (o as f64 + 0.5) * ratio - 0.5;
    let low = c.floor().max(0.0) as usize;
    let high = (low + 1).min(input - 1);
    (low, high, (c - low as f64).max(0.0) as f32)
}

/// Bilinear resize of an `[h, w]` plane to `[oh, ow]` (`align_corners = False`).
pub fn bilinear_plane(src: &[f32], h: usize, w: usize, dst: &mut [f32], oh: usize, ow: usize) {
    debug_assert_eq!(src.len(), h * w);
    debug_assert_eq!(dst.len(), oh * ow);
    let xs: Vec<(usize, usize, f32)> = (0..ow).map(|x| taps(x, w, ow)).collect();
    for y in 0..oh {
        let (yl, yh, yw) = taps(y, h, oh);
        let (row_l, row_h) = (&src[yl * w..(yl + 1) * w], &src[yh * w..(yh + 1) * w]);
        for (x, &(xl, xh, xw)) in xs.iter().enumerate() {
            let one = 1.0f32;
            dst[y * ow + x] = row_l[xl] * (one - xw) * (one - yw)
                + row_l[xh] * xw * (one - yw)
                + row_h[xl] * (one - xw) * yw
                + row_h[xh] * xw * yw;
        }
    }
}

/// PyTorch `adaptive_avg_pool1d` over a row: output `j` averages
/// `input[floor(j*n/m) .. ceil((j+1)*n/m)]`.
pub fn adaptive_avg_pool1d(input: &[f32], out: &mut [f32]) {
    let n = input.len();
    let m = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        let start = j * n / m;
        let end = ((j + 1) * n).div_ceil(m);
        let s: f32 = input[start..end].iter().sum();
        *o = s / (end - start) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_pool_matches_torch_rule() {
        // torch.nn.functional.adaptive_avg_pool1d(torch.arange(5.)[None], 3) == [0.5, 2, 3.5]
        let mut out = [0f32; 3];
        adaptive_avg_pool1d(&[0., 1., 2., 3., 4.], &mut out);
        assert_eq!(out, [0.5, 2.0, 3.5]);
        // upsampling repeats: 2 -> 4
        let mut up = [0f32; 4];
        adaptive_avg_pool1d(&[1., 3.], &mut up);
        assert_eq!(up, [1., 1., 3., 3.]);
    }

    #[test]
    fn bilinear_doubling_matches_torch() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False)[0, 0, 0] == [0, 0.25, 0.75, 1]
        let mut out = [0f32; 16];
        bilinear_plane(&[0., 1., 2., 3.], 2, 2, &mut out, 4, 4);
        assert_eq!(&out[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&out[12..], &[2.0, 2.25, 2.75, 3.0]);
        // Same size: the identity.
        let mut same = [0f32; 4];
        bilinear_plane(&[0., 1., 2., 3.], 2, 2, &mut same, 2, 2);
        assert_eq!(same, [0., 1., 2., 3.]);
    }

    #[test]
    fn pool_counts_padding() {
        let ones = [1f32; 36];
        for p in [1, 3, 5] {
            let mut out = [0f32; 36];
            avg_pool_plane(&ones, 6, 6, p, &mut out);
            assert_eq!(out[2 * 6 + 2], 1.0);
            let corner = ((p / 2 + 1) * (p / 2 + 1)) as f32 / (p * p) as f32;
            assert!((out[0] - corner).abs() < 1e-6, "p={p}");
        }
    }
}
