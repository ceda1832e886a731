//! The models being served: one per `*.patchcore` file of the models folder, each with its
//! bounded queue and the task that micro-batches it. Reloading replaces a model only when the
//! new file loads; a model's old version keeps serving the requests it already holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ndarray::Array2;
use patchcore_core::{Error, Result};
use patchcore_model::model_file::ModelHeader;
use patchcore_model::{FittedPatchCore, LoadOptions};

use crate::config::ServeConfig;
use tokio::sync::{mpsc, oneshot};

use crate::ServeOptions;
use crate::metrics::Metrics;

/// What a model returns for one image.
#[derive(Debug)]
pub struct Scored {
    /// Image score.
    pub score: f32,
    /// The anomaly map (at the crop geometry), when asked for.
    pub map: Option<Array2<f32>>,
    /// Images in the batch this one ran in.
    pub batch_size: usize,
    /// Seconds from enqueueing to the start of the model call.
    pub queue_seconds: f64,
    /// Seconds of the model call (the whole batch).
    pub inference_seconds: f64,
}

/// One queued request.
pub struct Job {
    /// The image resized to the model's `resize x resize` (the model crops it).
    pub image: image::RgbImage,
    pub want_map: bool,
    pub enqueued: Instant,
    pub reply: oneshot::Sender<std::result::Result<Scored, JobError>>,
}

/// A file's identity for change detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// One served model.
pub struct Served {
    /// Name (the file stem).
    pub name: String,
    /// The model file.
    pub path: PathBuf,
    stamp: Option<Stamp>,
    /// The model.
    pub model: Arc<FittedPatchCore>,
    /// Its file header (threshold, score range, what it was fitted on).
    pub header: ModelHeader,
    /// Batching window, queue, limits.
    pub serve: ServeConfig,
    queue: mpsc::Sender<Job>,
    depth: Arc<AtomicUsize>,
    incoming: Arc<AtomicUsize>,
    /// Requests admitted (decoding, queued or in the model), at most the queue capacity plus
    /// one batch: admission is decided once the body is in.
    admitted: Arc<tokio::sync::Semaphore>,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
}

/// A request on its way to a model's queue ([`Served::incoming`]).
pub struct Incoming(Arc<AtomicUsize>);

impl Drop for Incoming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a job was not queued.
pub enum Refused {
    /// The queue is full.
    Full,
    /// The model's batching task ended (it was replaced); retry.
    Gone,
}

impl Served {
    /// Queues a job without waiting.
    pub fn submit(&self, job: Job) -> std::result::Result<(), Refused> {
        match self.queue.try_send(job) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(Refused::Full),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::Gone),
        }
    }

    /// Admits a request whose body has arrived, or `None` when the model already holds as
    /// many as it may (the caller answers 503). The permit is held until the answer.
    pub fn admit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.admitted.clone().try_acquire_owned().ok()
    }

    /// Requests waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Marks a request for this model as on its way (body and decoding) until the guard is
    /// dropped: the batcher waits for such requests within its window.
    pub fn incoming(&self) -> Incoming {
        self.incoming.fetch_add(1, Ordering::Relaxed);
        Incoming(self.incoming.clone())
    }
}

/// Gathers up to `max` jobs: the first one, whatever is already queued, and what arrives
/// within `window` while other requests for the model are still being received or decoded
/// (`incoming`). A lone request waits for nothing: the window costs latency only when there
/// is something to batch.
async fn gather(
    rx: &mut mpsc::Receiver<Job>,
    first: Job,
    max: usize,
    window: Duration,
    incoming: &AtomicUsize,
) -> Vec<Job> {
    let mut jobs = vec![first];
    let deadline = tokio::time::Instant::now() + window;
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(j) => {
                jobs.push(j);
                continue;
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if incoming.load(Ordering::Relaxed) == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        // Someone is on the way: wait a little for them, never past the window.
        let step = (tokio::time::Instant::now() + Duration::from_micros(500)).min(deadline);
        if let Ok(Some(j)) = tokio::time::timeout_at(step, rx.recv()).await {
            jobs.push(j);
        }
    }
    jobs
}

