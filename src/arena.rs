//! Arenas: the shared page heaps that thread heaps take spans from.
//!
//! An arena owns regions of address space and keeps their free pages as runs, binned
//! by length and merged with free neighbours. Arena 0 grows with the program break
//! (`brk`), like glibc's main arena; when the break cannot move (a mapping above it,
//! RLIMIT_DATA, valgrind's cap) it falls back to mmapped regions, as the other arenas
//! always do. The number of arenas is bounded by the CPUs the process may use and by
//! `M_ARENA_MAX` (options.rs); thread heaps are spread over them round-robin.
//!
//! The break is shared with the rest of the process. Arena 0 remembers where it left
//! the break; if `sbrk(0)` says otherwise, someone else moved it, and the memory above
//! our region is theirs: the next growth starts a new region, and the top is only
//! lowered while the break is still exactly where we left it. Which pages are ours is
//! known from the regions and the page map, never from "is it below the break".
//!
//! Free space at the top of the brk heap beyond `M_TRIM_THRESHOLD` is returned by
//! lowering the break (keeping `M_TOP_PAD`); an mmapped region that becomes entirely
//! free is unmapped (one spare is kept per arena); `malloc_trim` decommits the free
//! runs inside the heap with `MADV_DONTNEED`.
//!
//! Everything in `ArenaInner` is guarded by the arena's lock.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::fork;
use crate::options;
use crate::os::{self, PAGE_SHIFT, PAGE_SIZE};
use crate::pagemap;
use crate::size_class::{PerClass, NUM_CLASSES};
use crate::span::{self, Kind, Pool, Span, SpanList};
use crate::sync::{Mutex, MutexGuard};

pub const MAX_ARENAS: usize = 64;

/// Free runs of `i` pages live in bin `i` for `i < RUN_BINS - 1`; longer ones share the last.
const RUN_BINS: usize = 128;

/// Free pages that stayed unused this long are given back to the OS (MADV_DONTNEED),
/// checked at most every DECAY_CHECK_MS on the arena's own activity: no thread, no
/// timer, and a program that stops allocating stops paying for it.
pub const DECAY_MS: u64 = 1000;
const DECAY_CHECK_MS: u64 = 100;

/// The most free memory an arena keeps at its edges beyond what the options say (see
/// `ArenaInner::keep`): glibc's ceiling for its dynamic trim threshold (twice the
/// 32 MiB ceiling of the dynamic mmap threshold).
const KEEP_MAX: usize = 64 << 20;

/// Empty spans of small blocks an arena keeps ready, laid out and in the page map, so
/// that a new thread (or a class filling up again) takes one without carving pages or
/// faulting them in: at most SPAN_CACHE_SPANS of them holding at most SPAN_CACHE_MAX
/// bytes of once-used (so probably resident) pages, the lowest addresses first (so
/// they do not pin the top of the heap), each for at most DECAY_MS. A class that has
/// none ready may take one kept for another class (`take_cached_span_of_pages`).
const SPAN_CACHE_MAX: usize = 2 << 20;
const SPAN_CACHE_SPANS: usize = 128;

/// The smallest mmapped region an arena maps at a time.
const MIN_MMAP_REGION: usize = 4 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Brk,
    Mmap,
}

/// A contiguous piece of address space an arena got from the OS in one go (the brk
/// heap grows and shrinks at its end).
pub struct Region {
    pub start: usize,
    pub end: usize,
    pub kind: RegionKind,
    pub next: *mut Region,
}

static REGION_POOL: Mutex<Pool> = Mutex::new(Pool::new(core::mem::size_of::<Region>()));

pub struct ArenaInner {
    bins: [SpanList; RUN_BINS],
    /// Bit i set iff bins[i] is non-empty.
    nonempty: u128,
    /// Small spans whose thread exited, with free blocks / without.
    pub orphans: PerClass<SpanList>,
    pub orphans_full: PerClass<SpanList>,
    /// Empty small spans kept ready (see SPAN_CACHE_MAX), and their bytes.
    span_cache: PerClass<SpanList>,
    span_cache_bytes: usize,
    span_cache_count: usize,
    pub regions: *mut Region,
    /// The region at the break (arena 0 only), and whether brk may still be tried.
    brk_region: *mut Region,
    brk_usable: bool,
    /// A fully free mmapped region kept instead of unmapped, to avoid map/unmap churn.
    spare: *mut Region,
    /// Bytes of address space in regions (the heap's "arena" in mallinfo terms).
    pub region_bytes: usize,
    /// Bytes in free runs, and how many of those are decommitted (not resident).
    pub free_bytes: usize,
    pub decommitted_bytes: usize,
    pub free_runs: usize,
    /// Big blocks handed out (count and bytes).
    pub big_count: usize,
    pub big_bytes: usize,
    /// Bytes in small spans, and the bytes of blocks handed out from orphaned spans.
    pub small_span_bytes: usize,
    /// Bumped by fork() in the child when this arena was caught mid-update: spans
    /// carved before then are not given back to it.
    pub generation: u32,
    /// This arena's slot in ARENAS.
    index: usize,
    /// When decay last looked at the free runs (ms, os::now_ms).
    last_decay: u64,
    /// Free memory at the arena's edges kept instead of given back, learned: at the top
    /// of the brk heap beyond M_TOP_PAD when it trims, and in wholly free mmapped
    /// regions beyond the spare one. A program that frees large buffers and allocates
    /// them again within DECAY_MS (a loop) would otherwise have the break lowered and
    /// raised, or regions unmapped and mapped, and every page faulted in again, on every
    /// turn. When the arena has to grow within DECAY_MS of giving memory back, it gave
    /// back memory the program still uses, so from then on it keeps twice as much (at
    /// least what it gave back, at most KEEP_MAX). A decay period without such a miss
    /// forgets it, and gives the kept memory back (`forget_keep`); meanwhile decay
    /// decommits kept pages that stay unused like any free run. Only with the dynamic
    /// mmap threshold: a program that set M_TRIM_THRESHOLD or M_TOP_PAD gets exactly the
    /// trim it asked for, as from glibc.
    keep: usize,
    /// The last give-back at an edge (ms, 0 if none since the last miss) and its size.
    gave_back_at: u64,
    gave_back_bytes: usize,
    /// When the arena last had to grow right after giving memory back (ms).
    keep_missed_at: u64,
}

