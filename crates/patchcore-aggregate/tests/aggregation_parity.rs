//! anomalib and official parity of the aggregation (`fixtures/aggregation.safetensors`), on the
//! host arrays the aggregators take (no tensor framework).

use ndarray::{Array4, Axis};
use patchcore_aggregate::{FeatureAggregator, LocallyAware, Official};
use patchcore_testkit::fixtures::Fixture;

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn load(fx: &Fixture, name: &str) -> Array4<f32> {
    let a = fx.f32(name).unwrap();
    let s: [usize; 4] = a.shape.clone().try_into().expect("a 4-d tensor");
    Array4::from_shape_vec(s, a.values).unwrap()
}

fn flat(a: &Array4<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

#[test]
fn anomalib_variant_matches() {
    let fx = Fixture::open("aggregation.safetensors").expect("fixture");
    let agg = LocallyAware::default();
    let b2 = load(&fx, "input.blocks.2");
    let b4 = load(&fx, "input.blocks.4");
    let pooled = agg.pool(&b2);
    let expect = fx.f32("anomalib.pooled.blocks.2").unwrap().values;
    assert!(max_abs(&flat(&pooled), &expect) <= 1e-5, "pooled blocks.2");
    let maps = [b2, b4];
    let map = agg.embedding_map(&maps).unwrap();
    let expect = fx.f32("anomalib.embedding_map").unwrap();
    assert_eq!(map.shape().to_vec(), expect.shape);
    let d = max_abs(&flat(&map), &expect.values);
    assert!(d <= 1e-5, "embedding map max|a-b| = {d:e}");
    let pf = agg.aggregate(&maps).unwrap();
    assert_eq!((pf.batch, pf.grid_h, pf.grid_w, pf.dim()), (1, 28, 28, 152));
    let expect = fx.f32("anomalib.embedding").unwrap();
    let got: Vec<f32> = pf.features.iter().copied().collect();
    let d = max_abs(&got, &expect.values);
    assert!(d <= 1e-5, "embedding rows max|a-b| = {d:e}");
    assert_eq!(agg.output_dim(&[40, 112]), 152);
    // The rows are the embedding map's cells: row (y * 28 + x) holds map[0, :, y, x].
    let cell = map.index_axis(Axis(0), 0);
    for (r, row) in pf.features.rows().into_iter().enumerate().step_by(97) {
        let col: Vec<f32> = cell.slice(ndarray::s![.., r / 28, r % 28]).to_vec();
        assert_eq!(row.to_vec(), col, "row {r}");
    }
}

#[test]
fn official_variant_matches() {
    let fx = Fixture::open("aggregation.safetensors").expect("fixture");
    let agg = Official::default();
    let maps = [load(&fx, "input.blocks.2"), load(&fx, "input.blocks.4")];
    // Steps 1-2: unfolded (and, for blocks.4, resized) patches of rows 0..63.
    let planes = agg.patch_planes(&maps).unwrap();
    for (l, plane) in planes.into_iter().enumerate() {
        let (_, c, h, w) = plane.dim();
        let rows: Vec<f32> = plane
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .into_shape_with_order((h * w, c))
            .unwrap()
            .iter()
            .copied()
            .collect();
        let expect = fx.f32(&format!("official.unfolded.{l}.rows0_63")).unwrap();
        let d = max_abs(&rows[..64 * c], &expect.values);
        assert!(d <= 1e-5, "unfolded layer {l} max|a-b| = {d:e}");
    }
    // Step 3.
    let (layers, _) = agg.per_layer(&maps).unwrap();
    for (l, rows) in layers.iter().enumerate() {
        let expect = fx.f32(&format!("official.per_layer.{l}.rows0_63")).unwrap();
        let got: Vec<f32> = rows
            .rows()
            .into_iter()
            .take(64)
            .flat_map(|r| r.to_vec())
            .collect();
        let d = max_abs(&got, &expect.values);
        assert!(d <= 1e-5, "per-layer {l} max|a-b| = {d:e}");
    }
    // Step 4: the final features.
    let pf = agg.aggregate(&maps).unwrap();
    assert_eq!((pf.grid_h, pf.grid_w, pf.dim()), (28, 28, 1024));
    let got: Vec<f32> = pf.features.iter().copied().collect();
    let d = max_abs(&got, &fx.f32("official.embedding").unwrap().values);
    assert!(d <= 1e-5, "official embedding max|a-b| = {d:e}");
}

#[test]
fn batches_aggregate_image_by_image() {
    // Two images in one batch give the rows of each image alone, in order.
    let fx = Fixture::open("aggregation.safetensors").expect("fixture");
    let b2 = load(&fx, "input.blocks.2");
    let b4 = load(&fx, "input.blocks.4");
    let twice = |m: &Array4<f32>| {
        let neg = m.mapv(|v| -v);
        ndarray::concatenate(Axis(0), &[m.view(), neg.view()]).unwrap()
    };
    for agg in [
        Box::new(LocallyAware::default()) as Box<dyn FeatureAggregator>,
        Box::new(Official::default()),
    ] {
        let one = agg.aggregate(&[b2.clone(), b4.clone()]).unwrap();
        let two = agg.aggregate(&[twice(&b2), twice(&b4)]).unwrap();
        assert_eq!(two.batch, 2);
        let n = one.features.nrows();
        assert_eq!(two.features.slice(ndarray::s![..n, ..]), one.features);
        assert_eq!(
            two.features.slice(ndarray::s![n.., ..]),
            one.features.mapv(|v| -v)
        );
    }
}

#[test]
fn bad_maps_are_errors() {
    let agg = LocallyAware::default();
    assert!(agg.aggregate(&[]).is_err());
    let a = Array4::<f32>::zeros((1, 2, 4, 4));
    let b = Array4::<f32>::zeros((2, 2, 2, 2));
    assert!(agg.aggregate(&[a, b]).is_err());
}
