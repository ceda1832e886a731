use ndarray::{Array2, ArrayView2};

/// Bilinear resize with PyTorch's `align_corners = False` (half-pixel) convention.
pub fn resize_bilinear(src: ArrayView2<'_, f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (h, w) = src.dim();
    let coords = |out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|o| {
                let x = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                let x0 = (x.floor() as usize).min(inp - 1);
                let x1 = (x0 + 1).min(inp - 1);
                (x0, x1, x - x0 as f32)
            })
            .collect()
    };
    let ys = coords(out_h, h);
    let xs = coords(out_w, w);
    Array2::from_shape_fn((out_h, out_w), |(i, j)| {
        let (y0, y1, fy) = ys[i];
        let (x0, x1, fx) = xs[j];
        let top = src[[y0, x0]] * (1.0 - fx) + src[[y0, x1]] * fx;
        let bot = src[[y1, x0]] * (1.0 - fx) + src[[y1, x1]] * fx;
        top * (1.0 - fy) + bot * fy
    })
}

/// Nearest-neighbour resize with PyTorch's `nearest` rule: source index `floor(dst * in / out)`.
pub fn resize_nearest(src: ArrayView2<'_, f32>, out_h: usize, out_w: usize) -> Array2<f32> {
    let (h, w) = src.dim();
    Array2::from_shape_fn((out_h, out_w), |(i, j)| {
        src[[((i * h) / out_h).min(h - 1), ((j * w) / out_w).min(w - 1)]]
    })
}

/// Normalised 1-D Gaussian kernel of size `2*floor(4 sigma + 0.5) + 1` (anomalib's choice).
pub fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (4.0 * sigma + 0.5) as usize;
    let k: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let x = i as f32 - radius as f32;
            (-(x * x) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f32 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// Reflect index (`torch` "reflect": the edge is not repeated).
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut i = i.rem_euclid(period);
    if i >= n as isize {
        i = period - i;
    }
    i as usize
}