// SAFETY: raw pointers inside are only followed under the arena lock.
unsafe impl Send for ArenaInner {}

pub struct Arena {
    pub inner: Mutex<ArenaInner>,
}

impl ArenaInner {
    const fn new() -> Self {
        ArenaInner {
            bins: [const { SpanList::new() }; RUN_BINS],
            nonempty: 0,
            orphans: PerClass([const { SpanList::new() }; NUM_CLASSES]),
            orphans_full: PerClass([const { SpanList::new() }; NUM_CLASSES]),
            span_cache: PerClass([const { SpanList::new() }; NUM_CLASSES]),
            span_cache_bytes: 0,
            span_cache_count: 0,
            regions: ptr::null_mut(),
            brk_region: ptr::null_mut(),
            brk_usable: false,
            spare: ptr::null_mut(),
            region_bytes: 0,
            free_bytes: 0,
            decommitted_bytes: 0,
            free_runs: 0,
            big_count: 0,
            big_bytes: 0,
            small_span_bytes: 0,
            generation: 0,
            index: 0,
            last_decay: 0,
            keep: 0,
            gave_back_at: 0,
            gave_back_bytes: 0,
            keep_missed_at: 0,
        }
    }
}

pub static ARENAS: [Arena; MAX_ARENAS] = {
    let mut a = [const { Arena::new(0) }; MAX_ARENAS];
    let mut i = 1;
    while i < MAX_ARENAS {
        a[i] = Arena::new(i);
        i += 1;
    }
    a
};

impl Arena {
    const fn new(index: usize) -> Arena {
        let mut inner = ArenaInner::new();
        inner.index = index;
        inner.brk_usable = index == 0;
        Arena { inner: Mutex::new(inner) }
    }

    pub fn lock(&self) -> MutexGuard<'_, ArenaInner> {
        self.inner.lock()
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, ArenaInner>> {
        self.inner.try_lock()
    }

    pub fn as_ptr(&self) -> *mut Arena {
        self as *const Arena as *mut Arena
    }
}

fn bin_of(pages: usize) -> usize {
    pages.min(RUN_BINS - 1)
}

impl ArenaInner {
    #[inline]
    fn bin(&mut self, b: usize) -> &mut SpanList {
        // RUN_BINS is a power of two and b < RUN_BINS: the mask only proves it.
        &mut self.bins[b & (RUN_BINS - 1)]
    }

    #[inline]
    fn bin_ref(&self, b: usize) -> &SpanList {
        // As in `bin`.
        &self.bins[b & (RUN_BINS - 1)]
    }
}

impl ArenaInner {
    /// Takes a run of `pages` pages (aligned to `align` bytes, a power of two ≥ a page),
    /// growing the arena if needed. The span record comes back with `start`, `pages`,
    /// `arena`, `region` and `zeroed` set and nothing mapped to it in the page map.
    /// Null when out of memory.
    pub fn alloc_run(&mut self, arena: *mut Arena, pages: usize, align: usize) -> *mut Span {
        self.alloc_run_or_grow(arena, pages, align, true)
    }

    /// `alloc_run`, growing the arena only if `grow` (else null when no free run fits).
    pub fn alloc_run_or_grow(&mut self, arena: *mut Arena, pages: usize, align: usize, grow: bool) -> *mut Span {
        self.maybe_decay();
        let extra = (align >> PAGE_SHIFT).saturating_sub(1);
        let want = pages + extra;
        let mut run = self.find_run(want);
        if run.is_null() {
            if !grow || !self.grow(want) {
                return ptr::null_mut();
            }
            run = self.find_run(want);
            if run.is_null() {
                return ptr::null_mut();
            }
        }
        // SAFETY: `run` is a free run of this arena, just unlinked by find_run.
        unsafe {
            let aligned = ((*run).start + align - 1) & !(align - 1);
            let head_pages = (aligned - (*run).start) >> PAGE_SHIFT;
            let taken = if head_pages > 0 {
                let Some(t) = self.split_off_tail(run, (*run).pages - head_pages) else {
                    self.insert_free_run(run);
                    return ptr::null_mut();
                };
                self.insert_free_run(run);
                t
            } else {
                run
            };
            if (*taken).pages > pages {
                match self.split_off_tail(taken, (*taken).pages - pages) {
                    Some(rest) => self.insert_free_run(rest),
                    None => {
                        self.insert_free_run(taken);
                        return ptr::null_mut();
                    }
                }
            }
            (*taken).arena = arena;
            (*taken).next = ptr::null_mut();
            (*taken).prev = ptr::null_mut();
            taken
        }
    }

