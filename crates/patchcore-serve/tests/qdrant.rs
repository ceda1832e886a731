//! A model whose bank is in Qdrant (`cargo test -p patchcore-serve --features qdrant`, run by
//! `.ci/run`): in-process engine, the same score as the exact index; a server that cannot be
//! reached, 503 `index_unavailable` while the model beside it keeps answering.
#![cfg(feature = "qdrant")]

mod common;

use common::{Fixture, Server, options};
use patchcore_model::model_file;
use patchcore_nn::{IndexParams, QdrantParams};

/// Rewrites a fitted model file to search its bank through Qdrant.
fn to_qdrant(fx: &Fixture, from: &str, to: &str, params: QdrantParams) {
    let (mut header, bank) = model_file::read(&fx.models().join(from)).unwrap();
    header.config.nn = IndexParams::Qdrant(params);
    model_file::write(&fx.models().join(to), &header, &bank).unwrap();
}

#[test]
fn a_qdrant_bank_scores_as_the_exact_one_and_an_unreachable_one_answers_503() {
    let fx = Fixture::new();
    let engine = tempfile::tempdir().unwrap();
    to_qdrant(
        &fx,
        "demo.patchcore",
        "embedded.patchcore",
        QdrantParams {
            embedded_path: Some(engine.path().to_path_buf()),
            ..Default::default()
        },
    );
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    to_qdrant(
        &fx,
        "demo.patchcore",
        "remote.patchcore",
        QdrantParams {
            url: Some(format!("http://127.0.0.1:{port}")),
            timeout_ms: 2000,
            ..Default::default()
        },
    );
    let s = Server::start(options(&fx.models()));
    let listed = s.get("/v1/models").json();
    assert_eq!(listed["models"].as_array().unwrap().len(), 3, "{listed}");
    let img = fx.image(false);
    let exact = s.post("/v1/models/demo/predict", &[], &img);
    assert_eq!(exact.status, 200, "{}", exact.text());
    let embedded = s.post("/v1/models/embedded/predict", &[], &img);
    assert_eq!(embedded.status, 200, "{}", embedded.text());
    let (a, b) = (
        exact.json()["score"].as_f64().unwrap(),
        embedded.json()["score"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{a} vs {b}");
    let down = s.post("/v1/models/remote/predict", &[], &img);
    assert_eq!(down.status, 503, "{}", down.text());
    assert_eq!(down.json()["error"], "index_unavailable", "{}", down.text());
    assert!(down.text().contains(&port.to_string()), "{}", down.text());
    // The others still answer.
    let again = s.post("/v1/models/demo/predict", &[], &img);
    assert_eq!(again.status, 200, "{}", again.text());
}
