//! The gRPC client path. Without a server: an unreachable address and one that never answers
//! give `Error::Unavailable` within the deadline, and the index connects later. With a real
//! Qdrant (`PATCHCORE_QDRANT_URL=http://host:6334`, run with `--run-ignored all`): the
//! contract against the exact index and the collection life cycle (docs/SCALE_OUT.md).
#![cfg(feature = "server")]

use std::time::{Duration, Instant};

use ndarray::Array2;
use patchcore_core::Error;
use patchcore_nn::{ExactIndex, IndexBuilder, NearestNeighborIndex};
use patchcore_qdrant::{CollectionState, QdrantBuilder, QdrantParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rows: usize, dim: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, dim), |_| rng.random_range(-1.0f32..1.0))
}

fn server(url: &str, timeout_ms: u64, collection: Option<String>) -> QdrantBuilder {
    QdrantBuilder::from_params(&QdrantParams {
        url: Some(url.into()),
        timeout_ms,
        collection,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn an_unreachable_server_is_unavailable_and_connected_to_later() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = server(&format!("http://127.0.0.1:{port}"), 2000, None);
    let bank = random(20, 4, 1);
    let st = b.status(bank.view()).unwrap();
    assert!(
        matches!(st.state, CollectionState::Unreachable(_)),
        "{st:?}"
    );
    // Building succeeds (a station starts while the cluster is down) ...
    let index = b.build(bank.clone()).unwrap();
    // ... and searching says what is wrong.
    match index.search(random(3, 4, 2).view(), 1).err().unwrap() {
        Error::Unavailable { service, .. } => assert!(service.contains(&port.to_string())),
        e => panic!("{e}"),
    }
    assert!(matches!(
        b.push(bank).err().unwrap(),
        Error::Unavailable { .. }
    ));
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts connections and reads nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().flatten() {
            open.push(s);
        }
    });
    let b = server(&format!("http://127.0.0.1:{port}"), 500, None);
    let started = Instant::now();
    let e = b.push(random(10, 4, 3)).err().unwrap();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

fn real_server() -> String {
    std::env::var("PATCHCORE_QDRANT_URL").expect(
        "this test needs a Qdrant server: set PATCHCORE_QDRANT_URL=http://host:6334 \
         (docs/SCALE_OUT.md)",
    )
}

#[test]
#[ignore = "needs a Qdrant server: PATCHCORE_QDRANT_URL=http://host:6334, --run-ignored all"]
fn real_server_same_neighbours_as_the_exact_index() {
    let url = real_server();
    let b = server(&url, 30_000, None);
    for (rows, dim, seed) in [(1, 3, 1), (300, 128, 2), (200, 1536, 3)] {
        let bank = random(rows, dim, seed);
        let queries = random(784.min(50), dim, seed + 100);
        let exact = ExactIndex::new(bank.clone()).unwrap();
        let index = b.build(bank).unwrap();
        for k in [1, 3, 9] {
            let want = exact.search(queries.view(), k).unwrap();
            let got = index.search(queries.view(), k).unwrap();
            assert_eq!(got.indices.dim(), want.indices.dim());
            for (g, w) in got.distances.iter().zip(want.distances.iter()) {
                assert!((g - w).abs() <= 1e-4 * (1.0 + w), "{g} vs {w}");
            }
        }
    }
}

#[test]
#[ignore = "needs a Qdrant server: PATCHCORE_QDRANT_URL=http://host:6334, --run-ignored all"]
fn real_server_reuses_and_refuses() {
    let url = real_server();
    let tag = format!("patchcore-test-{}", std::process::id());
    let a = random(100, 8, 5);
    let b1 = server(&url, 30_000, Some(tag.clone()));
    let (_, before) = b1.push(a.clone()).unwrap();
    assert_eq!(before, CollectionState::Missing);
    let b2 = server(&url, 30_000, Some(tag.clone()));
    assert_eq!(b2.push(a).unwrap().1, CollectionState::Complete);
    match b2.build(random(100, 8, 6)).err().unwrap() {
        Error::Config { key, .. } => assert_eq!(key, "nn.collection"),
        e => panic!("{e}"),
    }
}
