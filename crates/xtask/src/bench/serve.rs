//! `patchcore bench --suite serve`: the service under load. A bottle model is fitted, this
//! binary serves it as a child process, and client threads post the bottle test images for a
//! fixed time at each concurrency (a client answered 503 waits as `Retry-After` says);
//! in-process decode + predict of the same images, one at a time and in batches, is measured
//! in the same run for comparison. Two kinds of hostile load are rows of their own: 100 clients
//! sending 1 byte per second beside 8 normal ones, and 8000x8000 images (memory).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use patchcore_core::{Error, Result};
use patchcore_eval::{FitOptions, fit_model};
use patchcore_model::{Config, FittedPatchCore};
use patchcore_testkit::http::request;

/// Resident memory of a process (`VmRSS`, `VmHWM`), in MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        s.lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse::<f64>()
            .ok()
    };
    Some((kb("VmRSS:")? / 1024.0, kb("VmHWM:")? / 1024.0))
}

struct Served {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_server(models: &Path, extra: &[&str]) -> Result<Served> {
    use std::io::BufRead;
    let exe = crate::patchcore_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--models"])
        .arg(models)
        .args(["--bind", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::External(format!("cannot start the server: {e}")))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(|e| Error::External(e.to_string()))?;
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim_end_matches('/').parse().ok())
        .ok_or_else(|| Error::External(format!("no address in the server's output: {line:?}")))?;
    Ok(Served { child, addr })
}

/// Latency percentiles (ms) of sorted seconds.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] * 1e3
}

struct Load {
    ok: usize,
    busy: usize,
    other: Vec<u16>,
    latencies: Vec<f64>,
    seconds: f64,
    rss_min_max: (f64, f64),
    /// RSS after the first 2 s and at the end.
    rss_first_last: (f64, f64),
}

/// `clients` threads posting `images` round robin for `seconds`.
fn drive(served: &Served, images: &Arc<Vec<Vec<u8>>>, clients: usize, seconds: f64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, images, addr) = (stop.clone(), images.clone(), served.addr);
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    // A refused or reset connection (the client panics) counts as status 0.
                    let r = std::panic::catch_unwind(|| {
                        request(
                            addr,
                            "POST",
                            "/v1/models/bottle/predict",
                            &[],
                            &images[i % images.len()],
                        )
                    });
                    let status = r.as_ref().map_or(0, |r| r.status);
                    out.push((status, t.elapsed().as_secs_f64()));
                    i += clients;
                    // A well-behaved client waits as Retry-After says.
                    if let Ok(r) = r
                        && r.status == 503
                    {
                        let wait = r
                            .header("retry-after")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(1);
                        std::thread::sleep(Duration::from_secs(wait));
                    }
                }
                out
            })
        })
        .collect();
    let pid = served.child.id();
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    while t0.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(250));
        // Memory after the first 2 s (threads and buffers started): flat or not.
        if t0.elapsed().as_secs_f64() < 2.0 {
            continue;
        }
        if let Some((rss, _)) = rss_mib(pid) {
            lo = lo.min(rss);
            hi = hi.max(rss);
            if first.is_nan() {
                first = rss;
            }
            last = rss;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u16, f64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let seconds = t0.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = results.iter().filter(|r| r.0 == 200).map(|r| r.1).collect();
    latencies.sort_by(f64::total_cmp);
    Load {
        ok: latencies.len(),
        busy: results.iter().filter(|r| r.0 == 503).count(),
        other: results
            .iter()
            .filter(|r| r.0 != 200 && r.0 != 503)
            .map(|r| r.0)
            .collect(),
        latencies,
        seconds,
        rss_min_max: (lo, hi),
        rss_first_last: (first, last),
    }
}

