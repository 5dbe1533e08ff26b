//! Freed memory goes back to the OS at once only when the process nears its memory bound.
//!
//! Giving every freed page back at once (purge delay 0) keeps peak RSS within the flow-control
//! bound, but the next batch then faults the same pages in again, zeroed: on the 2-core VMs
//! sluice is measured on, that cost the hot path 5–79% more CPU per event (`docs/performance.md`,
//! "Freed memory"). Keeping them (mimalloc's default delay) is free until memory runs short.
//! So a thread reads the resident set (every [`EVERY`] near the mark, less often far below it):
//! at the high watermark it switches mimalloc to purging at once and purges what is pending, and
//! below the low one it switches back.

use std::ffi::c_long;
use std::time::Duration;

use super::{collect, set_purge_delay};

/// How often the resident set is read near the mark (reading it more often did not lower the
/// push flood's peak).
pub const EVERY: Duration = Duration::from_millis(10);

/// The longest wait between two readings, far below the mark.
const LONGEST: Duration = Duration::from_millis(100);

/// The fastest the resident set is taken to grow, in bytes per second: a push flood's bodies over
/// loopback. The wait before the next reading is the time to reach the mark at this rate, so an
/// idle process is not woken a hundred times a second (each wake cost ~80 µs of CPU on the VM).
const FASTEST_GROWTH: u64 = 1 << 30;

/// The purge delay while memory is far from the bound: longer than the shipped batches' `max_age`
/// (5 s), so that a batch's buffers are still there for the next one. With mimalloc's default (1 s)
/// a pipeline whose batches close more than a second apart (10,000 rows at under 10,000 events/s)
/// faulted every batch's pages in again, zeroed: a fifth of `sluice run`'s CPU from the emulator
/// (`docs/performance.md`, "Freed memory").
pub const RELAXED_DELAY_MS: c_long = 10_000;

/// The fixed part of `sluice run`'s memory bound (`app::memory_bound`: the largest flow control
/// plus this), and how far below the bound purging at once starts, so that the mark is the flow
/// control itself. After the switch the resident set goes on rising by 20–40 MiB, as what the
/// other threads freed while memory was kept leaves only as they next free: with a margin of
/// 16 MiB the push flood peaked past its bound (166–176 MiB of 164), with 48 at 149–162.
pub const FIXED_PART: u64 = 64 << 20;

/// How far below the high watermark memory must fall before freed memory is kept again, so
/// that a process hovering at the mark does not switch back and forth.
const HYSTERESIS: u64 = 32 << 20;

/// Where the governor switches, in bytes of resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub high: u64,
    pub low: u64,
}

impl Watermarks {
    /// The marks for a process that must stay within `bound` bytes.
    pub fn below(bound: u64) -> Watermarks {
        let high = bound.saturating_sub(FIXED_PART);
        Watermarks { high, low: high.saturating_sub(HYSTERESIS) }
    }
}

/// What to do after a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Purge what is pending, and purge at once from now on.
    Press,
    /// Still at or over the mark: purge what other threads freed since.
    Purge,
    /// Keep freed memory again.
    Relax,
    Nothing,
}

/// The step for a reading of `rss` bytes, `pressed` when purging at once.
fn step(marks: Watermarks, pressed: bool, rss: u64) -> Step {
    match (pressed, rss >= marks.high, rss < marks.low) {
        (false, true, _) => Step::Press,
        (true, true, _) => Step::Purge,
        (true, false, true) => Step::Relax,
        _ => Step::Nothing,
    }
}

/// How long to wait before reading the resident set again, at `rss` bytes.
fn next_reading(marks: Watermarks, rss: u64) -> Duration {
    let headroom = marks.high.saturating_sub(rss);
    Duration::from_secs_f64(headroom as f64 / FASTEST_GROWTH as f64).clamp(EVERY, LONGEST)
}

