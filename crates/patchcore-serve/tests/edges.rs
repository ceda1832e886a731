//! The service's edges through real HTTP: slow and stalled clients, shutdown with a stalled
//! client, the decode budget, the framing HTTP refuses, HTTP/2, and micro-batching.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Fixture, Server, options, read_reply};

/// Sends raw bytes on a new connection and reads the answer.
fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> common::Reply {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(bytes).unwrap();
    read_reply(&mut c)
}

/// Opens a connection that announces a large body, sends 1 KB of it and then nothing.
fn slow_upload(addr: std::net::SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
    )
    .unwrap();
    c.write_all(&[0u8; 1024]).unwrap();
    c
}

#[test]
fn slow_uploads_hold_no_queue_slot_and_are_cut_at_the_minimum_rate() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.overrides.queue_capacity = Some(2);
    opts.body_grace = Duration::from_millis(1500);
    let s = Server::start(opts);
    let img = fx.image(true);
    // Many more stalled uploads than the model has slots.
    let mut slow: Vec<TcpStream> = (0..20).map(|_| slow_upload(s.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = s.post("/v1/models/demo/predict", &[], &img);
        assert_eq!(
            r.status,
            200,
            "a valid request beside stalled uploads: {}",
            r.text()
        );
    }
    // After the grace period each stalled upload gets 408 and its connection closes.
    let t = Instant::now();
    for c in slow.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let r = read_reply(c);
        assert_eq!(r.status, 408, "{}", r.text());
        assert!(r.text().contains("bytes/s"), "{}", r.text());
    }
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(
        s.get("/metrics")
            .text()
            .contains("patchcore_errors_total{kind=\"slow_body\"} 20")
    );
}

#[test]
fn slowloris_heads_are_closed_after_the_header_timeout() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.header_timeout = Duration::from_millis(500);
    let s = Server::start(opts);
    let mut conns: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            c.write_all(b"POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nX-Partial: ab")
                .unwrap();
            c
        })
        .collect();
    let t = Instant::now();
    for c in conns.iter_mut() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        // The server closes the connection (with or without a 408 first).
        let _ = c.read_to_end(&mut rest);
    }
    let waited = t.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    // An idle keep-alive connection is closed the same way.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "idle for {:?}",
        t.elapsed()
    );
}

#[test]
fn shutdown_with_a_stalled_client_ends_within_the_drain_timeout() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.drain_timeout = Duration::from_millis(800);
    let mut s = Server::start(opts);
    let mut stalled = TcpStream::connect(s.addr).unwrap();
    stalled
        .write_all(b"POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nX-Partial: ab")
        .unwrap();
    // One half-sent body too.
    let _upload = slow_upload(s.addr);
    std::thread::sleep(Duration::from_millis(200));
    let addr = s.addr;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let t = Instant::now();
    // Joined on another thread, so that a shutdown that never ends fails the test.
    std::thread::spawn(move || {
        s.join();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(4))
        .unwrap_or_else(|_| panic!("no shutdown {:?} after the signal", t.elapsed()));
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
}