/// The in-process baseline on the loaded model file: decode + predict one image at a time
/// for `seconds` (latencies and elapsed time), then in batches of `data.batch_size` (batch
/// size, images and images per second).
fn in_process(
    model_path: &Path,
    images: &[Vec<u8>],
    seconds: f64,
) -> Result<(Vec<f64>, f64, usize, usize, f64)> {
    let model = FittedPatchCore::load(model_path)?;
    let limits = model.limits();
    let t0 = Instant::now();
    let mut lat = Vec::new();
    let mut i = 0;
    while t0.elapsed().as_secs_f64() < seconds {
        let t = Instant::now();
        let img = patchcore_data::decode_rgb_bytes(&images[i % images.len()], &limits)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        std::hint::black_box(model.predict_images(std::slice::from_ref(&img))?);
        lat.push(t.elapsed().as_secs_f64());
        i += 1;
    }
    let base_secs = t0.elapsed().as_secs_f64();
    // The model's own batched ceiling: decode + predict of batches of `data.batch_size`.
    let b = model.batch_size();
    let t1 = Instant::now();
    let mut batched = 0usize;
    while t1.elapsed().as_secs_f64() < seconds {
        let imgs: Vec<image::RgbImage> = (0..b)
            .map(|k| {
                patchcore_data::decode_rgb_bytes(&images[(batched + k) % images.len()], &limits)
                    .map_err(|e| Error::InvalidArgument(e.to_string()))
            })
            .collect::<Result<_>>()?;
        std::hint::black_box(model.predict_images(&imgs)?);
        batched += b;
    }
    let batched_tput = batched as f64 / t1.elapsed().as_secs_f64();
    Ok((lat, base_secs, b, batched, batched_tput))
}

/// One row of the table: the server's extra flags, the clients posting `images`, and the
/// slow clients beside them.
struct Row<'a> {
    name: &'a str,
    extra: &'a [&'a str],
    clients: usize,
    slow: usize,
    images: &'a Arc<Vec<Vec<u8>>>,
}

/// What every row shares: the models folder, the bottle images, the in-process throughput
/// and the notes printed under the table.
struct Suite<'a> {
    models: &'a Path,
    images: &'a Arc<Vec<Vec<u8>>>,
    base_tput: f64,
    seconds: f64,
    notes: std::cell::RefCell<Vec<String>>,
}

impl Suite<'_> {
    /// Serves the model with the row's flags, drives it, prints the row; the requests/s.
    fn row(&self, r: Row) -> Result<f64> {
        let served = start_server(self.models, r.extra)?;
        // Warm-up: the first request pays for page faults and thread start.
        for img in self.images.iter().take(4) {
            request(served.addr, "POST", "/v1/models/bottle/predict", &[], img);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let slow = super::serve_edges::start_slow_clients(served.addr, r.slow, &stop);
        if r.slow > 0 {
            // Let the slow clients take their connections before the row is timed.
            std::thread::sleep(Duration::from_secs(2));
        }
        let l = drive(&served, r.images, r.clients, self.seconds);
        stop.store(true, Ordering::Relaxed);
        let slow = super::serve_edges::SlowStats::merge(
            slow.into_iter().filter_map(|t| t.join().ok()).collect(),
        );
        let tput = l.ok as f64 / l.seconds;
        let peak = rss_mib(served.child.id()).map(|r| r.1).unwrap_or(f64::NAN);
        let vs = if r.images.len() == self.images.len() {
            format!("{:.2}", tput / self.base_tput)
        } else {
            "-".to_string()
        };
        println!(
            "| {} | {} | {tput:.1} | {vs} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.0}-{:.0} | {:.0} → {:.0} | {peak:.0} |",
            r.name,
            r.clients,
            pct(&l.latencies, 0.5),
            pct(&l.latencies, 0.95),
            pct(&l.latencies, 0.99),
            l.ok,
            l.busy,
            if l.other.is_empty() {
                "0".to_string()
            } else {
                format!("{:?}", l.other)
            },
            l.rss_min_max.0,
            l.rss_min_max.1,
            l.rss_first_last.0,
            l.rss_first_last.1
        );
        if r.slow > 0 {
            self.notes.borrow_mut().push(format!(
                "{} slow clients beside {} clients: {}",
                r.slow,
                r.clients,
                slow.describe()
            ));
        }
        Ok(tput)
    }
}

