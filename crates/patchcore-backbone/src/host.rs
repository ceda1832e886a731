//! Host kernels for the CPU backends: pointwise (1x1) and depthwise convolutions with the
//! folded bias, the activation and (pointwise) the residual add fused into one pass.
//!
//! Why they exist: on burn-flex, EfficientNet-Lite0 at batch 1 spent about a third of its
//! forward in the depthwise convolution and a sixth in single-threaded ReLU6 passes, with one
//! core idle much of the time (docs/BENCHMARKS.md, "Host kernels"). Here a depthwise channel is
//! one task (zero-padded, stride phases split so every tap is a contiguous multiply-add), a
//! pointwise convolution is one GEMM per column block followed by its epilogue while the block
//! is still in cache, and every pass runs on all threads.
//!
//! Feature maps stay in plain `[n, c, h, w]` buffers between the layers that use these
//! kernels; burn tensors are unwrapped and rebuilt without copying on flex (`into_data` of a
//! unique contiguous tensor hands over its buffer, `from_data` takes it).

// The GEMMs go through the `gemm` crate's raw-pointer API and the AVX2 paths are
// `target_feature` functions: every unsafe block says why it is sound.
#![allow(unsafe_code)]

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{ArrayViewMut2, Axis};
use patchcore_core::{Error, Result};
use rayon::prelude::*;

use crate::layers::{Act, ConvBn, PaddingMode, pads};

/// A feature map in a plain row-major `[n, c, h, w]` buffer.
#[derive(Debug, Clone)]
pub(crate) struct HostMap {
    pub data: Vec<f32>,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl HostMap {
    /// Takes a tensor's values (no copy for a unique contiguous flex tensor).
    pub(crate) fn from_tensor(t: Tensor<4>) -> Result<Self> {
        let [n, c, h, w] = t.dims();
        let data = t
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| Error::Shape(format!("backbone feature map is not f32: {e:?}")))?;
        Ok(Self { data, n, c, h, w })
    }

    /// A tensor holding a copy of the values.
    pub(crate) fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [self.n, self.c, self.h, self.w]),
            device,
        )
    }

    fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// True where the host kernels apply: backends whose tensors live in host memory.
#[allow(deprecated)] // burn-ndarray is deprecated upstream; we still serve it (docs/GPU.md).
pub(crate) fn is_host_device(device: &Device) -> bool {
    *device == Device::flex() || *device == Device::ndarray()
}

#[inline(always)]
#[allow(clippy::manual_clamp)] // the explicit compares are what the kernels were tuned with
fn activate(v: f32, act: Act) -> f32 {
    // Comparisons are false for NaN, so NaN passes through as in burn's clamp and relu.
    match act {
        Act::None => v,
        Act::Relu => {
            if v < 0.0 {
                0.0
            } else {
                v
            }
        }
        Act::Relu6 => {
            if v < 0.0 {
                0.0
            } else if v > 6.0 {
                6.0
            } else {
                v
            }
        }
    }
}

/// A folded convolution's weights on the host.
#[derive(Debug, Clone)]
pub(crate) struct HostConv {
    /// `[cout, cin / groups, k, k]` row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    act: Act,
}

