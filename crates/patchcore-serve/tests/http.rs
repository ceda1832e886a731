//! The service through real HTTP on a local port: the API, every bad input and fault of the
//! issue, authentication, the bounded queue, reload and graceful shutdown.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;
use common::{Fixture, Server, multipart, options, request};

#[test]
fn api_bad_inputs_and_disconnects() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.max_body_bytes = 1 << 20;
    let s = Server::start(opts);
    let bad = fx.image(false);
    check_listing(&s);
    check_predict_forms(&s, &bad, &fx.image(true));
    check_bad_inputs(&s, &bad);
    check_disconnects(&s, &bad);
    check_metrics(&s);
}

/// The probes, the page and the model listing.
fn check_listing(s: &Server) {
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<title>PatchCore inspection</title>"));
    let models = s.get("/v1/models").json();
    let m = &models["models"][0];
    assert_eq!(m["name"], "demo");
    assert_eq!(m["backbone"], "efficientnet_lite0");
    assert!(m["threshold"].is_number() && m["bank_rows"].as_u64().unwrap() > 0);
}

/// Raw body, then multipart, then with the heatmap as an overlay and as a map.
fn check_predict_forms(s: &Server, bad: &[u8], good: &[u8]) {
    let r = s.post(
        "/v1/models/demo/predict",
        &[("Content-Type", "image/png")],
        bad,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let bad_score = j["score"].as_f64().unwrap();
    let above = bad_score > j["threshold"].as_f64().unwrap();
    assert_eq!(j["verdict"], if above { "anomalous" } else { "normal" });
    assert_eq!(j["normalized_score"].as_f64().unwrap() > 0.5, above);
    for k in ["decode", "queue", "inference", "total"] {
        assert!(j["timings_ms"][k].is_number(), "timing {k}");
    }
    assert!(j.get("heatmap").is_none());
    let (ct, body) = multipart("image", "good.png", good);
    let r = s.post(
        "/v1/models/demo/predict?heatmap=overlay",
        &[("Content-Type", &ct)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert!(
        j["score"].as_f64().unwrap() < bad_score,
        "the good image scores lower"
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(j["heatmap"]["data"].as_str().unwrap())
        .unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (224, 224));
    let r = s.post("/v1/models/demo/predict?heatmap=png", &[], bad);
    assert_eq!(r.json()["heatmap"]["kind"], "png");
}

/// Bad input: each a 4xx with the reason; the service keeps serving.
fn check_bad_inputs(s: &Server, bad: &[u8]) {
    // (what, body, headers, expected status, words of the reason)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "not an image",
            b"hello, this is plain text".to_vec(),
            vec![],
            415,
            "not a recognised image format",
        ),
        (
            "an unsupported format",
            b"GIF89a\x01\x00\x01\x00".to_vec(),
            vec![],
            415,
            "PNG or JPEG expected",
        ),
        (
            "truncated",
            bad[..bad.len() / 3].to_vec(),
            vec![],
            422,
            "truncated or corrupt",
        ),
        ("empty body", vec![], vec![], 400, "empty"),
        (
            "decompression bomb",
            bomb_png(60_000, 60_000),
            vec![],
            413,
            "refused before decoding",
        ),
        ("too large a body", vec![0u8; 2 << 20], vec![], 413, ""),
        (
            "malformed multipart",
            b"--xyz\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc".to_vec(),
            vec![(
                "Content-Type",
                "multipart/form-data; boundary=xyz".to_string(),
            )],
            400,
            "multipart",
        ),
    ];
    for (what, body, headers, status, reason) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = s.post("/v1/models/demo/predict", &h, body);
        assert_eq!(r.status, *status, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
    }
    assert_eq!(s.post("/v1/models/nope/predict", &[], bad).status, 404);
    assert_eq!(
        s.post("/v1/models/demo/predict?heatmap=jpeg", &[], bad)
            .status,
        400
    );
    // No route takes a path: a traversal attempt is just an unknown model or route.
    assert_eq!(
        s.post("/v1/models/..%2F..%2Fetc%2Fpasswd/predict", &[], bad)
            .status,
        404
    );
}

/// A client that disconnects mid-upload costs nothing lasting.
fn check_disconnects(s: &Server, bad: &[u8]) {
    for _ in 0..5 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        write!(
            c,
            "POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n"
        )
        .unwrap();
        c.write_all(&bad[..1000]).unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    let r = s.post("/v1/models/demo/predict", &[], bad);
    assert_eq!(r.status, 200, "still serving: {}", r.text());
}

/// The counters the calls above must have left.
fn check_metrics(s: &Server) {
    let metrics = s.get("/metrics").text();
    for needle in [
        "patchcore_requests_total{route=\"predict\",code=\"200\"}",
        "patchcore_errors_total{kind=\"bad_image\"}",
        "patchcore_errors_total{kind=\"image_too_large\"} 1",
        "patchcore_errors_total{kind=\"body_too_large\"} 1",
        "patchcore_errors_total{kind=\"bad_multipart\"} 1",
        "patchcore_request_duration_seconds_bucket{le=\"+Inf\"}",
        "patchcore_batch_size_count",
        "patchcore_queue_depth{model=\"demo\"} 0",
        "patchcore_models_loaded 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }
}

/// A PNG whose header claims `w` x `h` pixels, with almost no data: decoding it would
/// allocate `w * h * 3` bytes.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let zlib_empty = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &zlib_empty),
        (b"IEND", &[]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&patchcore_testkit::png_crc32(&chunk).to_be_bytes());
    }
    png
}