/// Fits the default experiment on bottle into `models/bottle.patchcore`; the model file and
/// the bytes of the bottle test images.
fn fit_bottle(data_root: &Path, models: &Path) -> Result<(std::path::PathBuf, Arc<Vec<Vec<u8>>>)> {
    let cfg = Config::default_experiment()?;
    let fitted = fit_model(
        &cfg,
        &FitOptions {
            data_root: data_root.to_path_buf(),
            category: Some("bottle".into()),
            threshold: None,
            quiet: true,
        },
    )?;
    let model_path = models.join("bottle.patchcore");
    fitted.model.save(&model_path)?;
    let cat = patchcore_data::MvtecCategory::open(data_root, "bottle")?;
    let images: Arc<Vec<Vec<u8>>> = Arc::new(
        cat.test
            .iter()
            .map(|t| std::fs::read(&t.path).map_err(|e| Error::io(&t.path, e)))
            .collect::<Result<_>>()?,
    );

    Ok((model_path, images))
}

/// Runs the suite and prints its Markdown table.
pub fn serve_suite(data_root: &Path, seconds: f64) -> Result<()> {
    let dir = tempfile_dir()?;
    let models = dir.join("models");
    std::fs::create_dir_all(&models).map_err(|e| Error::io(&models, e))?;
    let (model_path, images) = fit_bottle(data_root, &models)?;
    let (mut lat, base_secs, b, batched, batched_tput) = in_process(&model_path, &images, seconds)?;
    lat.sort_by(f64::total_cmp);
    let base_tput = lat.len() as f64 / base_secs;
    println!(
        "## `patchcore serve` under load: bottle (83 test images, round robin), default experiment, {seconds:.0} s per row\n"
    );
    println!(
        "| setting | clients | requests/s | vs in-process | p50 ms | p95 ms | p99 ms | 200 | 503 | other errors | server RSS MiB (min-max after the first 2 s) | RSS at 2 s → end | server peak RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| in-process decode + predict (no HTTP) | 1 | {base_tput:.1} | 1.00 | {:.1} | {:.1} | {:.1} | {} | | | | | |",
        pct(&lat, 0.5),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        lat.len()
    );
    println!(
        "| in-process decode + predict, batches of {b} (no HTTP) | - | {batched_tput:.1} | {:.2} | | | | {batched} | | | | | |",
        batched_tput / base_tput
    );
    let large = Arc::new(vec![super::serve_edges::large_png(8000)]);
    let large_kib = large[0].len() / 1024;
    let suite = Suite {
        models: &models,
        images: &images,
        base_tput,
        seconds,
        notes: std::cell::RefCell::new(Vec::new()),
    };
    let row = |r: Row| suite.row(r);
    let default = "default (window 5 ms, queue 64)";
    let plain = |name, extra, clients| Row {
        name,
        extra,
        clients,
        slow: 0,
        images: &images,
    };
    row(plain(default, &[], 1))?;
    // The machine's speed drifts over minutes: the rows with and without slow clients
    // alternate, twice each, and the ratio compares their means.
    let slow_row = || Row {
        name: "default, beside 100 slow clients (1 byte/s: 50 heads, 50 bodies)",
        slow: 100,
        ..plain(default, &[], 8)
    };
    let (mut eight, mut slowed) = (0.0, 0.0);
    for _ in 0..2 {
        eight += row(plain(default, &[], 8))? / 2.0;
        slowed += row(slow_row())? / 2.0;
    }
    row(plain(default, &[], 32))?;
    row(plain(
        "small queue (`--queue-capacity 4`)",
        &["--queue-capacity", "4"],
        32,
    ))?;
    let big_name = format!("8000x8000 PNG ({large_kib} KiB), default decode budget (1024 MiB)");
    row(Row {
        name: &big_name,
        images: &large,
        ..plain(default, &[], 8)
    })?;
    let big_small = format!("8000x8000 PNG ({large_kib} KiB), `--decode-budget-mb 256`");
    row(Row {
        name: &big_small,
        images: &large,
        ..plain(default, &["--decode-budget-mb", "256"], 8)
    })?;
    println!();
    println!(
        "8 clients beside 100 slow clients: {slowed:.1} requests/s (mean of 2 rows), {:.2}x the 8-client rows without them ({eight:.1}, mean of the 2 rows alternating with them).",
        slowed / eight
    );
    for n in suite.notes.borrow().iter() {
        println!("{n}.");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("patchcore-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    Ok(d)
}
