//! The global allocator: mimalloc, entered through its plain `malloc` whenever the alignment
//! asked for is one every mimalloc block has anyway.
//!
//! The `mimalloc` crate passes every allocation to `mi_malloc_aligned`. Its fast path serves only
//! blocks of at most 1 KiB taken from a non-empty free list; anything else (a refill, a growing
//! `Vec`, a B-tree node, an Arrow buffer) goes the generic way, which over-allocates by the
//! alignment unless the size is a power of two. Rust asks for at most word alignment almost
//! always, and every mimalloc block is already word-aligned (whole words from an aligned page
//! start), so those go to `mi_malloc` and `mi_realloc`; only larger alignments (Arrow's 64 B
//! buffers) take the aligned entry points.
//!
//! When mimalloc gives freed memory back to the OS is set here too: `governor` keeps it for
//! `sluice run` until memory nears its bound.

pub mod governor;

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long};

use libmimalloc_sys as mi;

/// The alignment of every block mimalloc hands out.
const WORD: usize = std::mem::size_of::<usize>();

/// mimalloc, as `#[global_allocator]` of the binary and the benchmarks.
pub struct Allocator;

// SAFETY: mimalloc returns blocks of at least the size asked, aligned to a word always and to
// `layout.align()` through its aligned entry points; `mi_free` takes any of them.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain calls into mimalloc with the caller's size and alignment.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator.
        unsafe { mi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe {
            if layout.align() <= WORD {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// `sluice run`'s purge delay (how long mimalloc keeps freed memory before it gives it back to
/// the OS) until its [`governor`] starts, and wherever it cannot: none, which always holds the
/// memory bound.
pub const RUN_PURGE_DELAY_MS: c_long = 0;

/// `sluice replay`'s: mimalloc's default. Its memory is bounded by one batch of lines or rows,
/// not by a flow-control budget, and purging each batch's pages at once made it fault them back
/// in for the next (a third of its CPU went to the kernel).
pub const REPLAY_PURGE_DELAY_MS: c_long = 1_000;

/// `mi_option_purge_delay` in mimalloc's header (the same number in v2 and v3).
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Whether the operator set the purge delay with mimalloc's own `MIMALLOC_PURGE_DELAY`, which
/// mimalloc has read and which sluice then leaves as it is.
fn set_by_operator() -> bool {
    std::env::var_os("MIMALLOC_PURGE_DELAY").is_some()
}

/// Set mimalloc's purge delay to `ms`, unless the operator set it.
pub fn purge_after(ms: c_long) {
    if !set_by_operator() {
        set_purge_delay(ms);
    }
}

/// Keep resident memory under `bound` bytes by purging freed memory at once only near it
/// ([`governor`]); `false` where that cannot be done, or the operator set the delay.
pub fn govern(bound: u64) -> bool {
    !set_by_operator() && governor::start(governor::Watermarks::below(bound))
}

fn set_purge_delay(ms: c_long) {
    // SAFETY: sets one aligned integer, which mimalloc's threads read without a lock: a thread
    // reading it meanwhile sees the old delay or the new one (a word is stored whole).
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, ms) }
}

/// Give back to the OS what mimalloc freed and has not purged yet.
fn collect() {
    // SAFETY: no arguments but the flag; callable from any thread at any time.
    unsafe { mi_collect(true) }
}

// mimalloc's own entry points for its options and its purge.
unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_collect(force: bool);
}

/// mimalloc's purge delay now, in milliseconds.
pub fn purge_delay() -> c_long {
    // SAFETY: reads one integer option.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

/// Turn transparent huge pages off for this process. mimalloc asks for them on its arenas
/// (`MADV_HUGEPAGE`), and a huge page stays resident while any small page of it is in use, which
/// puts the peak RSS well over the flow-control bound (`docs/performance.md`, end to end from the
/// Pub/Sub emulator). Done first, before the runtime's threads allocate; the hot-path bench does
/// it too, so that it measures memory as the binary uses it.
#[cfg(target_os = "linux")]
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: integer arguments only; it sets a flag of this process's memory policy.
    match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn transparent_huge_pages_are_turned_off() {
        no_transparent_huge_pages().unwrap();
        // SAFETY: integer arguments only; reads the flag.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }

    #[test]
    fn purge_delay_is_set_unless_mimalloc_s_variable_is() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay(), 1_000, "the option is mimalloc's purge_delay, 1,000 ms by default");
            purge_after(RUN_PURGE_DELAY_MS);
            assert_eq!(purge_delay(), RUN_PURGE_DELAY_MS);
            purge_after(1_000);
        }
    }

    /// Every size up to 5 KiB (small, medium and page-sized blocks, free lists full and empty)
    /// at every alignment from 1 to 4 KiB comes back aligned, and keeps its bytes when grown.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes_when_grown() {
        let a = Allocator;
        let mut held = Vec::new();
        for align in (0..=12).map(|p| 1usize << p) {
            for size in (1..=5 * 1024).step_by(7) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; every block is freed below with its layout.
                unsafe {
                    let p = if size % 2 == 0 { a.alloc(layout) } else { a.alloc_zeroed(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if size % 2 == 1 {
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0), "zeroed");
                    }
                    std::ptr::write_bytes(p, 0xa5, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown: size {size} align {align}");
                    assert!(std::slice::from_raw_parts(grown, size).iter().all(|&b| b == 0xa5));
                    held.push((grown, Layout::from_size_align(size * 3, align).unwrap()));
                }
            }
        }
        for (p, layout) in held {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) }
        }
    }
}