#[test]
fn token_is_required_everywhere_but_the_health_routes() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.token = Some("correct horse battery".into());
    let s = Server::start(opts);
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
    for path in ["/", "/v1/models", "/metrics"] {
        let r = s.get(path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    let img = fx.image(false);
    assert_eq!(s.post("/v1/models/demo/predict", &[], &img).status, 401);
    let wrong = request(
        s.addr,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer correct horse")],
        b"",
    );
    assert_eq!(wrong.status, 401);
    let ok = [("Authorization", "Bearer correct horse battery")];
    assert_eq!(request(s.addr, "GET", "/v1/models", &ok, b"").status, 200);
    assert_eq!(s.post("/v1/models/demo/predict", &ok, &img).status, 200);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("browser:correct horse battery")
    );
    assert_eq!(
        request(s.addr, "GET", "/", &[("Authorization", &basic)], b"").status,
        200
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_nothing_else_fails() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.overrides.queue_capacity = Some(1);
    opts.overrides.batch_window_ms = Some(0);
    let s = Server::start(opts);
    let img = std::sync::Arc::new(fx.image(false));
    let addr = s.addr;
    let threads: Vec<_> = (0..24)
        .map(|_| {
            let img = img.clone();
            std::thread::spawn(move || request(addr, "POST", "/v1/models/demo/predict", &[], &img))
        })
        .collect();
    let replies: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        ok + busy.len(),
        replies.len(),
        "only 200 and 503: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(ok >= 1 && !busy.is_empty(), "{ok} ok, {} busy", busy.len());
    for r in &busy {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.json()["error"], "queue_full");
    }
    let metrics = s.get("/metrics").text();
    assert!(metrics.contains(&format!(
        "patchcore_errors_total{{kind=\"queue_full\"}} {}",
        busy.len()
    )));
}

#[test]
fn changed_files_reload_corrupt_ones_are_refused_and_the_old_model_keeps_serving() {
    let fx = Fixture::new();
    let s = Server::start(options(&fx.models()));
    let img = fx.image(false);
    let models = |s: &Server| -> Vec<String> {
        s.get("/v1/models").json()["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    let wait_for = |cond: &dyn Fn() -> bool| {
        for _ in 0..100 {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    // A new file appears.
    fx.fit_into("second.patchcore", 0.02);
    assert!(
        wait_for(&|| models(&s) == ["demo", "second"]),
        "{:?}",
        models(&s)
    );
    let rows_before = s.get("/v1/models").json()["models"][1]["bank_rows"].clone();
    // A corrupt replacement is refused; the old version keeps serving.
    let path = fx.models().join("second.patchcore");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert!(wait_for(&|| s
        .get("/metrics")
        .text()
        .contains("patchcore_reloads_total{result=\"failed\"} 1")));
    assert_eq!(s.post("/v1/models/second/predict", &[], &img).status, 200);
    assert_eq!(
        s.get("/v1/models").json()["models"][1]["bank_rows"],
        rows_before
    );
    // A valid replacement (another coreset size) is loaded.
    fx.fit_into("second.patchcore", 0.1);
    assert!(wait_for(
        &|| s.get("/v1/models").json()["models"][1]["bank_rows"] != rows_before
    ));
    assert_eq!(s.post("/v1/models/second/predict", &[], &img).status, 200);
    // A removed file is no longer served.
    std::fs::remove_file(&path).unwrap();
    assert!(wait_for(&|| models(&s) == ["demo"]));
    assert_eq!(s.post("/v1/models/second/predict", &[], &img).status, 404);
}

#[test]
fn shutdown_finishes_the_request_in_flight_then_refuses_new_ones() {
    let fx = Fixture::new();
    let mut s = Server::start(options(&fx.models()));
    let img = fx.image(false);
    // A client sends its headers and half its body, then the rest after the shutdown began.
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /v1/models/demo/predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        img.len()
    )
    .unwrap();
    c.write_all(&img[..img.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.stop();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(&img[img.len() / 2..]).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let r = common::read_reply(&mut c);
    assert_eq!(
        r.status,
        200,
        "the request in flight is answered: {}",
        r.text()
    );
    let addr = s.addr;
    s.join();
    assert!(
        TcpStream::connect(addr).is_err(),
        "no new connections after shutdown"
    );
}

#[test]
fn a_request_past_its_deadline_gets_504() {
    let fx = Fixture::new();
    let mut opts = options(&fx.models());
    opts.overrides.request_timeout_ms = Some(1);
    let s = Server::start(opts);
    let r = s.post("/v1/models/demo/predict", &[], &fx.image(false));
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"], "timeout");
    assert!(
        s.get("/metrics")
            .text()
            .contains("patchcore_errors_total{kind=\"timeout\"} 1")
    );
}
