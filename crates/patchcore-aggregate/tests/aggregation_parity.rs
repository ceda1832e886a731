//! anomalib parity of the locally aware aggregation (`fixtures/aggregation.safetensors`).

use burn::tensor::{Tensor, TensorData};
use patchcore_aggregate::{FeatureAggregator, LocallyAware};
use patchcore_device::ComputeDevice;
use patchcore_testkit::fixtures::Fixture;

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn anomalib_variant_matches_on_every_cpu_backend() {
    let fx = Fixture::open("aggregation.safetensors").expect("fixture");
    for device in ComputeDevice::ALL {
        let dev = device.burn_device().expect("CPU backend");
        let load = |n: &str| {
            let a = fx.f32(n).unwrap();
            Tensor::<4>::from_data(TensorData::new(a.values, a.shape), &dev)
        };
        let agg = LocallyAware::default();
        let b2 = load("input.blocks.2");
        let b4 = load("input.blocks.4");
        let pooled = agg
            .pool(b2.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let expect = fx.f32("anomalib.pooled.blocks.2").unwrap().values;
        assert!(
            max_abs(&pooled, &expect) <= 1e-5,
            "{device}: pooled blocks.2"
        );
        let map = agg.embedding_map(vec![b2.clone(), b4.clone()]).unwrap();
        let expect = fx.f32("anomalib.embedding_map").unwrap();
        assert_eq!(map.dims().to_vec(), expect.shape);
        let d = max_abs(
            &map.into_data().try_into_vec::<f32>().unwrap(),
            &expect.values,
        );
        assert!(d <= 1e-5, "{device}: embedding map max|a-b| = {d:e}");
        let pf = agg.aggregate(vec![b2, b4]).unwrap();
        assert_eq!((pf.batch, pf.grid_h, pf.grid_w, pf.dim()), (1, 28, 28, 152));
        let expect = fx.f32("anomalib.embedding").unwrap();
        let got: Vec<f32> = pf.features.iter().copied().collect();
        let d = max_abs(&got, &expect.values);
        assert!(d <= 1e-5, "{device}: embedding rows max|a-b| = {d:e}");
        assert_eq!(agg.output_dim(&[40, 112]), 152);
    }
}

#[test]
fn official_variant_matches_on_every_cpu_backend() {
    use patchcore_aggregate::Official;
    let fx = Fixture::open("aggregation.safetensors").expect("fixture");
    let agg = Official::default();
    for device in ComputeDevice::ALL {
        let dev = device.burn_device().expect("CPU backend");
        let load = |n: &str| {
            let a = fx.f32(n).unwrap();
            Tensor::<4>::from_data(TensorData::new(a.values, a.shape), &dev)
        };
        let maps = || vec![load("input.blocks.2"), load("input.blocks.4")];
        // Steps 1-2: unfolded (and, for blocks.4, resized) patches of rows 0..63.
        let planes = agg.patch_planes(maps()).unwrap();
        for (l, plane) in planes.into_iter().enumerate() {
            let [_, c, h, w] = plane.dims();
            let rows = plane
                .permute([0, 2, 3, 1])
                .reshape([h * w, c])
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            let expect = fx.f32(&format!("official.unfolded.{l}.rows0_63")).unwrap();
            let d = max_abs(&rows[..64 * c], &expect.values);
            assert!(d <= 1e-5, "{device}: unfolded layer {l} max|a-b| = {d:e}");
        }
        // Step 3.
        let (layers, _) = agg.per_layer(maps()).unwrap();
        for (l, rows) in layers.iter().enumerate() {
            let expect = fx.f32(&format!("official.per_layer.{l}.rows0_63")).unwrap();
            let got: Vec<f32> = rows
                .rows()
                .into_iter()
                .take(64)
                .flat_map(|r| r.to_vec())
                .collect();
            let d = max_abs(&got, &expect.values);
            assert!(d <= 1e-5, "{device}: per-layer {l} max|a-b| = {d:e}");
        }
        // Step 4: the final features.
        let pf = agg.aggregate(maps()).unwrap();
        assert_eq!((pf.grid_h, pf.grid_w, pf.dim()), (28, 28, 1024));
        let got: Vec<f32> = pf.features.iter().copied().collect();
        let d = max_abs(&got, &fx.f32("official.embedding").unwrap().values);
        assert!(d <= 1e-5, "{device}: official embedding max|a-b| = {d:e}");
    }
}

#[test]
fn neighbourhood_sizes_of_the_ablation_are_supported() {
    let dev = ComputeDevice::Flex.burn_device().expect("CPU backend");
    let x = Tensor::<4>::ones([1, 2, 6, 6], &dev);
    for p in [1, 3, 5] {
        let agg = LocallyAware::new(p, None).unwrap();
        let pooled = agg
            .pool(x.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        // Centre cell: a full window of ones; corner: (p/2+1)^2 ones out of p*p (pad counted).
        assert_eq!(pooled[2 * 6 + 2], 1.0);
        let corner = ((p / 2 + 1) * (p / 2 + 1)) as f32 / (p * p) as f32;
        assert!(
            (pooled[0] - corner).abs() < 1e-6,
            "p={p}: corner {} vs {corner}",
            pooled[0]
        );
    }
}
