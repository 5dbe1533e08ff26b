//! Progress of a job over lake files (`replay`, `compact`): a bar (files, rows, rate, ETA) when
//! stderr is a terminal, otherwise a structured log line every few seconds, so a Cloud Run job's
//! log shows it too.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// The job's name in log lines: "replay progress", "compact finished".
    job: &'static str,
    bar: Option<ProgressBar>,
    files: usize,
    files_done: usize,
    rows_total: u64,
    rows_done: u64,
    /// Rows done before this run (a resumed replay); the rate counts only this run's.
    rows_before: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// `files_done`/`rows_done`: what a checkpoint says is already done.
    pub fn new(job: &'static str, files: usize, rows_total: u64, files_done: usize, rows_done: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(rows_total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} rows ({percent}%) {msg} {per_sec} eta {eta}")
                    .expect("static template"),
            );
            bar.set_position(rows_done);
            bar
        });
        let now = Instant::now();
        let p = Progress {
            job,
            bar,
            files,
            files_done,
            rows_total,
            rows_done,
            rows_before: rows_done,
            started: now,
            last_log: now,
        };
        p.show_files();
        p
    }

    fn show_files(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!("files {}/{}", self.files_done, self.files));
        }
    }

    pub fn rows(&mut self, n: u64) {
        self.rows_done += n;
        match &self.bar {
            Some(b) => b.set_position(self.rows_done),
            None if self.last_log.elapsed() >= LOG_EVERY => {
                self.last_log = Instant::now();
                self.log("progress");
            }
            None => {}
        }
    }

    pub fn file_done(&mut self) {
        self.files_done += 1;
        self.show_files();
    }

    /// Rows per second in this run.
    pub fn rate(&self) -> f64 {
        (self.rows_done - self.rows_before) as f64 / self.started.elapsed().as_secs_f64().max(1e-6)
    }

    fn log(&self, what: &str) {
        let rate = self.rate();
        let left = self.rows_total.saturating_sub(self.rows_done);
        let eta = if rate > 0.0 { (left as f64 / rate).round() as u64 } else { 0 };
        tracing::info!(
            files_done = self.files_done,
            files = self.files,
            rows_done = self.rows_done,
            rows = self.rows_total,
            rows_per_sec = rate.round() as u64,
            eta_secs = eta,
            "{} {what}",
            self.job
        );
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        self.log("finished");
    }
}
