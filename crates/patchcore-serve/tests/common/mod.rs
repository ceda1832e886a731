//! A served model folder, a server on an ephemeral port, and a minimal HTTP/1.1 client
//! over `TcpStream` (so tests can also send broken and half-finished requests).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use patchcore_data::synthetic::{SyntheticSpec, generate};
use patchcore_pipeline::{Config, FitOptions, fit_model};
use patchcore_serve::{ServeOptions, serve};

/// A generated data set and a model fitted on it, saved as `<dir>/models/demo.patchcore`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub spec: SyntheticSpec,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spec = SyntheticSpec {
            train: 4,
            test_good: 2,
            test_per_defect: 2,
            ..Default::default()
        };
        generate(&dir.path().join("data"), &spec).unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        let f = Self { dir, spec };
        f.fit_into("demo.patchcore", 0.05);
        f
    }

    /// Fits a model at coreset `ratio` and saves it (atomically) under `name`.
    pub fn fit_into(&self, name: &str, ratio: f64) {
        let mut cfg = Config::default_experiment().unwrap();
        cfg.sampler
            .set_size(patchcore_sampler::SampleSize::Ratio(ratio))
            .unwrap();
        let fitted = fit_model(
            &cfg,
            &FitOptions {
                data_root: self.dir.path().join("data"),
                category: None,
                threshold: None,
                quiet: true,
            },
        )
        .unwrap();
        fitted.model.save(&self.models().join(name)).unwrap();
    }

    pub fn models(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    /// A test image: anomalous (`good = false`) or good.
    pub fn image(&self, good: bool) -> Vec<u8> {
        let test = self
            .dir
            .path()
            .join("data")
            .join(&self.spec.category)
            .join("test");
        let sub = if good {
            test.join("good")
        } else {
            std::fs::read_dir(&test)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.file_name().unwrap() != "good")
                .unwrap()
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(sub)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        std::fs::read(&files[0]).unwrap()
    }
}

/// A server running on its own runtime thread until `stop` is called.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(opts: ServeOptions) -> Self {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, opts, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        let s = Self {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        // Wait until the models are loaded.
        for _ in 0..200 {
            if s.get("/readyz").status == 200 {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server never became ready");
    }

    /// Begins a graceful shutdown; `join` waits for it.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub fn join(&mut self) {
        self.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn get(&self, path: &str) -> Reply {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(self.addr, "POST", path, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.join();
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading the whole body.
    let _ = s.write_all(body);
    read_reply(&mut s)
}

pub fn read_reply(s: &mut TcpStream) -> Reply {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

/// A multipart body with one file field.
pub fn multipart(field: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "patchcoreboundary7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Options for a models folder with a fast reload check.
pub fn options(models: &Path) -> ServeOptions {
    let mut o = ServeOptions::new(models);
    o.reload_interval = Duration::from_millis(200);
    o
}
