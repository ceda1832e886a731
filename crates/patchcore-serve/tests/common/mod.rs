//! A served model folder, a server on an ephemeral port, and a minimal HTTP/1.1 client
//! over `TcpStream` (so tests can also send broken and half-finished requests).

#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patchcore_data::synthetic::{SyntheticSpec, generate};
use patchcore_eval::{FitOptions, fit_model};
use patchcore_model::Config;
use patchcore_serve::{ServeOptions, serve};
pub use patchcore_testkit::http::{Reply, multipart, read_reply, request};

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
        self.fit_config_into(name, ratio, Config::default_experiment().unwrap());
    }

    /// As `fit_into`, from `cfg`.
    pub fn fit_config_into(&self, name: &str, ratio: f64, mut cfg: Config) {
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

/// Options for a models folder with a fast reload check.
pub fn options(models: &Path) -> ServeOptions {
    let mut o = ServeOptions::new(models);
    o.reload_interval = Duration::from_millis(200);
    o
}
