//! Per-region overlap (PRO) and its normalised area up to an FPR limit (AUPRO), as MVTec and
//! anomalib define it.

/// Labels the 8-connected components of a binary mask `[height, width]` (`mask[i] != 0` is
/// foreground): 0 for background, `1..=n` for the components. Returns the labels and `n`.
pub fn connected_components(mask: &[u8], height: usize, width: usize) -> (Vec<u32>, u32) {
    assert_eq!(mask.len(), height * width, "mask size");
    let mut labels = vec![0u32; mask.len()];
    let mut next = 0u32;
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if mask[start] == 0 || labels[start] != 0 {
            continue;
        }
        next += 1;
        labels[start] = next;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (y, x) = ((p / width) as isize, (p % width) as isize);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (ny, nx) = (y + dy, x + dx);
                    if ny < 0 || nx < 0 || ny >= height as isize || nx >= width as isize {
                        continue;
                    }
                    let q = ny as usize * width + nx as usize;
                    if mask[q] != 0 && labels[q] == 0 {
                        labels[q] = next;
                        stack.push(q);
                    }
                }
            }
        }
    }
    (labels, next)
}

/// AUPRO from `(score, region)` pairs sorted by descending score (`region` 0 = background,
/// else a global region id `1..=sizes.len()`), integrated up to `fpr_limit` and divided by it.
pub(crate) fn aupro_sorted(sorted: &[(f32, u32)], sizes: &[u64], fpr_limit: f64) -> f64 {
    let background = sorted.iter().filter(|p| p.1 == 0).count() as f64;
    let regions = sizes.len() as f64;
    if background == 0.0 || regions == 0.0 {
        return f64::NAN;
    }
    let (mut fp, mut pro_sum) = (0f64, 0f64);
    let (mut prev_fpr, mut prev_pro) = (0f64, 0f64);
    let mut area = 0f64;
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        while i < sorted.len() && sorted[i].0 == t {
            match sorted[i].1 {
                0 => fp += 1.0,
                r => pro_sum += 1.0 / sizes[r as usize - 1] as f64,
            }
            i += 1;
        }
        let (fpr, pro) = (fp / background, pro_sum / regions);
        if fpr >= fpr_limit {
            // Cut the last segment at the limit, PRO interpolated linearly.
            let w = if fpr > prev_fpr {
                (fpr_limit - prev_fpr) / (fpr - prev_fpr)
            } else {
                0.0
            };
            let pro_at = prev_pro + w * (pro - prev_pro);
            area += (fpr_limit - prev_fpr) * (prev_pro + pro_at) / 2.0;
            return area / fpr_limit;
        }
        area += (fpr - prev_fpr) * (prev_pro + pro) / 2.0;
        prev_fpr = fpr;
        prev_pro = pro;
    }
    area / fpr_limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_use_8_connectivity() {
        // Two squares touching at a corner: one region; an isolated pixel: another.
        #[rustfmt::skip]
        let m = [
            1, 1, 0, 0, 0,
            1, 1, 0, 0, 0,
            0, 0, 1, 1, 0,
            0, 0, 1, 1, 0,
            0, 0, 0, 0, 1,
        ];
        let (labels, n) = connected_components(&m, 5, 5);
        assert_eq!(n, 1, "diagonal contact joins, and (4,4) touches (3,3)");
        assert!(labels.iter().zip(&m).all(|(l, v)| (*l != 0) == (*v != 0)));
        let m2 = [1, 0, 1, 0, 0, 0, 1, 0, 1];
        assert_eq!(connected_components(&m2, 3, 3).1, 4);
    }

    #[test]
    fn perfect_maps_give_aupro_one() {
        // Region pixels scored above every background pixel: PRO is 1 from FPR 0 on.
        let sorted = vec![(0.9, 1), (0.8, 1), (0.7, 2), (0.2, 0), (0.1, 0)];
        let a = aupro_sorted(&sorted, &[2, 1], 0.3);
        assert!((a - 1.0).abs() < 1e-12, "{a}");
    }
}