#[test]
fn the_decode_budget_refuses_what_it_cannot_hold_and_queues_only_resized_images() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    // 4 MiB: a 1200x1200 RGB image (4.1 MiB decoded) cannot fit; the test images can.
    opts.decode_budget_bytes = 4 << 20;
    let s = Server::start(opts);
    let big = image::RgbImage::from_pixel(1200, 1200, image::Rgb([90, 90, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    big.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let r = s.post("/v1/models/demo/predict", &[], png.get_ref());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("decode budget"), "{}", r.text());
    let r = s.post("/v1/models/demo/predict", &[], &fx.image(true));
    assert_eq!(r.status, 200, "{}", r.text());
    // A large image within the budget is scored as the same image at the model's size.
    let mut opts = options(&fx.models());
    opts.decode_budget_bytes = 64 << 20;
    drop(s);
    let s = Server::start(opts);
    let r = s.post("/v1/models/demo/predict", &[], png.get_ref());
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn framing_the_spec_refuses_is_answered_400_and_http2_gets_goaway() {
    let fx = Fixture::new();
    let s = Server::start(options(&fx.models()));
    let r = raw(
        s.addr,
        b"POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("Content-Length and Transfer-Encoding"),
        "{}",
        r.text()
    );
    let r = raw(
        s.addr,
        b"GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("Host"), "{}", r.text());
    // HTTP/1.0 needs no Host.
    let r = raw(s.addr, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    // HTTP/2 with prior knowledge: SETTINGS, then GOAWAY with HTTP_1_1_REQUIRED (0xd).
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let mut frames = Vec::new();
    let _ = c.read_to_end(&mut frames);
    assert!(frames.len() > 26, "{frames:?}");
    assert_eq!(frames[3], 0x4, "SETTINGS first");
    assert_eq!(frames[12], 0x7, "then GOAWAY");
    assert_eq!(&frames[22..26], &[0, 0, 0, 0xd], "HTTP_1_1_REQUIRED");
    assert!(String::from_utf8_lossy(&frames[26..]).contains("HTTP/1.1"));
    let metrics = s.get("/metrics").text();
    assert!(
        metrics.contains("patchcore_errors_total{kind=\"bad_framing\"} 2"),
        "{metrics}"
    );
}

#[test]
fn concurrent_requests_are_batched_with_the_scores_of_single_requests() {
    let fx = Fixture::new();
    let images: Vec<Vec<u8>> = vec![fx.image(true), fx.image(false)];
    let single = {
        let mut opts = options(&fx.models());
        opts.overrides.batch_window_ms = Some(0);
        let s = Server::start(opts);
        images
            .iter()
            .map(|img| {
                let j = s.post("/v1/models/demo/predict", &[], img).json();
                assert_eq!(j["batch_size"], 1);
                j["score"].as_f64().unwrap()
            })
            .collect::<Vec<f64>>()
    };
    let mut opts = options(&fx.models());
    opts.overrides.batch_window_ms = Some(1000);
    let s = Server::start(opts);
    let addr = s.addr;
    let replies: Vec<(usize, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let img = images[i % 2].clone();
                scope.spawn(move || {
                    let r = common::request(addr, "POST", "/v1/models/demo/predict", &[], &img);
                    assert_eq!(r.status, 200, "{}", r.text());
                    (i % 2, r.json())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let largest = replies
        .iter()
        .map(|(_, j)| j["batch_size"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(largest > 1, "no reply came from a batch: {replies:?}");
    for (which, j) in &replies {
        let score = j["score"].as_f64().unwrap();
        assert_eq!(
            score, single[*which],
            "batch of {} vs one at a time",
            j["batch_size"]
        );
    }
}

#[test]
fn a_tiled_model_answers_full_size_heatmaps_and_refuses_other_sizes() {
    let fx = Fixture::new();
    let mut cfg = patchcore_model::Config::default_experiment().unwrap();
    cfg.tiling.mode = patchcore_data::TilingMode::PerPosition;
    cfg.tiling.tile = 128;
    cfg.tiling.stride = 96;
    fx.fit_config_into("tiled.patchcore", 0.05, cfg);
    let s = Server::start(options(&fx.models()));
    let listed = s.get("/v1/models").json();
    let tiled = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tiled")
        .unwrap()
        .clone();
    assert_eq!(tiled["tiling"]["mode"], "per_position", "{tiled}");
    assert_eq!(tiled["tiling"]["banks"], 9, "{tiled}");
    // The 256x256 test image: its heatmap has the image's size, not the 224 crop.
    let r = s.post(
        "/v1/models/tiled/predict?heatmap=png",
        &[],
        &fx.image(false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (
            j["heatmap"]["width"].as_u64(),
            j["heatmap"]["height"].as_u64()
        ),
        (Some(256), Some(256))
    );
    // Another size than the per-position banks were fitted at: 422 before decoding.
    let other = image::RgbImage::from_pixel(300, 200, image::Rgb([120, 110, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    other.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let r = s.post("/v1/models/tiled/predict", &[], png.get_ref());
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"], "image_size", "{}", r.text());
    assert!(r.text().contains("256x256"), "{}", r.text());
    // The untiled model beside it still answers.
    let r = s.post("/v1/models/demo/predict", &[], &fx.image(true));
    assert_eq!(r.status, 200, "{}", r.text());
}
