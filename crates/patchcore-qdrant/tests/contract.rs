//! The index contract against the in-process engine (qdrant-edge): the same neighbours as
//! the exact index, the collection life cycle (create, reuse, refuse) and bad input.
//! `cargo test -p patchcore-qdrant --features embedded` (run by `.ci/run`).
#![cfg(feature = "embedded")]

use ndarray::{Array2, s};
use patchcore_core::Error;
use patchcore_nn::{ExactIndex, IndexBuilder, NearestNeighborIndex};
use patchcore_qdrant::{CollectionState, QdrantBuilder, QdrantParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, dim), |_| rng.random_range(-1.0f32..1.0))
}

fn builder(root: &std::path::Path, collection: Option<&str>) -> QdrantBuilder {
    QdrantBuilder::from_params(&QdrantParams {
        embedded_path: Some(root.to_path_buf()),
        collection: collection.map(str::to_owned),
        upload_batch: 64,
        ..Default::default()
    })
    .unwrap()
}

/// Same neighbours as the exact GEMM index: distances within float rounding, indices equal
/// wherever the next distance is not within that rounding (a near-tie may swap).
fn assert_same(got: &patchcore_nn::Neighbors, want: &patchcore_nn::Neighbors, what: &str) {
    assert_eq!(got.indices.dim(), want.indices.dim(), "{what}");
    let tol = |d: f32| 1e-4 * (1.0 + d);
    for q in 0..want.indices.nrows() {
        for j in 0..want.indices.ncols() {
            let (g, w) = (got.distances[[q, j]], want.distances[[q, j]]);
            assert!((g - w).abs() <= tol(w), "{what}: q{q} j{j}: {g} vs {w}");
            let near_tie = (j > 0 && (w - want.distances[[q, j - 1]]).abs() <= tol(w))
                || (j + 1 < want.indices.ncols()
                    && (want.distances[[q, j + 1]] - w).abs() <= tol(w));
            if !near_tie {
                assert_eq!(
                    got.indices[[q, j]],
                    want.indices[[q, j]],
                    "{what}: q{q} j{j}"
                );
            }
        }
    }
}

#[test]
fn same_neighbours_as_the_exact_index() {
    let root = tempfile::tempdir().unwrap();
    let b = builder(root.path(), None);
    let mut seed = 0;
    for (rows, dim) in [(1, 3), (2, 1), (9, 8), (300, 128), (120, 1536)] {
        seed += 1;
        let bank = random(rows, dim, seed);
        let queries = random(40, dim, seed + 1000);
        let exact = ExactIndex::new(bank.clone()).unwrap();
        let index = b.build(bank).unwrap();
        assert_eq!(
            (index.len(), index.dim(), index.name()),
            (rows, dim, "qdrant")
        );
        for k in 1..=9 {
            let want = exact.search(queries.view(), k).unwrap();
            let got = index.search(queries.view(), k).unwrap();
            assert_eq!(got.indices.ncols(), k.min(rows), "k clamped to the bank");
            assert_same(&got, &want, &format!("{rows}x{dim} k={k}"));
        }
        // A bank row is its own nearest neighbour at distance 0.
        let own = index
            .search(exact_rows(index.as_ref(), rows.min(5)).view(), 1)
            .unwrap();
        for (q, i) in own.indices.column(0).iter().enumerate() {
            assert_eq!(*i, q);
            assert!(own.distances[[q, 0]] < 1e-3);
        }
    }
}