    /// Splits the last `tail_pages` pages of the (unlinked, unmapped) run `s` into a new
    /// record. `None` when no record can be had.
    unsafe fn split_off_tail(&mut self, s: *mut Span, tail_pages: usize) -> Option<*mut Span> {
        let t = span::new_span();
        if t.is_null() {
            return None;
        }
        // SAFETY: `s` is a valid run owned by the caller; `t` is a fresh record.
        unsafe {
            (*s).pages -= tail_pages;
            (*t).start = (*s).end_addr();
            (*t).pages = tail_pages;
            (*t).kind = Kind::FreeRun;
            (*t).cache_off = 0;
            (*t).zeroed = (*s).zeroed;
            (*t).decommitted = (*s).decommitted;
            (*t).region = (*s).region;
            (*t).arena = (*s).arena;
        }
        Some(t)
    }

    /// Unlinks and returns a free run of at least `pages` pages, or null.
    fn find_run(&mut self, pages: usize) -> *mut Span {
        let s = self.best_run(pages);
        if !s.is_null() {
            // SAFETY: `s` is a free run in one of this arena's bins.
            unsafe { self.remove_free_run(s) };
        }
        s
    }

    /// The free run `find_run` would take for `pages` pages, left in its bin; or null.
    fn best_run(&self, pages: usize) -> *mut Span {
        let first = bin_of(pages);
        let mut mask = self.nonempty & (!0u128 << first);
        while mask != 0 {
            let b = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if b < RUN_BINS - 1 {
                return self.bin_ref(b).head;
            }
            // The last bin mixes lengths: best fit, then the lowest address (keeping the
            // top of the heap free so that it can be trimmed).
            let mut best: *mut Span = ptr::null_mut();
            self.bin_ref(b).for_each(|s| {
                // SAFETY: members of a bin are valid free runs.
                unsafe {
                    if (*s).pages >= pages
                        && (best.is_null()
                            || (*s).pages < (*best).pages
                            || ((*s).pages == (*best).pages && (*s).start < (*best).start))
                    {
                        best = s;
                    }
                }
            });
            if !best.is_null() {
                return best;
            }
        }
        ptr::null_mut()
    }

    /// Links `s` (kind FreeRun, unlinked) into its bin and maps its boundary pages.
    unsafe fn insert_free_run(&mut self, s: *mut Span) {
        // SAFETY: `s` is a valid free run record that no list holds.
        unsafe {
            (*s).kind = Kind::FreeRun;
            (*s).cache_off = 0;
            (*s).heap = ptr::null_mut();
            let b = bin_of((*s).pages);
            self.bin(b).push_front(s);
            self.nonempty |= 1u128 << b;
            pagemap::set((*s).start, s);
            pagemap::set((*s).end_addr() - PAGE_SIZE, s);
            self.free_bytes += (*s).bytes();
            if (*s).decommitted {
                self.decommitted_bytes += (*s).bytes();
            }
            self.free_runs += 1;
        }
    }

    /// Unlinks a free run from its bin and unmaps its boundary pages.
    unsafe fn remove_free_run(&mut self, s: *mut Span) {
        // SAFETY: `s` is a free run in its bin.
        unsafe {
            let b = bin_of((*s).pages);
            self.bin(b).remove(s);
            if self.bin(b).is_empty() {
                self.nonempty &= !(1u128 << b);
            }
            pagemap::set((*s).start, ptr::null_mut());
            pagemap::set((*s).end_addr() - PAGE_SIZE, ptr::null_mut());
            self.free_bytes -= (*s).bytes();
            if (*s).decommitted {
                self.decommitted_bytes -= (*s).bytes();
            }
            self.free_runs -= 1;
        }
    }

    /// The free run that ends at `addr` or starts at `addr` in `region`, if any.
    fn free_neighbour(&self, page_addr: usize, region: *mut Region, arena: *mut Arena) -> *mut Span {
        let s = pagemap::lookup(page_addr);
        if s.is_null() {
            return s;
        }
        // SAFETY: page-map entries point at live span records.
        unsafe {
            if (*s).kind == Kind::FreeRun && (*s).region == region && (*s).arena == arena {
                s
            } else {
                ptr::null_mut()
            }
        }
    }

    /// Gives the pages of `s` back to the arena: merges it with free neighbours, bins
    /// it, and trims the top of the heap or a whole region if that frees enough.
    /// The page map must no longer map any page of `s` except through `s` itself.
    ///
    /// # Safety
    /// `s` is an unlinked span of this arena holding no live block.
    pub unsafe fn release_run(&mut self, s: *mut Span, arena: *mut Arena) {
        self.maybe_decay();
        // SAFETY: `s` is ours and holds nothing live; neighbours come from the page map.
        unsafe {
            (*s).freed_at = os::now_ms();
            (*s).kind = Kind::FreeRun;
            (*s).cache_off = 0;
            (*s).heap = ptr::null_mut();
            self.absorb_free_neighbours(s, arena);
            if self.try_trim_run(s) {
                return;
            }
            self.insert_free_run(s);
        }
    }

