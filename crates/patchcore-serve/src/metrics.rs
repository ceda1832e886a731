//! Counters and histograms of the service, rendered in the Prometheus text format
//! (version 0.0.4) by hand: a handful of atomics, no registry crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds of the batch size histogram.
const BATCH_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// A cumulative histogram.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum in micro-units (latency: microseconds; batch sizes: millionths).
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micro
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// What the service counts.
pub struct Metrics {
    /// (route, status code) -> requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// error kind -> count.
    errors: Mutex<BTreeMap<&'static str, u64>>,
    latency: Histogram,
    batch_sizes: Histogram,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            latency: Histogram::new(&LATENCY_BUCKETS),
            batch_sizes: Histogram::new(&BATCH_BUCKETS),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One finished request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route.to_string(), status))
            .or_default() += 1;
        self.latency.observe(seconds);
    }

    /// One error of `kind` (`bad_image`, `too_large`, `queue_full`, ...).
    pub fn error(&self, kind: &'static str) {
        *self
            .errors
            .lock()
            .expect("metrics lock")
            .entry(kind)
            .or_default() += 1;
    }

    /// One batch of `n` images run through a model.
    pub fn batch(&self, n: usize) {
        self.batch_sizes.observe(n as f64);
    }

    /// One model reload attempt.
    pub fn reload(&self, ok: bool) {
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text; `queues` gives each model's current queue depth.
    pub fn render(&self, queues: &[(String, usize)]) -> String {
        let mut s = String::new();
        s.push_str(
            "# HELP patchcore_requests_total HTTP requests by route and status code.\n\
             # TYPE patchcore_requests_total counter\n",
        );
        for ((route, code), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                s,
                "patchcore_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        s.push_str(
            "# HELP patchcore_errors_total Failed requests by kind.\n\
             # TYPE patchcore_errors_total counter\n",
        );
        for (kind, n) in self.errors.lock().expect("metrics lock").iter() {
            let _ = writeln!(s, "patchcore_errors_total{{kind=\"{kind}\"}} {n}");
        }
        self.latency.render(
            "patchcore_request_duration_seconds",
            "Request latency, queueing and decoding included.",
            &mut s,
        );
        self.batch_sizes.render(
            "patchcore_batch_size",
            "Images per model call (micro-batches).",
            &mut s,
        );
        s.push_str(
            "# HELP patchcore_queue_depth Requests waiting for a model.\n\
             # TYPE patchcore_queue_depth gauge\n",
        );
        for (model, d) in queues {
            let _ = writeln!(s, "patchcore_queue_depth{{model=\"{model}\"}} {d}");
        }
        let _ = writeln!(
            s,
            "# HELP patchcore_models_loaded Models being served.\n\
             # TYPE patchcore_models_loaded gauge\npatchcore_models_loaded {}",
            queues.len()
        );
        let _ = writeln!(
            s,
            "# HELP patchcore_reloads_total Model (re)loads by result.\n\
             # TYPE patchcore_reloads_total counter\n\
             patchcore_reloads_total{{result=\"ok\"}} {}\n\
             patchcore_reloads_total{{result=\"failed\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_the_text_parses() {
        let m = Metrics::default();
        m.request("predict", 200, 0.02);
        m.request("predict", 200, 0.2);
        m.request("predict", 503, 0.001);
        m.error("queue_full");
        m.batch(3);
        let t = m.render(&[("bottle".into(), 2)]);
        assert!(t.contains("patchcore_requests_total{route=\"predict\",code=\"200\"} 2"));
        assert!(t.contains("patchcore_errors_total{kind=\"queue_full\"} 1"));
        assert!(t.contains("patchcore_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(t.contains("patchcore_request_duration_seconds_bucket{le=\"0.25\"} 3"));
        assert!(t.contains("patchcore_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(t.contains("patchcore_batch_size_bucket{le=\"2\"} 0"));
        assert!(t.contains("patchcore_batch_size_bucket{le=\"4\"} 1"));
        assert!(t.contains("patchcore_queue_depth{model=\"bottle\"} 2"));
        // Every sample line is `name{labels} value` or `name value`.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{l}");
        }
    }
}
