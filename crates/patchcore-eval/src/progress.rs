//! Progress bars (indicatif) behind the components' [`Progress`] sink.

use indicatif::{ProgressBar, ProgressStyle};
use patchcore_core::Progress;
use std::sync::Mutex;

/// Draws one bar per operation on stderr (hidden when stderr is not a terminal).
#[derive(Default)]
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    /// Never draw (tests, library use).
    pub quiet: bool,
}

impl Bar {
    /// A progress bar on stderr, or none when `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            quiet,
        }
    }

    /// Runs `f` (which prints) with the bar hidden, so that lines and bar do not interleave.
    pub fn suspend(&self, f: &dyn Fn()) {
        match self.bar.lock().expect("poisoned").as_ref() {
            Some(pb) => pb.suspend(f),
            None => f(),
        }
    }
}

impl Progress for Bar {
    fn start(&self, total: u64, what: &str) {
        if self.quiet {
            return;
        }
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} ({elapsed}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_message(what.to_string());
        *self.bar.lock().expect("poisoned") = Some(pb);
    }

    fn advance(&self, n: u64) {
        if let Some(pb) = self.bar.lock().expect("poisoned").as_ref() {
            pb.inc(n);
        }
    }

    fn finish(&self) {
        if let Some(pb) = self.bar.lock().expect("poisoned").take() {
            pb.finish_and_clear();
        }
    }
}