    /// Merges the free runs directly before and after the (unlinked) run `s` into it.
    ///
    /// # Safety
    /// `s` is an unlinked free run of this arena.
    unsafe fn absorb_free_neighbours(&mut self, s: *mut Span, arena: *mut Arena) {
        // SAFETY: `s` is ours; neighbours come from the page map under the lock.
        unsafe {
            let region = (*s).region;
            let left = if (*s).start > PAGE_SIZE {
                self.free_neighbour((*s).start - PAGE_SIZE, region, arena)
            } else {
                ptr::null_mut()
            };
            if !left.is_null() && (*left).end_addr() == (*s).start {
                self.remove_free_run(left);
                (*s).start = (*left).start;
                (*s).pages += (*left).pages;
                (*s).zeroed &= (*left).zeroed;
                (*s).decommitted &= (*left).decommitted;
                span::delete_span(left);
            }
            let right = self.free_neighbour((*s).end_addr(), region, arena);
            if !right.is_null() && (*right).start == (*s).end_addr() {
                self.remove_free_run(right);
                (*s).pages += (*right).pages;
                (*s).zeroed &= (*right).zeroed;
                (*s).decommitted &= (*right).decommitted;
                span::delete_span(right);
            }
        }
    }

    /// Takes back an empty small span of this arena (unlinked, holding no block): keeps
    /// it ready in the span cache, or gives its pages back.
    ///
    /// A cached span is in state ORPHAN with `used == 0`, `cache_off` 0 and `bump` back
    /// at `start`, so a stray free into it takes the slow path, where `owning_span`
    /// reports a pointer that was never allocated, not a corruption. (With its class's
    /// cache offset still in its pages' cache words, the free fast path, which reads
    /// only those and the block's mark, took a stray free of a block whose page was
    /// purged, mark 0, into the freeing thread's cache, to be handed out again while
    /// another thread could carve the span.)
    ///
    /// # Safety
    /// `s` is an empty small span of this arena's current generation, on no list.
    pub unsafe fn cache_small_span(&mut self, s: *mut Span) {
        // SAFETY: per the contract; cached spans are ours under the lock.
        unsafe {
            let sp = &mut *s;
            // What it holds of once-used pages, kept in `map_size` (unused by small spans).
            sp.map_size = os::page_round_up(sp.bump - sp.start);
            sp.heap = ptr::null_mut();
            sp.thread_free.store(span::TF_ORPHAN, Ordering::Release);
            sp.free = span::list_end();
            sp.bump = sp.start;
            sp.used = 0;
            sp.in_full = false;
            sp.is_current = false;
            sp.freed_at = os::now_ms();
            crate::pagemap::set_cache_off(sp, 0);
            let bytes = sp.map_size;
            // Make room, evicting higher spans than this one; if none is higher, this
            // one goes instead.
            while self.span_cache_bytes + bytes > SPAN_CACHE_MAX || self.span_cache_count >= SPAN_CACHE_SPANS {
                let highest = self.highest_cached_span();
                if highest.is_null() || (*highest).start < sp.start {
                    self.free_small_span_pages(s);
                    return;
                }
                self.uncache(highest);
                self.free_small_span_pages(highest);
            }
            self.span_cache[sp.class as usize].push_front(s);
            self.span_cache_bytes += bytes;
            self.span_cache_count += 1;
        }
    }

    fn highest_cached_span(&self) -> *mut Span {
        let mut best: *mut Span = ptr::null_mut();
        for c in 0..NUM_CLASSES {
            // SAFETY: cached spans are valid records.
            self.span_cache[c].for_each(|s| unsafe {
                if best.is_null() || (*s).start > (*best).start {
                    best = s;
                }
            });
        }
        best
    }

    /// Unlinks a cached span.
    unsafe fn uncache(&mut self, s: *mut Span) {
        // SAFETY: `s` is in the span cache.
        unsafe {
            self.span_cache[(*s).class as usize].remove(s);
            self.span_cache_bytes -= (*s).map_size;
            (*s).map_size = 0;
        }
        self.span_cache_count -= 1;
    }

    /// An empty span of `class` from the cache (unlinked, state ORPHAN), or null.
    pub fn take_cached_span(&mut self, class: usize) -> *mut Span {
        let s = self.span_cache[class].head;
        if !s.is_null() {
            // SAFETY: a cached span record.
            unsafe { self.uncache(s) };
        }
        s
    }

    /// An empty span of another class with `pages` pages from the cache (unlinked,
    /// state ORPHAN), for a class that has none ready: the one with the most once-used
    /// (resident) bytes, but never the last span a class has ready, which a thread
    /// coming for that class would miss (taking any, thread-churn's peak RSS rose
    /// 0.4 MiB: its next threads faulted in fresh pages for the classes converted
    /// away). Null if there is none.
    ///
    /// The caller lays it out for its class; its pages and page-map entries stay.
    pub fn take_cached_span_of_pages(&mut self, pages: usize) -> *mut Span {
        let mut best: *mut Span = ptr::null_mut();
        for c in 0..NUM_CLASSES {
            if crate::size_class::span_of(c).pages as usize != pages {
                continue;
            }
            if self.span_cache[c].head == self.span_cache[c].tail {
                continue; // none, or the only one its class has ready
            }
            // SAFETY: cached spans are valid records.
            self.span_cache[c].for_each(|s| unsafe {
                if best.is_null() || (*s).map_size > (*best).map_size {
                    best = s;
                }
            });
        }
        if !best.is_null() {
            // SAFETY: a cached span record.
            unsafe { self.uncache(best) };
        }
        best
    }

