//! Large blocks: requests at or above the mmap threshold get a mapping of their own,
//! unmapped on free and resized with mremap, as in glibc.
//!
//! Each has a span record (kind `Large`) that the page map points to from the block's
//! first page, so `free` finds it without trusting anything stored near the block.
//! The records of live blocks are also on the `LIVE` list, for the statistics and the
//! heap map (a lock beside an mmap or munmap syscall, never on a small-block path).

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::options;
use crate::os::{self, PAGE_SHIFT, PAGE_SIZE};
use crate::pagemap;
use crate::span::{self, Kind, Span, SpanList};
use crate::sync::Mutex;

/// The live large blocks, linked through their records' `next`/`prev`. A leaf lock:
/// nothing else is locked while it is held. A block being resized is off the list.
/// A record is on the list iff its `arena_gen` equals the list's `generation` (a fork
/// child that found the list mid-update starts a new one, see `reset_after_fork`).
struct LiveList {
    blocks: SpanList,
    generation: u32,
}
// SAFETY: the records on the list are only followed under the Mutex.
unsafe impl Send for LiveList {}
static LIVE: Mutex<LiveList> = Mutex::new(LiveList { blocks: SpanList::new(), generation: 0 });

/// Calls `f` with every live large block's record, under the list's lock.
pub fn for_each_live(mut f: impl FnMut(&Span)) {
    let live = LIVE.lock();
    // SAFETY: records on the list are live until unlisted, which needs the lock.
    live.blocks.for_each(|s| f(unsafe { &*s }));
}

fn list(s: *mut Span) {
    let mut live = LIVE.lock();
    // SAFETY: `s` is a live Large record on no list.
    unsafe {
        (*s).arena_gen = live.generation;
        live.blocks.push_front(s);
    }
}

fn unlist(s: *mut Span) {
    let mut live = LIVE.lock();
    // SAFETY: `s` is a live Large record; it is on the list iff its generation is the
    // list's (type doc).
    unsafe {
        if (*s).arena_gen == live.generation {
            live.blocks.remove(s);
            (*s).arena_gen = live.generation.wrapping_sub(1);
        }
    }
}

/// The child after fork: a list whose lock a vanished thread held may be mid-update;
/// start an empty one (the blocks on the old one are no longer listed).
pub fn reset_after_fork() {
    if LIVE.raw().is_locked() {
        LIVE.raw().reset();
        // SAFETY: the child is single-threaded here.
        let live = unsafe { LIVE.get_unlocked() };
        live.blocks = SpanList::new();
        live.generation = live.generation.wrapping_add(1);
    }
}

/// Live mmapped blocks and their bytes (mallinfo's hblks / hblkhd).
pub static COUNT: AtomicUsize = AtomicUsize::new(0);
pub static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most blocks and bytes ever mmapped at once (malloc_stats' "max mmap ...").
pub static PEAK_COUNT: AtomicUsize = AtomicUsize::new(0);
pub static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// May one more request be served by its own mapping (M_MMAP_MAX)?
pub fn mmap_allowed() -> bool {
    COUNT.load(Ordering::Relaxed) < options::mmap_max()
}

/// Maps a block of at least `size` bytes aligned to `align`. Null on failure.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let map_size = os::page_round_up(size).max(os::PAGE_SIZE);
    // Strict mode: a guard page on each side (check.rs), for page-aligned requests.
    let guarded = crate::check::enabled() && align <= PAGE_SIZE;
    let p = if guarded { map_guarded(map_size) } else { os::map_aligned(map_size, align) };
    let Some(p) = p else { return core::ptr::null_mut() };
    let s = span::new_span();
    if s.is_null() {
        // SAFETY: just mapped, unused.
        unsafe { unmap_block(p, map_size, guarded) };
        return core::ptr::null_mut();
    }
    // SAFETY: a fresh record describing the fresh mapping.
    unsafe {
        (*s).kind = Kind::Large;
        (*s).cache_off = 0;
        (*s).start = p as usize;
        (*s).pages = map_size >> PAGE_SHIFT;
        (*s).map_size = map_size;
        (*s).zeroed = true;
        (*s).checked = guarded;
    }
    // SAFETY: `s` is the live record just filled in.
    if !unsafe { pagemap::set(p as usize, s) } {
        // SAFETY: as above; the record was never published.
        unsafe {
            unmap_block(p, map_size, guarded);
            span::delete_span(s);
        }
        return core::ptr::null_mut();
    }
    list(s);
    let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
    PEAK_COUNT.fetch_max(count, Ordering::Relaxed);
    let now = BYTES.fetch_add(map_size, Ordering::Relaxed) + map_size;
    PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
    p
}