/// Start governing the purge delay below `marks`, on a thread of its own for the life of the
/// process; `false` (and the delay left at 0, which always holds the bound) where the resident
/// set cannot be read.
pub fn start(marks: Watermarks) -> bool {
    let Some(statm) = Statm::open() else { return false };
    set_purge_delay(RELAXED_DELAY_MS);
    let started = std::thread::Builder::new().name("sluice-memory".into()).spawn(move || {
        let (mut pressed, mut wait) = (false, EVERY);
        loop {
            std::thread::sleep(wait);
            let Some(rss) = statm.resident_bytes() else { continue };
            wait = next_reading(marks, rss);
            match step(marks, pressed, rss) {
                Step::Press => {
                    set_purge_delay(0);
                    collect();
                    pressed = true;
                    tracing::debug!(rss, high = marks.high, "memory near its bound: freed memory goes back at once");
                }
                Step::Purge => collect(),
                Step::Relax => {
                    set_purge_delay(RELAXED_DELAY_MS);
                    pressed = false;
                    tracing::debug!(rss, low = marks.low, "memory well below its bound: freed memory is kept");
                }
                Step::Nothing => {}
            }
        }
    });
    if started.is_err() {
        set_purge_delay(0);
    }
    started.is_ok()
}

/// `/proc/self/statm`, kept open: read a hundred times a second, opening it each time (a path
/// lookup, an allocation and three system calls) cost more than the rest of an idle process.
pub struct Statm(std::fs::File);

impl Statm {
    /// `None` where there is no such file.
    pub fn open() -> Option<Statm> {
        let statm = Statm(std::fs::File::open("/proc/self/statm").ok()?);
        statm.resident_bytes().map(|_| statm)
    }

    /// The process's resident set in bytes now.
    pub fn resident_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        // Seven numbers of at most 20 digits each.
        let mut buf = [0u8; 160];
        let n = self.0.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(pages * page_size())
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn marks_sit_a_margin_below_the_bound_with_room_between_them() {
        let m = Watermarks::below(164 * MIB);
        assert_eq!(m, Watermarks { high: 100 * MIB, low: 68 * MIB });
        assert_eq!(
            Watermarks::below(60 * MIB),
            Watermarks { high: 0, low: 0 },
            "a bound under the margin: always pressed"
        );
    }

    #[test]
    fn presses_at_the_high_mark_and_relaxes_only_below_the_low_one() {
        let m = Watermarks::below(164 * MIB);
        assert_eq!(step(m, false, 50 * MIB), Step::Nothing);
        assert_eq!(step(m, false, 99 * MIB), Step::Nothing);
        assert_eq!(step(m, false, 100 * MIB), Step::Press);
        assert_eq!(step(m, true, 150 * MIB), Step::Purge, "over the mark: purge what was freed since");
        assert_eq!(step(m, true, 80 * MIB), Step::Nothing, "between the marks: stay pressed");
        assert_eq!(step(m, true, 68 * MIB), Step::Nothing);
        assert_eq!(step(m, true, 67 * MIB), Step::Relax);
        assert_eq!(step(m, false, 80 * MIB), Step::Nothing, "between the marks: stay relaxed");
    }

    #[test]
    fn reads_often_near_the_mark_and_seldom_far_below_it() {
        let m = Watermarks::below(164 * MIB);
        let idle = next_reading(m, 22 * MIB);
        assert!(idle > Duration::from_millis(70) && idle <= LONGEST, "idle, 78 MiB from the mark: {idle:?}");
        assert_eq!(next_reading(m, 95 * MIB), EVERY, "5 MiB from it: 5 ms at the fastest growth");
        assert_eq!(next_reading(m, 150 * MIB), EVERY, "over it");
        assert_eq!(next_reading(Watermarks::below(10 << 30), 0), LONGEST, "a large bound");
    }

    #[test]
    fn reads_this_process_resident_set() {
        if cfg!(target_os = "linux") {
            let statm = Statm::open().expect("/proc/self/statm");
            let rss = statm.resident_bytes().expect("a reading");
            assert!(rss > MIB && rss < 64 * 1024 * MIB, "{rss}");
            let grown = vec![1u8; 64 * MIB as usize];
            let after = statm.resident_bytes().expect("a second reading from the same open file");
            assert!(after >= rss + 32 * MIB, "the reading is current, not the first one again: {rss} then {after}");
            drop(grown);
        }
    }
}