    /// Gives the cached spans that `old_enough` picks back to the free pages.
    fn flush_span_cache(&mut self, old_enough: impl Fn(&Span) -> bool) {
        for c in 0..NUM_CLASSES {
            let mut s = self.span_cache[c].head;
            while !s.is_null() {
                // SAFETY: cached spans are valid records on this list.
                unsafe {
                    if old_enough(&*s) {
                        self.uncache(s);
                        // Giving the pages back (release_run) may run the decay, which
                        // flushes this same list: the span after `s` may be gone from
                        // it (and released) by now, so start over from the head.
                        self.free_small_span_pages(s);
                        s = self.span_cache[c].head;
                    } else {
                        s = (*s).next;
                    }
                }
            }
        }
    }

    /// Turns an empty small span (unlinked) back into free pages.
    unsafe fn free_small_span_pages(&mut self, s: *mut Span) {
        // SAFETY: the caller hands over an empty span of this arena.
        unsafe {
            self.small_span_bytes -= (*s).bytes();
            (*s).purged = 0;
            // Only a free run's boundary pages may map to it: unmap the rest now.
            pagemap::clear_range((*s).start, (*s).pages);
            (*s).zeroed = false;
            (*s).decommitted = false;
            let arena = (*s).arena;
            self.release_run(s, arena);
        }
    }

    /// Grows the big block `s` in place to `pages` pages by taking the start of the free
    /// run right after it, if there is one long enough, or, when `s` (with that run)
    /// ends at the top of the brk heap, by moving the break: as glibc grows its top
    /// chunk, so that a buffer growing at the top is neither copied nor resident twice.
    /// True if it grew.
    ///
    /// # Safety
    /// `s` is a live big span of this arena.
    pub unsafe fn grow_in_place(&mut self, s: *mut Span, pages: usize, arena: *mut Arena) -> bool {
        // SAFETY: `s` is ours; the neighbour comes from the page map under the lock;
        // brk_region, when set, is one of our regions.
        unsafe {
            let extra = pages.saturating_sub((*s).pages);
            if extra == 0 {
                return true;
            }
            let end = (*s).end_addr();
            let region = (*s).region;
            // The free run that starts right where `s` ends, or null.
            let run_after = |a: &Self| {
                let r = a.free_neighbour(end, region, arena);
                if !r.is_null() && (*r).start == end { r } else { ptr::null_mut() }
            };
            let mut right = run_after(self);
            let have = if right.is_null() { 0 } else { (*right).pages };
            if have < extra {
                let top = if right.is_null() { end } else { (*right).end_addr() };
                let at_top = !self.brk_region.is_null() && region == self.brk_region && (*self.brk_region).end == top;
                // Only where the block would otherwise make the arena grow anyway: free
                // pages elsewhere that can take it are better used than new ones. The new
                // pages join the run after `s` (or start it) as a fresh run.
                if !at_top || !self.best_run(pages).is_null() || !self.grow_brk((extra - have) << PAGE_SHIFT, arena) {
                    return false;
                }
                right = run_after(self);
                if right.is_null() || (*right).pages < extra {
                    return false;
                }
            }
            self.remove_free_run(right);
            if (*right).pages > extra {
                (*right).start += extra << PAGE_SHIFT;
                (*right).pages -= extra;
                self.insert_free_run(right);
            } else {
                span::delete_span(right);
            }
            (*s).pages = pages;
            self.big_bytes += extra << PAGE_SHIFT;
            true
        }
    }

    /// Shrinks the big block `s` in place to `pages` pages (fewer than it has): its tail
    /// becomes free pages, merged with a free neighbour and trimmed at the top of the
    /// heap like any freed run, as glibc splits a chunk that realloc shrinks. (If no
    /// record can be had for the tail, `s` keeps it.)
    ///
    /// # Safety
    /// `s` is a live big span of this arena (only its first page is in the page map).
    pub unsafe fn shrink_in_place(&mut self, s: *mut Span, pages: usize, arena: *mut Arena) {
        // SAFETY: `s` is ours, under the lock; the tail is a fresh record of its pages.
        unsafe {
            debug_assert!(pages >= 1 && pages < (*s).pages);
            let Some(tail) = self.split_off_tail(s, (*s).pages - pages) else {
                return;
            };
            self.big_bytes -= (*tail).bytes();
            // (split_off_tail made it a FreeRun; its pages were the block's.)
            (*tail).zeroed = false;
            (*tail).decommitted = false;
            self.release_run(tail, arena);
        }
    }