/// Unmaps the large block of span `s`.
///
/// # Safety
/// `s` is a live Large span and the block is not used any more.
pub unsafe fn free(s: *mut Span) {
    // SAFETY: per the contract, nothing else references the block or the record.
    unsafe {
        let start = (*s).start;
        let size = (*s).map_size;
        unlist(s);
        // Remembered as freed, so that a second free says "double free".
        pagemap::set(start, span::FREED_LARGE.get());
        unmap_block(start as *mut u8, size, (*s).checked);
        span::delete_span(s);
        COUNT.fetch_sub(1, Ordering::Relaxed);
        BYTES.fetch_sub(size, Ordering::Relaxed);
        options::note_mmapped_free(size);
    }
}

/// Maps `size` bytes with an inaccessible page before and after; returns the start of
/// the accessible part.
fn map_guarded(size: usize) -> Option<*mut u8> {
    let total = size.checked_add(2 * PAGE_SIZE)?;
    let base = os::map(total)?;
    // SAFETY: both guards lie in the mapping just made, which nothing uses yet.
    unsafe {
        if !os::guard(base, PAGE_SIZE) || !os::guard(base.add(PAGE_SIZE + size), PAGE_SIZE) {
            os::unmap(base, total);
            return None;
        }
        Some(base.add(PAGE_SIZE))
    }
}

/// Unmaps a block mapped by `alloc` (with its guards if it has them).
///
/// # Safety
/// `p` and `size` describe a block of ours that nothing uses any more.
unsafe fn unmap_block(p: *mut u8, size: usize, guarded: bool) {
    // SAFETY: per the contract.
    unsafe {
        if guarded {
            os::unmap(p.sub(PAGE_SIZE), size + 2 * PAGE_SIZE);
        } else {
            os::unmap(p, size);
        }
    }
}

/// Resizes the large block of `s` to hold `new_size` bytes with mremap. Returns the
/// (possibly moved) block, or null if the kernel refused (the old block is intact).
///
/// # Safety
/// `s` is a live Large span.
pub unsafe fn realloc(s: *mut Span, new_size: usize) -> *mut u8 {
    let new_map = os::page_round_up(new_size).max(os::PAGE_SIZE);
    // SAFETY: per the contract.
    unsafe {
        let old_start = (*s).start;
        let old_map = (*s).map_size;
        if new_map == old_map {
            return old_start as *mut u8;
        }
        // Off the list while its mapping moves: the statistics skip it for a moment
        // rather than ask the kernel about an address being unmapped.
        unlist(s);
        let q = resize(s, new_size);
        list(s);
        q
    }
}

/// `realloc`'s work, with `s` off the LIVE list.
unsafe fn resize(s: *mut Span, new_size: usize) -> *mut u8 {
    let new_map = os::page_round_up(new_size).max(os::PAGE_SIZE);
    // SAFETY: per realloc's contract.
    unsafe {
        let old_start = (*s).start;
        let old_map = (*s).map_size;
        let Some(q) = os::remap(old_start as *mut u8, old_map, new_map) else {
            return core::ptr::null_mut();
        };
        let q = q as usize;
        if q != old_start {
            if !pagemap::set(q, s) {
                // Cannot record the new place: move the mapping back is not possible in
                // general, so shrink the damage: keep the block where the kernel put it
                // and report failure after undoing with another mremap.
                if let Some(back) = os::remap(q as *mut u8, new_map, old_map) {
                    (*s).start = back as usize;
                    pagemap::set(old_start, core::ptr::null_mut());
                    pagemap::set(back as usize, s);
                }
                return core::ptr::null_mut();
            }
            pagemap::set(old_start, core::ptr::null_mut());
        }
        (*s).start = q;
        (*s).pages = new_map >> PAGE_SHIFT;
        (*s).map_size = new_map;
        if new_map > old_map {
            let now = BYTES.fetch_add(new_map - old_map, Ordering::Relaxed) + new_map - old_map;
            PEAK_BYTES.fetch_max(now, Ordering::Relaxed);
        } else {
            BYTES.fetch_sub(old_map - new_map, Ordering::Relaxed);
        }
        q as *mut u8
    }
}
