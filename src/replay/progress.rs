//! Progress of a job over lake files (`replay`, `compact`): a bar (files, rows or bytes, rate, ETA)
//! when stderr is a terminal, otherwise a structured log line every few seconds, so a Cloud Run
//! job's log shows it too. Parquet replays and compaction count rows (the plan knows them); NDJSON
//! replays count the bytes of the files read (their lines are known only once read).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    /// The job's name in log lines: "replay progress", "compact finished".
    job: &'static str,
    /// Counting bytes, not rows.
    bytes: bool,
    bar: Option<ProgressBar>,
    files: usize,
    files_done: usize,
    /// Rows or bytes.
    total: u64,
    done: u64,
    /// Done before this run (a resumed replay); the rate counts only this run's.
    before: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// `files_done`/`rows_done`: what a checkpoint says is already done.
    pub fn new(job: &'static str, files: usize, rows_total: u64, files_done: usize, rows_done: u64) -> Progress {
        Progress::start(job, false, files, rows_total, (files_done, rows_done))
    }

    /// Progress counted in bytes of input read.
    pub fn bytes(job: &'static str, files: usize, bytes_total: u64, files_done: usize, bytes_done: u64) -> Progress {
        Progress::start(job, true, files, bytes_total, (files_done, bytes_done))
    }

    fn start(job: &'static str, bytes: bool, files: usize, total: u64, (files_done, done): (usize, u64)) -> Progress {
        let template = if bytes {
            "{bar:30} {bytes}/{total_bytes} ({percent}%) {msg} {bytes_per_sec} eta {eta}"
        } else {
            "{bar:30} {pos}/{len} rows ({percent}%) {msg} {per_sec} eta {eta}"
        };
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template(template).expect("static template"));
            bar.set_position(done);
            bar
        });
        let now = Instant::now();
        let p = Progress { job, bytes, bar, files, files_done, total, done, before: done, started: now, last_log: now };
        p.show_files();
        p
    }

    fn show_files(&self) {
        if let Some(b) = &self.bar {
            b.set_message(format!("files {}/{}", self.files_done, self.files));
        }
    }

    /// `n` more rows (or bytes) done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(b) => b.set_position(self.done),
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

    /// Rows (or bytes) per second in this run.
    pub fn rate(&self) -> f64 {
        (self.done - self.before) as f64 / self.started.elapsed().as_secs_f64().max(1e-6)
    }

    fn log(&self, what: &str) {
        let rate = self.rate();
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 { (left as f64 / rate).round() as u64 } else { 0 };
        tracing::info!(
            files_done = self.files_done,
            files = self.files,
            unit = if self.bytes { "bytes" } else { "rows" },
            done = self.done,
            total = self.total,
            per_sec = rate.round() as u64,
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