/// Separable Gaussian blur with reflect padding.
///
/// Rows are reflect-padded once and convolved as contiguous slices; the vertical pass adds
/// whole rows scaled by each tap. Per pixel the products are summed in tap order from 0, as a
/// direct per-pixel loop would, so the result is bit-identical to it. Rows run in parallel.
pub fn gaussian_blur(src: ArrayView2<'_, f32>, sigma: f32) -> Array2<f32> {
    use rayon::prelude::*;
    let k = gaussian_kernel(sigma);
    let r = (k.len() / 2) as isize;
    let (h, w) = src.dim();
    let src = src.as_standard_layout();
    let data = src.as_slice().expect("standard layout");
    // Horizontal pass.
    let mut tmp = vec![0f32; h * w];
    tmp.par_chunks_mut(w.max(1))
        .enumerate()
        .for_each(|(y, out)| {
            let row = &data[y * w..(y + 1) * w];
            let padded: Vec<f32> = (-r..w as isize + r).map(|x| row[reflect(x, w)]).collect();
            for (x, o) in out.iter_mut().enumerate() {
                let win = &padded[x..x + k.len()];
                *o = k.iter().zip(win).map(|(kv, v)| kv * v).sum::<f32>();
            }
        });
    // Vertical pass.
    let mut out = vec![0f32; h * w];
    out.par_chunks_mut(w.max(1)).enumerate().for_each(|(y, o)| {
        for (t, kv) in k.iter().enumerate() {
            let sy = reflect(y as isize + t as isize - r, h);
            let row = &tmp[sy * w..(sy + 1) * w];
            for (acc, v) in o.iter_mut().zip(row) {
                *acc += kv * v;
            }
        }
    });
    Array2::from_shape_vec((h, w), out).expect("h x w values")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matches_torch_half_pixel() {
        // F.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4), mode="bilinear",
        // align_corners=False)[0, 0, 0] == [0, 0.25, 0.75, 1]
        let src = Array2::from_shape_vec((2, 2), vec![0., 1., 2., 3.]).unwrap();
        let up = resize_bilinear(src.view(), 4, 4);
        assert_eq!(up.row(0).to_vec(), vec![0.0, 0.25, 0.75, 1.0]);
        assert_eq!(up.column(0).to_vec(), vec![0.0, 0.5, 1.5, 2.0]);
    }

    #[test]
    fn nearest_matches_torch() {
        // F.interpolate(x, size=(4, 4), mode="nearest") repeats each cell 2x2.
        let src = Array2::from_shape_vec((2, 2), vec![0., 1., 2., 3.]).unwrap();
        let up = resize_nearest(src.view(), 4, 4);
        assert_eq!(up.row(0).to_vec(), vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(up.row(3).to_vec(), vec![2.0, 2.0, 3.0, 3.0]);
        // Downsampling 3 -> 2 picks cells 0 and 1 (floor(1 * 3 / 2) = 1).
        let src = Array2::from_shape_vec((1, 3), vec![5., 6., 7.]).unwrap();
        assert_eq!(
            resize_nearest(src.view(), 1, 2).row(0).to_vec(),
            vec![5.0, 6.0]
        );
    }

    #[test]
    fn kernel_size_and_mass() {
        let k = gaussian_kernel(4.0);
        assert_eq!(k.len(), 33);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(k[16] > k[15] && (k[0] - k[32]).abs() < 1e-9);
    }

    #[test]
    fn blur_preserves_constant_and_mass_centre() {
        let c = Array2::from_elem((20, 30), 2.5f32);
        let b = gaussian_blur(c.view(), 4.0);
        assert!(b.iter().all(|v| (v - 2.5).abs() < 1e-5));
        let mut spike = Array2::<f32>::zeros((41, 41));
        spike[[20, 20]] = 1.0;
        let b = gaussian_blur(spike.view(), 2.0);
        let argmax = b.indexed_iter().fold(
            ((0, 0), 0f32),
            |a, (i, &v)| if v > a.1 { (i, v) } else { a },
        );
        assert_eq!(argmax.0, (20, 20));
        assert!((b.sum() - 1.0).abs() < 1e-4);
    }

    /// The direct per-pixel blur the fast one must reproduce bit for bit.
    fn blur_reference(src: ArrayView2<'_, f32>, sigma: f32) -> Array2<f32> {
        let k = gaussian_kernel(sigma);
        let r = (k.len() / 2) as isize;
        let (h, w) = src.dim();
        let tmp = Array2::from_shape_fn((h, w), |(y, x)| {
            k.iter()
                .enumerate()
                .map(|(t, kv)| kv * src[[y, reflect(x as isize + t as isize - r, w)]])
                .sum::<f32>()
        });
        Array2::from_shape_fn((h, w), |(y, x)| {
            k.iter()
                .enumerate()
                .map(|(t, kv)| kv * tmp[[reflect(y as isize + t as isize - r, h), x]])
                .sum::<f32>()
        })
    }

    #[test]
    fn fast_blur_is_bit_identical_to_the_direct_loop() {
        for (h, w, sigma) in [(224, 224, 4.0), (37, 5, 2.0), (1, 9, 1.0), (40, 3, 4.0)] {
            let src = Array2::from_shape_fn((h, w), |(y, x)| {
                ((y * 31 + x * 17) % 23) as f32 * 0.37 - 3.0
            });
            assert_eq!(
                gaussian_blur(src.view(), sigma),
                blur_reference(src.view(), sigma)
            );
        }
    }

    #[test]
    fn reflect_indices() {
        assert_eq!(reflect(-1, 5), 1);
        assert_eq!(reflect(-2, 5), 2);
        assert_eq!(reflect(5, 5), 3);
        assert_eq!(reflect(6, 5), 2);
        assert_eq!(reflect(2, 5), 2);
    }
}