impl HostConv {
    /// The same convolution as a burn-side [`ConvBn`], for the host kernels.
    pub(crate) fn from_conv_bn(conv: &ConvBn) -> Result<Self> {
        let (weight, bias, kernel, stride, groups, act) = conv.parts();
        let [cout, cin_per_group, _, _] = weight.dims();
        let read = |t: TensorData| {
            t.try_into_vec::<f32>()
                .map_err(|e| Error::Shape(format!("convolution weights are not f32: {e:?}")))
        };
        Self::new(
            read(weight.clone().into_data())?,
            read(bias.clone().into_data())?,
            cin_per_group * groups,
            cout,
            kernel,
            stride,
            groups,
            act,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        weight: Vec<f32>,
        bias: Vec<f32>,
        cin: usize,
        cout: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        act: Act,
    ) -> Result<Self> {
        let dense = groups == 1;
        let depthwise = groups == cin && cin == cout && groups > 1 && kernel * kernel <= MAX_TAPS;
        if !(dense || depthwise) || kernel == 0 || stride == 0 {
            return Err(Error::InvalidArgument(format!(
                "host kernels cover dense and depthwise convolutions, not {kernel}x{kernel} \
                 stride {stride} with {groups} groups of {cin} channels"
            )));
        }
        if weight.len() != cout * (cin / groups) * kernel * kernel || bias.len() != cout {
            return Err(Error::Shape(format!(
                "host convolution weights of {} values and bias of {} for {cout}x{cin}/{groups}x{kernel}x{kernel}",
                weight.len(),
                bias.len()
            )));
        }
        Ok(Self {
            weight,
            bias,
            cin,
            cout,
            kernel,
            stride,
            groups,
            act,
        })
    }

    /// The activation applied after the convolution.
    pub(crate) fn act(&self) -> Act {
        self.act
    }

    /// The same convolution followed by `act` instead.
    pub(crate) fn with_act(mut self, act: Act) -> Self {
        self.act = act;
        self
    }

    /// Dense convolution (groups = 1) of any kernel and stride: `act(W * x + b [+ residual])`.
    ///
    /// The input is unfolded into a `[cin*k*k, ho*wo]` matrix (skipped for 1x1 stride-1
    /// convolutions, whose input already is that matrix), one GEMM on every thread computes
    /// the output, and one pass per output row adds the bias and the residual and applies the
    /// activation. The residual is added before the activation (ResNet's `relu(y + identity)`).
    pub(crate) fn conv(
        &self,
        x: &HostMap,
        padding: PaddingMode,
        residual: Option<&HostMap>,
    ) -> Result<HostMap> {
        if self.groups != 1 || x.c != self.cin {
            return Err(Error::Shape(format!(
                "dense convolution of {} channels ({} groups) given {} channels",
                self.cin, self.groups, x.c
            )));
        }
        let (k, s, cin, cout) = (self.kernel, self.stride, self.cin, self.cout);
        let ((pt, pb), (pl, pr)) = (pads(padding, k, s, x.h), pads(padding, k, s, x.w));
        if x.h + pt + pb < k || x.w + pl + pr < k {
            return Err(Error::Shape(format!(
                "{}x{} input is smaller than the {k}x{k} kernel",
                x.h, x.w
            )));
        }
        let (ho, wo) = ((x.h + pt + pb - k) / s + 1, (x.w + pl + pr - k) / s + 1);
        if let Some(r) = residual
            && (r.n, r.c, r.h, r.w) != (x.n, cout, ho, wo)
        {
            return Err(Error::Shape(format!(
                "residual of shape {:?} for an output of {:?}",
                [r.n, r.c, r.h, r.w],
                [x.n, cout, ho, wo]
            )));
        }
        let (h, w) = (x.h, x.w);
        let hw_out = ho * wo;
        let rows = cin * k * k;
        let direct = k == 1 && s == 1 && pt + pb + pl + pr == 0;
        let mut col = if direct {
            Vec::new()
        } else {
            vec![0f32; rows * hw_out]
        };
        let mut out = vec![0f32; x.n * cout * hw_out];
        for img in 0..x.n {
            let src = &x.data[img * cin * h * w..(img + 1) * cin * h * w];
            if !direct {
                col.par_chunks_mut(hw_out).enumerate().for_each(|(r, row)| {
                    let (ci, ky, kx) = (r / (k * k), (r / k) % k, r % k);
                    let plane = &src[ci * h * w..(ci + 1) * h * w];
                    // Output columns whose input column ox*s + kx - pl lies inside the image.
                    let ox_lo = pl.saturating_sub(kx).div_ceil(s).min(wo);
                    let ox_hi = if w + pl > kx {
                        ((w + pl - kx - 1) / s + 1).min(wo)
                    } else {
                        0
                    }
                    .max(ox_lo);
                    for (oy, dst) in row.chunks_exact_mut(wo).enumerate() {
                        let iy = oy * s + ky;
                        if iy < pt || iy - pt >= h || ox_lo == ox_hi {
                            dst.fill(0.0);
                            continue;
                        }
                        let irow = &plane[(iy - pt) * w..(iy - pt + 1) * w];
                        dst[..ox_lo].fill(0.0);
                        dst[ox_hi..].fill(0.0);
                        let x0 = ox_lo * s + kx - pl;
                        if s == 1 {
                            dst[ox_lo..ox_hi].copy_from_slice(&irow[x0..x0 + (ox_hi - ox_lo)]);
                        } else {
                            for (d, &v) in dst[ox_lo..ox_hi]
                                .iter_mut()
                                .zip(irow[x0..].iter().step_by(s))
                            {
                                *d = v;
                            }
                        }
                    }
                });
            }
            let rhs: &[f32] = if direct { src } else { &col };
            let dst = &mut out[img * cout * hw_out..(img + 1) * cout * hw_out];
            // SAFETY: dst is cout x hw_out row-major, the weights cout x rows, rhs rows x
            // hw_out, all with the strides passed.
            unsafe {
                weights_times(
                    (cout, hw_out, rows),
                    dst.as_mut_ptr(),
                    hw_out,
                    self.weight.as_ptr(),
                    rhs.as_ptr(),
                    hw_out,
                    gemm::Parallelism::Rayon(0),
                );
            }
            dst.par_chunks_mut(hw_out).enumerate().for_each(|(o, row)| {
                let res = residual
                    .map(|r| &r.data[(img * cout + o) * hw_out..(img * cout + o + 1) * hw_out]);
                epilogue(row, self.bias[o], self.act, res);
            });
        }
        Ok(HostMap {
            data: out,
            n: x.n,
            c: cout,
            h: ho,
            w: wo,
        })
    }

    /// `act(W x + b [+ residual])` for a 1x1 stride-1 convolution, one GEMM per column block
    /// with its epilogue while the block is in cache (for small weight matrices, such as
    /// EfficientNet's; [`HostConv::conv`] suits large ones).
    pub(crate) fn pointwise(&self, x: &HostMap, residual: Option<&HostMap>) -> Result<HostMap> {
        if (self.kernel, self.stride, self.groups) != (1, 1, 1) {
            return Err(Error::Shape(format!(
                "pointwise path given a {0}x{0} stride-{1} convolution with {2} groups",
                self.kernel, self.stride, self.groups
            )));
        }
        if x.c != self.cin {
            return Err(Error::Shape(format!(
                "pointwise convolution expects {} channels, got {}",
                self.cin, x.c
            )));
        }
        let hw = x.plane();
        if let Some(r) = residual
            && (r.n, r.c, r.h, r.w) != (x.n, self.cout, x.h, x.w)
        {
            return Err(Error::Shape(format!(
                "residual of shape {:?} for an output of {:?}",
                [r.n, r.c, r.h, r.w],
                [x.n, self.cout, x.h, x.w]
            )));
        }
        let (cin, cout) = (self.cin, self.cout);
        let mut out = vec![0f32; x.n * cout * hw];
        let threads = rayon::current_num_threads().max(1);
        // Column blocks: a few per thread; the cout x block tile stays in L2 for the epilogue.
        let block = (hw.div_ceil(threads * 2).div_ceil(16) * 16).clamp(64, 1024);
        // Each image's output is a cout x hw matrix; its column blocks are disjoint strided
        // views, split safely by ndarray and processed in parallel.
        out.par_chunks_mut(cout * hw)
            .zip(x.data.par_chunks(cin * hw))
            .enumerate()
            .for_each(|(img, (out_img, src))| {
                let mut view = ArrayViewMut2::from_shape((cout, hw), out_img)
                    .expect("cout x hw output per image");
                view.axis_chunks_iter_mut(Axis(1), block)
                    .into_par_iter()
                    .enumerate()
                    .for_each(|(b, mut tile)| {
                        let c0 = b * block;
                        let nc = tile.ncols();
                        // SAFETY: `tile` is the cout x nc column block starting at column c0
                        // of this image's output (row stride hw), borrowed by this task alone;
                        // lhs is the cout x cin weight matrix, rhs the cin x nc column block
                        // of `src` (row stride hw) starting at column c0.
                        unsafe {
                            weights_times(
                                (cout, nc, cin),
                                tile.as_mut_ptr(),
                                hw,
                                self.weight.as_ptr(),
                                src.as_ptr().add(c0),
                                hw,
                                gemm::Parallelism::None,
                            );
                        }
                        let base = img * cout * hw + c0;
                        for (o, mut row) in tile.rows_mut().into_iter().enumerate() {
                            let row = row
                                .as_slice_mut()
                                .expect("a row of a column block is contiguous");
                            let res = residual.map(|r| &r.data[base + o * hw..base + o * hw + nc]);
                            epilogue(row, self.bias[o], self.act, res);
                        }
                    });
            });
        Ok(HostMap {
            data: out,
            n: x.n,
            c: cout,
            h: x.h,
            w: x.w,
        })
    }

    /// Depthwise convolution (one filter per channel) with `padding`'s convention.
    pub(crate) fn depthwise(&self, x: &HostMap, padding: PaddingMode) -> Result<HostMap> {
        if self.groups != self.cin || self.groups == 1 || x.c != self.cin {
            return Err(Error::Shape(format!(
                "depthwise convolution expects {} channels, got {}",
                self.cin, x.c
            )));
        }
        let (k, s) = (self.kernel, self.stride);
        let ((pt, pb), (pl, pr)) = (pads(padding, k, s, x.h), pads(padding, k, s, x.w));
        let (hp, wp) = (x.h + pt + pb, x.w + pl + pr);
        if hp < k || wp < k {
            return Err(Error::Shape(format!(
                "{}x{} input is smaller than the {k}x{k} kernel",
                x.h, x.w
            )));
        }
        let (ho, wo) = ((hp - k) / s + 1, (wp - k) / s + 1);
        // The padded plane split into `s` column phases: phase p holds padded columns
        // p, p + s, p + 2s, ... so that tap (ky, kx) of output row oy reads the contiguous run
        // phase[kx % s][oy * s + ky][kx / s ..][..wo].
        let geo = DwGeometry {
            h: x.h,
            w: x.w,
            k,
            s,
            pt,
            pl,
            hp,
            // Room for the last register run of every tap to read LANES values.
            wph: wp.div_ceil(s).max((k - 1) / s + wo.div_ceil(LANES) * LANES),
            wo,
            act: self.act,
        };
        let c = x.c;
        let mut out = vec![0f32; x.n * c * ho * wo];
        out.par_chunks_mut(ho * wo).enumerate().for_each_init(
            || vec![0f32; s * hp * geo.wph],
            |scratch, (nc, o)| {
                let ch = nc % c;
                let plane = &x.data[nc * geo.h * geo.w..(nc + 1) * geo.h * geo.w];
                let wk = &self.weight[ch * k * k..(ch + 1) * k * k];
                depthwise_plane(&geo, plane, wk, self.bias[ch], scratch, o);
            },
        );
        Ok(HostMap {
            data: out,
            n: x.n,
            c,
            h: ho,
            w: wo,
        })
    }
}

/// `dst = w · rhs` for row-major matrices: `w` is `m x k` (contiguous), `rhs` is `k x n`
/// with row stride `rhs_rs`, `dst` is `m x n` with row stride `dst_rs`, written without being
/// read.
///
/// # Safety
/// The pointers must address matrices of those shapes and strides; no other thread may touch
/// the elements of `dst` written here.
unsafe fn weights_times(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    w: *const f32,
    rhs: *const f32,
    rhs_rs: usize,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            w,
            1,
            k as isize,
            rhs,
            1,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// 3x3 max pooling at stride 2 with padding 1 (ResNet's stem), padding never chosen.
pub(crate) fn max_pool_3x3_s2(x: &HostMap) -> HostMap {
    let (h, w) = (x.h, x.w);
    let (ho, wo) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut out = vec![0f32; x.n * x.c * ho * wo];
    out.par_chunks_mut(ho * wo)
        .zip(x.data.par_chunks(h * w))
        .for_each(|(o, plane)| {
            for oy in 0..ho {
                let ys = (oy * 2).saturating_sub(1)..(oy * 2 + 2).min(h);
                for ox in 0..wo {
                    let xs = (ox * 2).saturating_sub(1)..(ox * 2 + 2).min(w);
                    let mut m = f32::NEG_INFINITY;
                    for y in ys.clone() {
                        for v in &plane[y * w + xs.start..y * w + xs.end] {
                            // NaN propagates, as in burn's and PyTorch's max pooling.
                            if *v > m || v.is_nan() {
                                m = *v;
                            }
                        }
                    }
                    o[oy * wo + ox] = m;
                }
            }
        });
    HostMap {
        data: out,
        n: x.n,
        c: x.c,
        h: ho,
        w: wo,
    }
}

/// Outputs accumulated together in the depthwise kernel (one AVX2 register).
const LANES: usize = 8;
/// Runs of LANES outputs computed together (independent add chains).
const JOBS: usize = 4;
/// Largest depthwise kernel the host path takes (7x7).
const MAX_TAPS: usize = 49;

/// Shape of one depthwise plane: input `h x w`, kernel `k`, stride `s`, top / left padding,
/// padded height `hp`, phase width `wph` (at least `ceil(padded width / s)`), output width `wo`.
#[derive(Debug, Clone, Copy)]
struct DwGeometry {
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    pt: usize,
    pl: usize,
    hp: usize,
    wph: usize,
    wo: usize,
    act: Act,
}

/// One channel of a depthwise convolution, with AVX2 where the CPU has it (the crate is built
/// for the x86-64 baseline; the same source compiled for AVX2 runs about twice as fast). Both
/// paths do the same multiplies and adds in the same order, so they give the same bits.
fn depthwise_plane(
    g: &DwGeometry,
    plane: &[f32],
    wk: &[f32],
    bias: f32,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { depthwise_plane_avx2(g, plane, wk, bias, scratch, out) };
        return;
    }
    depthwise_plane_body(g, plane, wk, bias, scratch, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn depthwise_plane_avx2(
    g: &DwGeometry,
    plane: &[f32],
    wk: &[f32],
    bias: f32,
    scratch: &mut [f32],
    out: &mut [f32],
) {
    depthwise_plane_body(g, plane, wk, bias, scratch, out);
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
        h,
        w,
        k,
        s,
        pt,
        pl,
        hp,
        wph,
        wo,
        act,
        ..
    } = *g;
    // The zero-padded plane split into `s` column phases: phase p holds padded columns
    // p, p + s, p + 2s, ..., so tap (ky, kx) of output row oy reads the contiguous run
    // phase[kx % s][oy * s + ky][kx / s ..][..wo].
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

/// `row[j] = act(row[j] + bias [+ residual[j]])`, with AVX2 where the CPU has it.
fn epilogue(row: &mut [f32], bias: f32, act: Act, residual: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { epilogue_avx2(row, bias, act, residual) };
        return;
    }
    epilogue_body(row, bias, act, residual);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn epilogue_avx2(row: &mut [f32], bias: f32, act: Act, residual: Option<&[f32]>) {
    epilogue_body(row, bias, act, residual);
}

#[inline(always)]
fn epilogue_body(row: &mut [f32], bias: f32, act: Act, residual: Option<&[f32]>) {
    match residual {
        Some(r) => {
            for (v, &rv) in row.iter_mut().zip(r) {
                *v = activate(*v + bias + rv, act);
            }
        }
        None => {
            for v in row.iter_mut() {
                *v = activate(*v + bias, act);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use patchcore_testkit::lcg_matrix;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        lcg_matrix(1, n, seed).into_raw_vec_and_offset().0
    }

    /// burn's conv2d + activation on flex: the reference.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &HostMap,
        w: &[f32],
        b: &[f32],
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        pads: [(usize, usize); 2],
        act: Act,
    ) -> Vec<f32> {
        let dev = Device::flex();
        // burn pads symmetrically; asymmetric SAME padding is applied by hand first.
        let [(pt, pb), (pl, pr)] = pads;
        let (hp, wp) = (x.h + pt + pb, x.w + pl + pr);
        let mut padded = vec![0f32; x.n * x.c * hp * wp];
        for nc in 0..x.n * x.c {
            for y in 0..x.h {
                for xx in 0..x.w {
                    padded[nc * hp * wp + (y + pt) * wp + xx + pl] =
                        x.data[nc * x.h * x.w + y * x.w + xx];
                }
            }
        }
        let xt = Tensor::<4>::from_data(TensorData::new(padded, [x.n, x.c, hp, wp]), &dev);
        let wt = Tensor::<4>::from_data(
            TensorData::new(w.to_vec(), [cout, x.c / groups, k, k]),
            &dev,
        );
        let bt = Tensor::<1>::from_data(TensorData::new(b.to_vec(), [cout]), &dev);
        let y = conv2d(
            xt,
            wt,
            Some(bt),
            ConvOptions::new([stride, stride], [0, 0], [1, 1], groups),
        );
        let y = match act {
            Act::None => y,
            Act::Relu => burn::tensor::activation::relu(y),
            Act::Relu6 => y.clamp(0.0, 6.0),
        };
        y.into_data().try_into_vec::<f32>().unwrap()
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn depthwise_matches_burn_for_every_stride_kernel_and_padding() {
        for (k, s, h, w) in [
            (3, 1, 9, 7),
            (3, 2, 10, 10),
            (5, 2, 11, 13),
            (5, 1, 6, 6),
            (3, 2, 112, 112),
        ] {
            for padding in [PaddingMode::Same, PaddingMode::Symmetric] {
                let c = 5;
                let x = HostMap {
                    data: values(2 * c * h * w, 1).iter().map(|v| v * 8.0).collect(),
                    n: 2,
                    c,
                    h,
                    w,
                };
                let wts = values(c * k * k, 2);
                let b = values(c, 3);
                let conv =
                    HostConv::new(wts.clone(), b.clone(), c, c, k, s, c, Act::Relu6).unwrap();
                let got = conv.depthwise(&x, padding).unwrap();
                let want = reference(
                    &x,
                    &wts,
                    &b,
                    c,
                    k,
                    s,
                    c,
                    [pads(padding, k, s, h), pads(padding, k, s, w)],
                    Act::Relu6,
                );
                assert_eq!(
                    got.data.len(),
                    want.len(),
                    "k {k} s {s} {h}x{w} {padding:?}"
                );
                let err = max_rel(&got.data, &want);
                assert!(err < 1e-5, "k {k} s {s} {h}x{w} {padding:?}: {err}");
            }
        }
    }

    #[test]
    fn pointwise_matches_burn_with_bias_activation_and_residual() {
        for (cin, cout, h, w, act) in [
            (16, 96, 13, 11, Act::Relu6),
            (40, 24, 28, 28, Act::None),
            (7, 9, 3, 50, Act::Relu),
        ] {
            let x = HostMap {
                data: values(2 * cin * h * w, 4),
                n: 2,
                c: cin,
                h,
                w,
            };
            let wts = values(cout * cin, 5);
            let b = values(cout, 6);
            let conv = HostConv::new(wts.clone(), b.clone(), cin, cout, 1, 1, 1, act).unwrap();
            let want = reference(&x, &wts, &b, cout, 1, 1, 1, [(0, 0), (0, 0)], act);
            let got = conv.pointwise(&x, None).unwrap();
            assert!(max_rel(&got.data, &want) < 1e-5, "{cin}->{cout} {h}x{w}");
            let res = HostMap {
                data: values(2 * cout * h * w, 7),
                n: 2,
                c: cout,
                h,
                w,
            };
            let got = conv.pointwise(&x, Some(&res)).unwrap();
            let linear = reference(&x, &wts, &b, cout, 1, 1, 1, [(0, 0), (0, 0)], Act::None);
            let want_res: Vec<f32> = linear
                .iter()
                .zip(&res.data)
                .map(|(a, r)| activate(a + r, act))
                .collect();
            assert!(
                max_rel(&got.data, &want_res) < 1e-5,
                "{cin}->{cout} with residual"
            );
            // The dense path gives the same.
            let dense = conv.conv(&x, PaddingMode::Symmetric, Some(&res)).unwrap();
            assert!(
                max_rel(&dense.data, &want_res) < 1e-5,
                "{cin}->{cout} dense path"
            );
        }
    }

    #[test]
    fn dense_conv_matches_burn_for_resnet_shapes() {
        // (cin, cout, k, stride, h, w): 3x3 and 1x1 at strides 1 and 2, the 7x7 stem, odd sizes.
        for (cin, cout, k, s, h, w) in [
            (6, 8, 3, 1, 9, 11),
            (6, 8, 3, 2, 10, 10),
            (5, 7, 1, 2, 9, 9),
            (3, 4, 7, 2, 16, 13),
            (4, 4, 3, 2, 3, 3),
        ] {
            let x = HostMap {
                data: values(2 * cin * h * w, 8),
                n: 2,
                c: cin,
                h,
                w,
            };
            let wts = values(cout * cin * k * k, 9);
            let b = values(cout, 10);
            let conv =
                HostConv::new(wts.clone(), b.clone(), cin, cout, k, s, 1, Act::Relu).unwrap();
            let got = conv.conv(&x, PaddingMode::Symmetric, None).unwrap();
            let p = (k / 2, k / 2);
            let want = reference(&x, &wts, &b, cout, k, s, 1, [p, p], Act::Relu);
            assert_eq!(
                got.data.len(),
                want.len(),
                "{cin}->{cout} k{k} s{s} {h}x{w}"
            );
            assert!(
                max_rel(&got.data, &want) < 1e-5,
                "{cin}->{cout} k{k} s{s} {h}x{w}"
            );
            let res = HostMap {
                data: values(got.data.len(), 11),
                ..got.clone()
            };
            let with_res = conv.conv(&x, PaddingMode::Symmetric, Some(&res)).unwrap();
            let linear = reference(&x, &wts, &b, cout, k, s, 1, [p, p], Act::None);
            let want: Vec<f32> = linear
                .iter()
                .zip(&res.data)
                .map(|(a, r)| activate(a + r, Act::Relu))
                .collect();
            assert!(max_rel(&with_res.data, &want) < 1e-5, "residual k{k} s{s}");
            assert!(conv.conv(&x, PaddingMode::Symmetric, Some(&x)).is_err());
        }
    }

    #[test]
    fn max_pool_matches_burn() {
        use burn::tensor::module::max_pool2d;
        use burn::tensor::ops::MaxPoolOptions;
        for (h, w) in [(8, 8), (7, 9), (112, 112)] {
            let x = HostMap {
                data: values(2 * 3 * h * w, 12),
                n: 2,
                c: 3,
                h,
                w,
            };
            let got = max_pool_3x3_s2(&x);
            let want = max_pool2d(
                x.to_tensor(&Device::flex()),
                MaxPoolOptions::new([3, 3])
                    .with_stride([2, 2])
                    .with_padding([1, 1]),
            );
            assert_eq!(want.dims(), [2, 3, got.h, got.w], "{h}x{w}");
            assert_eq!(
                got.data,
                want.into_data().try_into_vec::<f32>().unwrap(),
                "{h}x{w}"
            );
        }
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors() {
        // Grouped (not depthwise) convolutions are not covered.
        assert!(HostConv::new(vec![0.0; 18], vec![0.0; 2], 4, 2, 3, 1, 2, Act::None).is_err());
        // A 3x3 convolution has no pointwise path.
        let c3 = HostConv::new(vec![0.0; 27], vec![0.0; 1], 3, 1, 3, 1, 1, Act::None).unwrap();
        let x3 = HostMap {
            data: vec![0.0; 3 * 16],
            n: 1,
            c: 3,
            h: 4,
            w: 4,
        };
        assert!(c3.pointwise(&x3, None).is_err());
        let conv = HostConv::new(vec![0.0; 6], vec![0.0; 2], 3, 2, 1, 1, 1, Act::None).unwrap();
        let x = HostMap {
            data: vec![0.0; 4 * 4],
            n: 1,
            c: 4,
            h: 2,
            w: 2,
        };
        assert!(conv.pointwise(&x, None).is_err());
    }

    #[test]
    fn activation_passes_nan_through() {
        assert!(activate(f32::NAN, Act::Relu6).is_nan());
        assert!(activate(f32::NAN, Act::Relu).is_nan());
        assert_eq!(activate(7.0, Act::Relu6), 6.0);
        assert_eq!(activate(-1.0, Act::Relu6), 0.0);
    }
}