/// The batching task of one model: runs until every sender is gone.
async fn batcher(
    model: Arc<FittedPatchCore>,
    mut rx: mpsc::Receiver<Job>,
    window: Duration,
    max: usize,
    depth: Arc<AtomicUsize>,
    incoming: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = gather(&mut rx, first, max, window, &incoming).await;
        depth.fetch_sub(jobs.len(), Ordering::Relaxed);
        // A client that gave up (timeout, disconnect) costs no model time.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let started = Instant::now();
        let images: Vec<image::RgbImage> = jobs
            .iter_mut()
            .map(|j| std::mem::replace(&mut j.image, image::RgbImage::new(0, 0)))
            .collect();
        let m = model.clone();
        let n = images.len();
        metrics.batch(n);
        let result = tokio::task::spawn_blocking(move || m.predict_images(&images)).await;
        let inference_seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(Ok(preds)) => {
                for (job, p) in jobs.into_iter().zip(preds) {
                    let _ = job.reply.send(Ok(Scored {
                        score: p.score,
                        map: job.want_map.then_some(p.anomaly_map),
                        batch_size: n,
                        queue_seconds: started.duration_since(job.enqueued).as_secs_f64(),
                        inference_seconds,
                    }));
                }
            }
            Ok(Err(e)) => {
                let err = JobError {
                    unavailable: matches!(e, Error::Unavailable { .. }),
                    message: e.to_string(),
                };
                for job in jobs {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
            Err(e) => {
                let err = JobError {
                    unavailable: false,
                    message: format!("the model call failed: {e}"),
                };
                for job in jobs {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Why a queued image was not scored.
#[derive(Debug, Clone)]
pub struct JobError {
    /// A service the model needs (its remote index) is unavailable: 503, retry later.
    pub unavailable: bool,
    /// What happened.
    pub message: String,
}

/// The models of the models folder.
pub struct Registry {
    models: RwLock<BTreeMap<String, Arc<Served>>>,
    /// Files that failed to load, by model name, with the stamp they had: not retried until
    /// they change again.
    refused: std::sync::Mutex<BTreeMap<String, Option<Stamp>>>,
    opts: ServeOptions,
    metrics: Arc<Metrics>,
}

/// What one reload pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Models loaded for the first time or replaced.
    pub loaded: Vec<String>,
    /// Models whose (new) file failed to load, with the reason; an older version keeps
    /// serving.
    pub failed: Vec<(String, String)>,
    /// Models whose file disappeared.
    pub removed: Vec<String>,
}

impl Registry {
    /// An empty registry over `opts.models_dir`.
    pub fn new(opts: ServeOptions, metrics: Arc<Metrics>) -> Self {
        Self {
            models: RwLock::new(BTreeMap::new()),
            refused: std::sync::Mutex::new(BTreeMap::new()),
            opts,
            metrics,
        }
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Served>> {
        self.models
            .read()
            .expect("registry lock")
            .get(name)
            .cloned()
    }

    /// Every served model, by name.
    pub fn all(&self) -> Vec<Arc<Served>> {
        self.models
            .read()
            .expect("registry lock")
            .values()
            .cloned()
            .collect()
    }

    /// The `*.patchcore` files of the models folder, by stem.
    fn files(&self) -> Result<BTreeMap<String, PathBuf>> {
        let dir = &self.opts.models_dir;
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut out = BTreeMap::new();
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) == Some("patchcore")
                && p.is_file()
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                out.insert(stem.to_string(), p);
            }
        }
        Ok(out)
    }

    fn load(&self, name: &str, path: &Path, st: Option<Stamp>) -> Result<Served> {
        let model = FittedPatchCore::load_with(
            path,
            LoadOptions {
                device: self.opts.device,
                weights: self.opts.weights.clone(),
                ..Default::default()
            },
        )?;
        let header = model.header()?;
        let mut serve = ServeConfig::of(model.config())?;
        let o = &self.opts.overrides;
        if let Some(v) = o.batch_window_ms {
            serve.batch_window_ms = v;
        }
        if let Some(v) = o.queue_capacity {
            serve.queue_capacity = v;
        }
        if let Some(v) = o.request_timeout_ms {
            serve.request_timeout_ms = v;
        }
        serve.validate()?;
        let model = Arc::new(model);
        // Admission bounds the requests in the system; the channel can hold all of them.
        let admitted = serve.queue_capacity + model.batch_size();
        let (tx, rx) = mpsc::channel(admitted);
        let depth = Arc::new(AtomicUsize::new(0));
        let incoming = Arc::new(AtomicUsize::new(0));
        tokio::spawn(batcher(
            model.clone(),
            rx,
            Duration::from_millis(serve.batch_window_ms),
            model.batch_size(),
            depth.clone(),
            incoming.clone(),
            self.metrics.clone(),
        ));
        Ok(Served {
            name: name.to_string(),
            path: path.to_path_buf(),
            stamp: st,
            model,
            header,
            serve,
            queue: tx,
            depth,
            incoming,
            admitted: Arc::new(tokio::sync::Semaphore::new(admitted)),
            loaded_at: SystemTime::now(),
        })
    }

    /// Loads new and changed model files, drops models whose file is gone. A file that fails
    /// to load is logged and counted; the model's previous version, if any, keeps serving.
    /// Must run inside the tokio runtime (it starts the batching tasks).
    pub async fn reload(self: &Arc<Self>) -> ReloadReport {
        let mut report = ReloadReport::default();
        let files = match self.files() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("cannot list the models folder: {e}");
                report.failed.push(("*".into(), e.to_string()));
                return report;
            }
        };
        let current: BTreeMap<String, Option<Stamp>> = self
            .models
            .read()
            .expect("registry lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.stamp))
            .collect();
        for (name, path) in &files {
            let st = stamp(path);
            if current.get(name) == Some(&st)
                || self.refused.lock().expect("registry lock").get(name) == Some(&st)
            {
                continue;
            }
            let this = self.clone();
            let (n, p) = (name.clone(), path.clone());
            // Loading reads weights and builds the network: off the async threads. The
            // batching task is started back on the runtime.
            let loaded = tokio::task::spawn_blocking(move || {
                let handle = tokio::runtime::Handle::current();
                let _guard = handle.enter();
                this.load(&n, &p, st)
            })
            .await
            .map_err(|e| Error::External(format!("loading task failed: {e}")))
            .and_then(|r| r);
            match loaded {
                Ok(served) => {
                    tracing::info!(model = %name, file = %path.display(), "model loaded");
                    self.metrics.reload(true);
                    self.refused.lock().expect("registry lock").remove(name);
                    self.models
                        .write()
                        .expect("registry lock")
                        .insert(name.clone(), Arc::new(served));
                    report.loaded.push(name.clone());
                }
                Err(e) => {
                    let keeps = current.contains_key(name);
                    tracing::error!(
                        model = %name,
                        file = %path.display(),
                        "model file refused: {e}{}",
                        if keeps { "; the previous version keeps serving" } else { "" }
                    );
                    self.metrics.reload(false);
                    // A bad file is not retried on every poll, only once it changes.
                    self.refused
                        .lock()
                        .expect("registry lock")
                        .insert(name.clone(), st);
                    report.failed.push((name.clone(), e.to_string()));
                }
            }
        }
        let gone: Vec<String> = current
            .keys()
            .filter(|k| !files.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            tracing::info!(model = %name, "model file removed: no longer served");
            self.models.write().expect("registry lock").remove(&name);
            report.removed.push(name);
        }
        report
    }
}
