//! The host kernels against burn's convolution and pooling.

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
            let conv = HostConv::new(wts.clone(), b.clone(), c, c, k, s, c, Act::Relu6).unwrap();
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
        let conv = HostConv::new(wts.clone(), b.clone(), cin, cout, k, s, 1, Act::Relu).unwrap();
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

/// Runs `f` on a one-thread rayon pool, dispatched and then with every multiversioned kernel
/// on its baseline build (on one worker thread, [`patchcore_core::dispatch::on_baseline`]
/// covers the layer's parallel loops too); both outputs' bits.
fn both_builds(f: impl Fn() -> HostMap + Send + Sync) -> (Vec<u32>, Vec<u32>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let bits = |m: HostMap| m.data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let a = pool.install(&f);
    let b = pool.install(|| patchcore_core::dispatch::on_baseline(&f));
    (bits(a), bits(b))
}

#[test]
fn every_kernel_gives_the_same_bits_on_both_builds() {
    patchcore_core::dispatch::both_builds_differ();
    // depthwise_plane: every kernel size, stride and padding of the Lite backbones.
    for (k, s, h, w) in [(3, 1, 9, 7), (3, 2, 10, 10), (5, 2, 11, 13), (5, 1, 17, 6)] {
        for padding in [PaddingMode::Same, PaddingMode::Symmetric] {
            for act in [Act::Relu6, Act::None, Act::Relu] {
                let c = 5;
                let x = HostMap {
                    data: values(2 * c * h * w, 11).iter().map(|v| v * 8.0).collect(),
                    n: 2,
                    c,
                    h,
                    w,
                };
                let conv = HostConv::new(values(c * k * k, 12), values(c, 13), c, c, k, s, c, act)
                    .unwrap();
                let (a, b) = both_builds(|| conv.depthwise(&x, padding).unwrap());
                assert_eq!(a, b, "depthwise k {k} s {s} {h}x{w} {padding:?} {act:?}");
            }
        }
    }
    // epilogue: after the pointwise and the dense GEMMs, with and without a residual.
    for act in [Act::Relu6, Act::None, Act::Relu] {
        let (cin, cout, h, w) = (9, 12, 7, 13);
        let x = HostMap {
            data: values(2 * cin * h * w, 14),
            n: 2,
            c: cin,
            h,
            w,
        };
        let res = HostMap {
            data: values(2 * cout * h * w, 15),
            n: 2,
            c: cout,
            h,
            w,
        };
        let pw = HostConv::new(
            values(cout * cin, 16),
            values(cout, 17),
            cin,
            cout,
            1,
            1,
            1,
            act,
        )
        .unwrap();
        for r in [None, Some(&res)] {
            let (a, b) = both_builds(|| pw.pointwise(&x, r).unwrap());
            assert_eq!(a, b, "pointwise {act:?} residual {}", r.is_some());
        }
        let dense = HostConv::new(
            values(cout * cin * 9, 18),
            values(cout, 19),
            cin,
            cout,
            3,
            1,
            1,
            act,
        )
        .unwrap();
        for r in [None, Some(&res)] {
            let (a, b) = both_builds(|| dense.conv(&x, PaddingMode::Symmetric, r).unwrap());
            assert_eq!(a, b, "dense 3x3 {act:?} residual {}", r.is_some());
        }
    }
}