fn exact_rows(index: &dyn NearestNeighborIndex, n: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, index.dim()), |(i, j)| index.row(i)[j])
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let b = builder(root.path(), None);
    assert!(matches!(
        b.build(Array2::zeros((0, 4))).err().unwrap(),
        Error::InvalidArgument(_)
    ));
    let mut nan = random(4, 3, 1);
    nan[[2, 1]] = f32::NAN;
    assert!(matches!(b.build(nan).err().unwrap(), Error::NonFinite(_)));
    let index = b.build(random(10, 6, 2)).unwrap();
    let wide = random(3, 7, 3);
    assert!(matches!(
        index.search(wide.view(), 1).err().unwrap(),
        Error::Shape(_)
    ));
    assert!(index.search(random(3, 6, 4).view(), 0).is_err());
    let none = index.search(random(0, 6, 4).view(), 3).unwrap();
    assert_eq!(none.indices.dim(), (0, 3));
}

#[test]
fn a_collection_is_created_once_and_reused() {
    let root = tempfile::tempdir().unwrap();
    let bank = random(200, 16, 7);
    let queries = random(20, 16, 8);
    let first = builder(root.path(), None);
    assert_eq!(
        first.status(bank.view()).unwrap().state,
        CollectionState::Missing
    );
    let (index, before) = first.push(bank.clone()).unwrap();
    assert_eq!(before, CollectionState::Missing);
    let want = index.search(queries.view(), 3).unwrap();
    let loc = index.location().unwrap();
    assert!(loc.contains(index.collection()), "{loc}");
    assert!(index.collection().starts_with("patchcore-"));
    drop(index);
    drop(first);
    // Another station (a new builder, the shard reopened from disk): nothing to upload.
    let second = builder(root.path(), None);
    let st = second.status(bank.view()).unwrap();
    assert_eq!(st.state, CollectionState::Complete);
    assert_eq!((st.rows, st.dim), (200, 16));
    let (again, before) = second.push(bank.clone()).unwrap();
    assert_eq!(before, CollectionState::Complete);
    assert_eq!(again.search(queries.view(), 3).unwrap(), want);
    // Another bank gets another collection by default.
    let other = random(200, 16, 9);
    assert_eq!(
        second.status(other.view()).unwrap().state,
        CollectionState::Missing
    );
}

#[test]
fn a_named_collection_holding_another_bank_is_refused_not_overwritten() {
    let root = tempfile::tempdir().unwrap();
    let a = random(50, 8, 1);
    let b = random(50, 8, 2);
    let named = builder(root.path(), Some("line-3"));
    let ia = named.build(a.clone()).unwrap();
    assert_eq!(ia.location().unwrap().rsplit(' ').next(), Some("line-3"));
    match named.build(b.clone()).err().unwrap() {
        Error::Config { key, message } => {
            assert_eq!(key, "nn.collection");
            assert!(message.contains("another bank"), "{message}");
        }
        e => panic!("{e}"),
    }
    assert_eq!(
        named.status(a.view()).unwrap().state,
        CollectionState::Complete
    );
    let wider = random(50, 9, 3);
    assert!(matches!(
        named.status(wider.view()).unwrap().state,
        CollectionState::Conflict(_)
    ));
    // The first bank still answers as before.
    let q = a.slice(s![0..5, ..]).to_owned();
    let nn = ia.search(q.view(), 1).unwrap();
    assert_eq!(nn.indices.column(0).to_vec(), vec![0, 1, 2, 3, 4]);
}

#[test]
fn hnsw_collections_answer_k_neighbours() {
    let root = tempfile::tempdir().unwrap();
    let b = QdrantBuilder::from_params(&QdrantParams {
        embedded_path: Some(root.path().to_path_buf()),
        exact: false,
        m: 8,
        ef: 64,
        ..Default::default()
    })
    .unwrap();
    let bank = random(500, 32, 11);
    let queries = random(30, 32, 12);
    let index = b.build(bank.clone()).unwrap();
    let exact = ExactIndex::new(bank).unwrap();
    let got = index.search(queries.view(), 5).unwrap();
    assert_eq!(got.indices.dim(), (30, 5));
    let recall = patchcore_nn::recall_at_1(&exact, index.as_ref(), queries.view()).unwrap();
    assert!(recall >= 0.9, "recall@1 {recall}");
}
