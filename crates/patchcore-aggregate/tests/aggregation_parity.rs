//! anomalib parity of the locally aware aggregation (`fixtures/aggregation.safetensors`).

use burn::tensor::{Tensor, TensorData};
use patchcore_aggregate::{FeatureAggregator, LocallyAware};
use patchcore_core::ComputeDevice;
use patchcore_core::fixtures::Fixture;

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
        let dev = device.burn_device();
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
