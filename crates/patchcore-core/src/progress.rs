/// Progress reporting for long component operations (coreset selection, extraction).
///
/// Components stay free of any UI: they call this sink, and the runner decides whether to
/// draw a progress bar. [`NoProgress`] ignores everything.
pub trait Progress: Sync {
    /// Announces the total number of steps.
    fn start(&self, _total: u64, _what: &str) {}
    /// Advances by `n` steps.
    fn advance(&self, _n: u64) {}
    /// Marks the operation finished.
    fn finish(&self) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
