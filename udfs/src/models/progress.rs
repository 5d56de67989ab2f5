//! Training progress on stderr: a bar (epoch, loss, ETA) redrawn in place when stderr is a
//! terminal, one summary line when it is not, nothing when the session says so. The CLI sets
//! the mode on the session ([`TrainingProgress`]); sessions without it stay silent.

use std::io::Write;
use std::time::{Duration, Instant};

/// How training reports on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    #[default]
    Off,
    /// One summary line when training ends.
    Line,
    /// A bar redrawn in place, then the summary line.
    Bar,
}

/// The session's progress mode, kept in its config extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainingProgress(pub ProgressMode);

/// The progress of one training run.
pub struct Progress {
    name: &'static str,
    /// What is counted: epochs of training, or batches of other long work.
    unit: &'static str,
    mode: ProgressMode,
    total: usize,
    started: Instant,
    drawn: Option<Instant>,
    validation: Option<f64>,
}

impl Progress {
    pub fn new(name: &'static str, mode: ProgressMode, total: usize) -> Self {
        Self::counting(name, "epoch", mode, total)
    }

    /// Progress counted in `unit`s (such as "batch") rather than epochs.
    pub fn counting(name: &'static str, unit: &'static str, mode: ProgressMode, total: usize) -> Self {
        Self {
            name,
            unit,
            mode,
            total,
            started: Instant::now(),
            drawn: None,
            validation: None,
        }
    }

    /// Epoch `done` of `total` finished, with its loss when known.
    pub fn update(&mut self, done: usize, loss: Option<f32>) {
        self.update_with_validation(done, loss, None);
    }

    /// Like [`Progress::update`], with the latest validation metric when there is one.
    pub fn update_with_validation(&mut self, done: usize, loss: Option<f32>, validation: Option<f64>) {
        if let Some(v) = validation {
            self.validation = Some(v);
        }
        if self.mode != ProgressMode::Bar || self.drawn.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        self.drawn = Some(Instant::now());
        let loss = loss.map(|l| format!(" loss {l:.4}")).unwrap_or_default();
        let validation = self
            .validation
            .map(|v| format!(" val NDCG@10 {v:.4}"))
            .unwrap_or_default();
        let mut stderr = std::io::stderr().lock();
        // An unknown total (0), or one that was an estimate and is passed: a count, no bar.
        if done > self.total || self.total == 0 {
            let _ = write!(stderr, "\r{} {} {done}{loss}{validation} ", self.name, self.unit);
            let _ = stderr.flush();
            return;
        }
        let width = 20;
        let filled = width * done / self.total;
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = elapsed / done.max(1) as f64 * (self.total - done) as f64;
        let _ = write!(
            stderr,
            "\r{} {} {done}/{} [{}{}]{loss}{validation} ETA {eta:.1} s ",
            self.name,
            self.unit,
            self.total,
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        let _ = stderr.flush();
    }

    /// The work was cancelled: a line in batch runs; in the shell, which reports the
    /// cancellation itself and may already show its prompt again, nothing.
    pub fn cancelled(&self) {
        if self.mode == ProgressMode::Line {
            self.finish(match self.unit {
                "epoch" => "cancelled; no model written",
                _ => "cancelled",
            });
        }
    }

    /// Training ended: the summary line (after clearing the bar).
    pub fn finish(&self, summary: &str) {
        let mut stderr = std::io::stderr().lock();
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Line => {
                let _ = writeln!(stderr, "{}: {summary}", self.name);
            }
            ProgressMode::Bar => {
                let _ = writeln!(stderr, "\r\x1b[2K{}: {summary}", self.name);
            }
        }
    }
}