    /// If `s` (unlinked) reaches the top of the brk heap beyond the trim threshold,
    /// lowers the break; if it covers a whole mmapped region, unmaps the region.
    /// Returns true if `s` was used up (and deleted) in the process.
    unsafe fn try_trim_run(&mut self, s: *mut Span) -> bool {
        // SAFETY: `s` is a valid unlinked free run; regions are ours.
        unsafe {
            let region = (*s).region;
            if region.is_null() {
                return false;
            }
            let r = &mut *region;
            if r.kind == RegionKind::Brk {
                if region != self.brk_region || (*s).end_addr() != r.end {
                    return false;
                }
                let opts = options::get();
                if (*s).bytes() < opts.trim_threshold {
                    return false;
                }
                let keep = if opts.dynamic_threshold { opts.top_pad + self.keep } else { opts.top_pad };
                let release = os::page_round_down((*s).bytes().saturating_sub(keep));
                if !self.lower_break(release) {
                    return false;
                }
                self.note_give_back(release);
                (*s).pages -= release >> PAGE_SHIFT;
                if (*s).pages == 0 {
                    span::delete_span(s);
                    return true;
                }
                false
            } else {
                if (*s).start != r.start || (*s).end_addr() != r.end {
                    return false;
                }
                // Keep one wholly free region mapped, to absorb alloc/free cycles, and
                // more while a loop needs them again (see `keep`).
                if self.spare == region || self.spare.is_null() || !self.region_is_free(self.spare) {
                    self.spare = region;
                    return false;
                }
                let size = r.end - r.start;
                if options::get().dynamic_threshold && self.free_region_bytes(region) + size <= self.keep {
                    return false;
                }
                self.note_give_back(size);
                self.unlink_region(region);
                self.region_bytes -= r.end - r.start;
                os::unmap(r.start as *mut u8, r.end - r.start);
                REGION_POOL.lock().free(region.cast());
                span::delete_span(s);
                true
            }
        }
    }

    fn unlink_region(&mut self, region: *mut Region) {
        let mut link: *mut *mut Region = &mut self.regions;
        // SAFETY: walking our own region list.
        unsafe {
            while !(*link).is_null() {
                if *link == region {
                    *link = (*region).next;
                    return;
                }
                link = &mut (**link).next;
            }
        }
    }

    fn new_region(&mut self, start: usize, end: usize, kind: RegionKind) -> *mut Region {
        let r = REGION_POOL.lock().alloc().cast::<Region>();
        if r.is_null() {
            return r;
        }
        // SAFETY: a fresh zeroed record.
        unsafe {
            r.write(Region { start, end, kind, next: self.regions });
        }
        self.regions = r;
        self.region_bytes += end - start;
        r
    }

    /// Adds at least `pages` free pages to the arena. False when the OS says no.
    fn grow(&mut self, pages: usize) -> bool {
        let need = pages << PAGE_SHIFT;
        let arena = self.self_ptr();
        if self.brk_usable && self.grow_brk(need, arena) {
            return true;
        }
        self.grow_mmap(need, arena)
    }

    /// Is all of `region` one free run?
    fn region_is_free(&self, region: *mut Region) -> bool {
        // SAFETY: `region` is one of ours; page-map entries point at live records.
        unsafe {
            let s = pagemap::lookup((*region).start);
            !s.is_null() && (*s).kind == Kind::FreeRun && (*s).start == (*region).start && (*s).end_addr() == (*region).end
        }
    }

    fn self_ptr(&self) -> *mut Arena {
        ARENAS.get(self.index).unwrap_or(&ARENAS[0]).as_ptr()
    }

    /// Gives the top `release` bytes of the brk region back by lowering the break, if
    /// the break is still where we left it (else someone else's memory sits above ours)
    /// and no fork is under way. True if it did.
    fn lower_break(&mut self, release: usize) -> bool {
        if release == 0 || self.brk_region.is_null() {
            return false;
        }
        // SAFETY: brk_region is one of our regions.
        let end = unsafe { (*self.brk_region).end };
        let moved = fork::brk_section(|| os::brk_now() == end && os::brk_move(-(release as isize)).is_some());
        if moved != Some(true) {
            return false;
        }
        // SAFETY: as above.
        unsafe { (*self.brk_region).end -= release };
        self.region_bytes -= release;
        true
    }

    /// Grows the brk heap by at least `need` bytes; false (use mmap instead) if the
    /// break cannot move, or not now because a fork is under way.
    fn grow_brk(&mut self, need: usize, arena: *mut Arena) -> bool {
        fork::brk_section(|| self.grow_brk_now(need, arena)).unwrap_or(false)
    }

    fn grow_brk_now(&mut self, need: usize, arena: *mut Arena) -> bool {
        let opts = options::get();
        self.learn_keep(opts.dynamic_threshold);
        let size = os::page_round_up(need + opts.top_pad);
        let cur = os::brk_now();
        // SAFETY: brk_region, when set, is one of our regions.
        let contiguous = !self.brk_region.is_null() && unsafe { (*self.brk_region).end } == cur;
        if !contiguous && cur & (PAGE_SIZE - 1) != 0 {
            // Someone left the break mid-page: step to the next page boundary first.
            if os::brk_move((os::page_round_up(cur) - cur) as isize).is_none() {
                self.brk_usable = false;
                return false;
            }
        }
        let Some(old) = os::brk_move(size as isize) else {
            self.brk_usable = false;
            return false;
        };
        if old & (PAGE_SIZE - 1) != 0 {
            // Lost a race with another sbrk user; give it back and use mmap from now on.
            os::brk_move(-(size as isize));
            self.brk_usable = false;
            return false;
        }
        // SAFETY: as above.
        let region = if !self.brk_region.is_null() && unsafe { (*self.brk_region).end } == old {
            // SAFETY: extending our own region record.
            unsafe { (*self.brk_region).end = old + size };
            self.region_bytes += size;
            self.brk_region
        } else {
            let r = self.new_region(old, old + size, RegionKind::Brk);
            if r.is_null() {
                os::brk_move(-(size as isize));
                return false;
            }
            self.brk_region = r;
            r
        };
        self.add_fresh_run(old, size, region, arena)
    }

