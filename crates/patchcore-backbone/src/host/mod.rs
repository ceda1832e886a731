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

// The GEMMs go through the `gemm` crate's raw-pointer API: the three items that call it allow
// unsafe code (item by item), every unsafe block says why it is sound. The AVX2 paths come
// from `patchcore_core::multiversion!`.

use burn::tensor::{Device, Tensor, TensorData};
use ndarray::{ArrayViewMut2, Axis};
use patchcore_core::{Error, Result};
use rayon::prelude::*;

use crate::layers::{Act, ConvBn, PaddingMode, pads};

mod depthwise;

use depthwise::{DwGeometry, LANES, MAX_TAPS, depthwise_plane};

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
    #[allow(unsafe_code)] // raw-pointer GEMM (see the SAFETY comments)
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
        // The unfolded input: a recycled buffer (im2col writes every element, so it is neither
        // zeroed nor freed between layers).
        let mut col_buf = if direct {
            Vec::new()
        } else {
            take_scratch(rows * hw_out)
        };
        let col = &mut col_buf[..if direct { 0 } else { rows * hw_out }];
        let total = x.n * cout * hw_out;
        // Written whole by the GEMMs (which never read it) before anything reads it.
        let mut out: Vec<f32> = Vec::with_capacity(total);
        for img in 0..x.n {
            let src = &x.data[img * cin * h * w..(img + 1) * cin * h * w];
            if !direct {
                im2col(src, col, (h, w), (ho, wo), (k, s), (pt, pl));
            }
            let rhs: &[f32] = if direct { src } else { col };
            // SAFETY: this image's cout x hw_out block of `out`'s capacity, row-major; the
            // weights are cout x rows, rhs rows x hw_out, all with the strides passed. The GEMM
            // writes every element of the block without reading it, so the slice made from it
            // afterwards is initialised.
            let dst = unsafe {
                let ptr = out.as_mut_ptr().add(img * cout * hw_out);
                weights_times(
                    (cout, hw_out, rows),
                    ptr,
                    hw_out,
                    self.weight.as_ptr(),
                    rhs.as_ptr(),
                    hw_out,
                    gemm::Parallelism::Rayon(0),
                );
                std::slice::from_raw_parts_mut(ptr, cout * hw_out)
            };
            dst.par_chunks_mut(hw_out).enumerate().for_each(|(o, row)| {
                let res = residual
                    .map(|r| &r.data[(img * cout + o) * hw_out..(img * cout + o + 1) * hw_out]);
                epilogue(row, self.bias[o], self.act, res);
            });
        }
        // SAFETY: every image's block, together all `total` elements, was written above.
        unsafe { out.set_len(total) };
        put_scratch(col_buf);
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
    #[allow(unsafe_code)] // raw-pointer GEMM (see the SAFETY comments)
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
        let total = x.n * cout * hw;
        // Written whole by the GEMMs (which never read it) before the epilogues read it.
        let mut out: Vec<f32> = Vec::with_capacity(total);
        let threads = rayon::current_num_threads().max(1);
        // Column blocks: a few per thread; the cout x block tile stays in L2 for the epilogue.
        let block = (hw.div_ceil(threads * 2).div_ceil(16) * 16).clamp(64, 1024);
        // Each image's output is a cout x hw matrix; its column blocks are disjoint strided
        // views, split safely by ndarray and processed in parallel.
        out.spare_capacity_mut()[..total]
            .par_chunks_mut(cout * hw)
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
                        // of `src` (row stride hw) starting at column c0. The GEMM writes
                        // every element of the tile without reading it.
                        unsafe {
                            weights_times(
                                (cout, nc, cin),
                                tile.as_mut_ptr().cast::<f32>(),
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
                            // SAFETY: the GEMM above initialised the whole tile, this row
                            // included; MaybeUninit<f32> has f32's layout.
                            let row = unsafe {
                                std::slice::from_raw_parts_mut(row.as_mut_ptr().cast::<f32>(), nc)
                            };
                            let res = residual.map(|r| &r.data[base + o * hw..base + o * hw + nc]);
                            epilogue(row, self.bias[o], self.act, res);
                        }
                    });
            });
        // SAFETY: the tiles cover every image's cout x hw block: all `total` elements are
        // written.
        unsafe { out.set_len(total) };
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

thread_local! {
    /// The im2col buffer of this thread's last dense convolution, kept for the next one.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A buffer of at least `len` values (contents unspecified: the caller writes before reading),
/// this thread's recycled one when there is one. Taken, not borrowed: a convolution that rayon
/// starts on this thread while another waits gets its own.
fn take_scratch(len: usize) -> Vec<f32> {
    let mut v = SCRATCH.with(|s| s.take());
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

/// Gives a buffer back for the next [`take_scratch`] on this thread (the larger one is kept).
fn put_scratch(v: Vec<f32>) {
    SCRATCH.with(|s| {
        let cur = s.take();
        s.set(if cur.len() > v.len() { cur } else { v });
    });
}

/// `dst = w · rhs` for row-major matrices: `w` is `m x k` (contiguous), `rhs` is `k x n`
/// with row stride `rhs_rs`, `dst` is `m x n` with row stride `dst_rs`, written without being
/// read.
///
/// # Safety
/// The pointers must address matrices of those shapes and strides; no other thread may touch
/// the elements of `dst` written here.
#[allow(unsafe_code)] // raw-pointer GEMM (see the SAFETY comments)
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

patchcore_core::multiversion! {
    /// `row[j] = act(row[j] + bias [+ residual[j]])`, with AVX2 where the CPU has it.
    fn epilogue(row: &mut [f32], bias: f32, act: Act, residual: Option<&[f32]>) {
        epilogue_body(row, bias, act, residual);
    }
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

/// Unfolds one image `src` (`[cin, h, w]`) into `col` (`[cin*k*k, ho*wo]`): row `(ci, ky, kx)`
/// holds, for each output position, the input value under that kernel tap (zero where the tap
/// falls in the padding `pt` rows above / `pl` columns left of the image). Writes every element.
fn im2col(
    src: &[f32],
    col: &mut [f32],
    (h, w): (usize, usize),
    (ho, wo): (usize, usize),
    (k, s): (usize, usize),
    (pt, pl): (usize, usize),
) {
    col.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(r, row)| {
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

#[cfg(test)]
mod tests;