    fn grow_mmap(&mut self, need: usize, arena: *mut Arena) -> bool {
        let opts = options::get();
        self.learn_keep(opts.dynamic_threshold);
        let size = os::page_round_up(need + opts.top_pad).max(MIN_MMAP_REGION);
        let Some(p) = os::map(size) else { return false };
        let start = p as usize;
        if !pagemap::reserve(start, size) {
            // SAFETY: just mapped, unused.
            unsafe { os::unmap(p, size) };
            return false;
        }
        let r = self.new_region(start, start + size, RegionKind::Mmap);
        if r.is_null() {
            // SAFETY: as above.
            unsafe { os::unmap(p, size) };
            return false;
        }
        self.add_fresh_run(start, size, r, arena)
    }

    fn add_fresh_run(&mut self, start: usize, size: usize, region: *mut Region, arena: *mut Arena) -> bool {
        if !pagemap::reserve(start, size) {
            return false;
        }
        let s = span::new_span();
        if s.is_null() {
            return false;
        }
        // SAFETY: `s` is a fresh record describing memory we just got from the OS.
        unsafe {
            (*s).start = start;
            (*s).pages = size >> PAGE_SHIFT;
            (*s).zeroed = true;
            (*s).decommitted = false;
            (*s).region = region;
            (*s).arena = arena;
            // Merge with the run at the old top, but never trim what we just grew.
            self.absorb_free_neighbours(s, arena);
            self.insert_free_run(s);
        }
        true
    }

    /// The arena gave `bytes` back at an edge (lowered the break, unmapped a region).
    fn note_give_back(&mut self, bytes: usize) {
        self.gave_back_at = os::now_ms();
        self.gave_back_bytes = bytes;
    }

    /// The arena is about to grow: if it gave memory back less than DECAY_MS ago, that
    /// was memory the program still needed; keep more from now on (see `keep`).
    fn learn_keep(&mut self, dynamic: bool) {
        if self.gave_back_at == 0 {
            return;
        }
        let now = os::now_ms();
        if dynamic && now < self.gave_back_at + DECAY_MS {
            self.keep = (2 * self.keep).max(self.gave_back_bytes).min(KEEP_MAX);
            self.keep_missed_at = now;
        }
        self.gave_back_at = 0;
    }

    /// Bytes in this arena's wholly free mmapped regions, `except` not counted.
    fn free_region_bytes(&self, except: *mut Region) -> usize {
        let mut bytes = 0;
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: our region list, under the arena lock.
            unsafe {
                if r != except && (*r).kind == RegionKind::Mmap && self.region_is_free(r) {
                    bytes += (*r).end - (*r).start;
                }
                r = (*r).next;
            }
        }
        bytes
    }

    /// `keep` has expired: give back what it kept, as the options alone would have (the
    /// top of the brk heap beyond the trim threshold, wholly free regions beyond the
    /// spare).
    fn forget_keep(&mut self) {
        self.keep = 0;
        let top = self.brk_top_run();
        if !top.is_null() {
            // SAFETY: a free run of ours, in the bins.
            unsafe { self.trim_run(top) };
        }
        // One wholly free region at a time: unmapping one changes the list.
        loop {
            let mut r = self.regions;
            let mut run: *mut Span = ptr::null_mut();
            while !r.is_null() && run.is_null() {
                // SAFETY: our region list, under the arena lock.
                unsafe {
                    if (*r).kind == RegionKind::Mmap && r != self.spare && self.region_is_free(r) {
                        run = pagemap::lookup((*r).start);
                    }
                    r = (*r).next;
                }
            }
            if run.is_null() {
                break;
            }
            // SAFETY: `region_is_free` found this free run covering its whole region.
            unsafe { self.trim_run(run) };
        }
    }

    /// The free run that ends at the top of the brk heap, or null.
    fn brk_top_run(&self) -> *mut Span {
        if self.brk_region.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: brk_region is one of our regions.
        let end = unsafe { (*self.brk_region).end };
        let top = self.free_neighbour(end - PAGE_SIZE, self.brk_region, self.self_ptr());
        // SAFETY: `top`, when not null, is a free run of ours.
        if !top.is_null() && unsafe { (*top).end_addr() } == end {
            top
        } else {
            ptr::null_mut()
        }
    }

    /// Gives back what `try_trim_run` allows of `s`, a free run in the bins.
    ///
    /// # Safety
    /// `s` is a free run of this arena, in its bins.
    unsafe fn trim_run(&mut self, s: *mut Span) {
        // SAFETY: per the contract.
        unsafe {
            self.remove_free_run(s);
            if !self.try_trim_run(s) {
                self.insert_free_run(s);
            }
        }
    }

    /// Decommits the free runs that have been dirty for DECAY_MS, at most every
    /// DECAY_CHECK_MS (see DECAY_MS).
    pub fn maybe_decay(&mut self) {
        if self.keep != 0 && os::now_ms() >= self.keep_missed_at + DECAY_MS {
            self.forget_keep();
        }
        if self.free_bytes == self.decommitted_bytes && self.span_cache_bytes == 0 {
            return;
        }
        let now = os::now_ms();
        if now < self.last_decay + DECAY_CHECK_MS {
            return;
        }
        self.last_decay = now;
        self.flush_span_cache(|s| s.freed_at + DECAY_MS <= now);
        self.decommit_free_runs(|s| s.freed_at + DECAY_MS <= now);
    }

    /// Decommits every dirty free run for which `old_enough` says so; true if any was.
    fn decommit_free_runs(&mut self, old_enough: impl Fn(&Span) -> bool) -> bool {
        let mut released = false;
        for b in 0..RUN_BINS {
            let mut s = self.bin(b).head;
            while !s.is_null() {
                // SAFETY: bin members are valid free runs; decommitting free pages is sound.
                unsafe {
                    if !(*s).decommitted && old_enough(&*s) {
                        os::decommit((*s).start as *mut u8, (*s).bytes());
                        (*s).decommitted = true;
                        (*s).zeroed = true;
                        self.decommitted_bytes += (*s).bytes();
                        released = true;
                    }
                    s = (*s).next;
                }
            }
        }
        released
    }

    /// Lowers the break as far as `pad` allows and decommits every free run inside the
    /// heap (malloc_trim). Returns true if any memory was given back.
    pub fn trim(&mut self, pad: usize) -> bool {
        self.flush_span_cache(|_| true);
        let mut released = false;
        // The top of the brk heap.
        let top = self.brk_top_run();
        if !top.is_null() {
            // SAFETY: `top` is a free run of ours.
            unsafe {
                let release = os::page_round_down((*top).bytes().saturating_sub(pad)).min((*top).bytes() - PAGE_SIZE);
                if release > 0 {
                    self.remove_free_run(top);
                    if self.lower_break(release) {
                        (*top).pages -= release >> PAGE_SHIFT;
                        released = true;
                    }
                    self.insert_free_run(top);
                }
            }
        }
        // Every free run: give its pages back, keep the address range.
        self.decommit_free_runs(|_| true) || released
    }

    /// Calls `f` with every span record in this arena's regions, in address order per
    /// region (small spans, big blocks and free runs), found through the page map.
    /// Under the arena lock no span of this arena can be released, so every record
    /// `f` sees is live; the fields that other threads own may be changing.
    pub fn for_each_span(&self, mut f: impl FnMut(&Span)) {
        self.for_each_region(|r| self.for_each_span_in(r, &mut f));
    }

    /// Calls `f` with each region of this arena (newest first). The records stay
    /// valid while `self` (the locked arena) is borrowed.
    pub fn for_each_region<'a>(&'a self, mut f: impl FnMut(&'a Region)) {
        let mut r = self.regions;
        while !r.is_null() {
            // SAFETY: our region list, under the arena lock; a record leaves it (and
            // goes back to its pool) only through `&mut self`.
            unsafe {
                f(&*r);
                r = (*r).next;
            }
        }
    }

    /// `for_each_span` for one region of this arena. Pages that start no span (a big
    /// block being published, or the leftovers of a fork reset) are skipped.
    pub fn for_each_span_in(&self, r: &Region, mut f: impl FnMut(&Span)) {
        let mut addr = r.start;
        while addr < r.end {
            let s = pagemap::lookup(addr);
            // SAFETY: page-map entries are live records (see for_each_span).
            unsafe {
                if !s.is_null() && (*s).start == addr && (*s).pages > 0 {
                    f(&*s);
                    addr = (*s).end_addr();
                } else {
                    addr += PAGE_SIZE;
                }
            }
        }
    }

    /// Is `s` the free run at the top of the brk heap (what trimming would lower)?
    pub fn is_heap_top(&self, s: &Span) -> bool {
        // SAFETY: brk_region, when set, is one of our regions.
        s.kind == Kind::FreeRun && !self.brk_region.is_null() && s.region == self.brk_region && s.end_addr() == unsafe { (*self.brk_region).end }
    }

    /// Empty small spans kept ready (count, bytes of once-used pages).
    pub fn span_cache_usage(&self) -> (usize, usize) {
        (self.span_cache_count, self.span_cache_bytes)
    }

    /// Forgets everything (the child after fork found this arena mid-update). Its
    /// memory stays mapped and unused; spans carved from it are no longer given back.
    pub fn reset_after_fork(&mut self) {
        let generation = self.generation + 1;
        let brk_usable = !self.brk_region.is_null() || self.brk_usable;
        let index = self.index;
        *self = ArenaInner::new();
        self.generation = generation;
        self.brk_usable = brk_usable;
        self.index = index;
    }
}

/// Count of thread heaps created, for the round-robin choice of arena.
static NEXT_ARENA: AtomicUsize = AtomicUsize::new(0);

/// The arena a new thread heap should use.
pub fn pick() -> *mut Arena {
    let n = crate::init::arena_count();
    let i = NEXT_ARENA.fetch_add(1, Ordering::Relaxed) % n.max(1);
    ARENAS.get(i).unwrap_or(&ARENAS[0]).as_ptr()
}

pub fn reset_pools_after_fork() {
    crate::fork::reset_pool_after_fork(&REGION_POOL, core::mem::size_of::<Region>());
}

/// Calls `f(start, bytes)` for each mapping of region records (allocator metadata).
pub fn for_each_meta_chunk(f: impl FnMut(usize, usize)) {
    REGION_POOL.lock().for_each_chunk(f);
}
