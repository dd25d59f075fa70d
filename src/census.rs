//! A census of the heap: every span of every arena counted, by size class and by
//! arena, with the resident bytes split by what they hold, and reconciled with what
//! the kernel charges the process (the RSS breakdown).
//!
//! Nothing is counted on the fast paths. The census walks the arenas one at a time
//! under each one's lock (arena.rs `for_each_span_in`), then the live large blocks
//! (large.rs), then the metadata pools, each under its own lock and never two at once,
//! and asks the kernel which pages are resident (resident.rs). The figures of spans
//! other threads own are racy snapshots (span.rs `live_blocks`): good to a few blocks
//! while those threads run, exact when they are quiet.
//!
//! # The breakdown (resident bytes)
//! Every resident page of the allocator lands in exactly one line:
//! - live small blocks: blocks handed out, at their class size (the request's own
//!   size is not recorded, so class rounding is inside this line, not beside it);
//!   a span's resident bytes go to its live blocks first, the rest to its free blocks;
//! - live big and large blocks: their resident pages;
//! - free blocks in thread heaps' spans (the thread caches) and in orphaned spans
//!   (of threads that exited, kept by the arena: oxmalloc's bins), including the few
//!   bytes at a span's tail that no block covers;
//! - the kept top of the brk heap (the free run trimming would lower);
//! - pages waiting for decay: other free runs, and empty spans kept ready;
//! - region pages that start no span (a big block being published; normally 0);
//! - metadata: span, region and heap records, the page map.
//!
//! Remote frees not yet collected by their span's owner count as live until it does.
//! The process's RSS (smaps_rollup) minus the allocator's total is the remainder:
//! the program's binary and libraries, stacks, and memory it maps itself.

use core::sync::atomic::Ordering;

use crate::arena::{Region, ARENAS, MAX_ARENAS};
use crate::init;
use crate::large;
use crate::os;
use crate::resident::{self, Window};
use crate::size_class::{block_size, NUM_CLASSES};
use crate::span::{Kind, Span};

/// Entries of `Stats::classes`.
pub const CLASSES: usize = NUM_CLASSES;
/// Entries of `Stats::arenas` (the first `arena_count` are used).
pub const ARENAS_MAX: usize = MAX_ARENAS;

/// One size class, over all arenas (spans owned by threads or orphaned; empty spans
/// kept ready are counted in their arena).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ClassStats {
    /// The class's block size.
    pub block_size: usize,
    /// Spans of this class, and their bytes of address space.
    pub spans: usize,
    pub span_bytes: usize,
    /// Blocks handed out, and their bytes (at the class size).
    pub blocks_in_use: usize,
    pub bytes_in_use: usize,
    /// Blocks the spans hold in all (in use + free + never carved).
    pub blocks_total: usize,
    /// Resident bytes of the spans.
    pub resident: usize,
}

impl ClassStats {
    /// Adds `other`'s counts to these (the block size stays).
    pub fn add(&mut self, other: &ClassStats) {
        self.spans += other.spans;
        self.span_bytes += other.span_bytes;
        self.blocks_in_use += other.blocks_in_use;
        self.bytes_in_use += other.bytes_in_use;
        self.blocks_total += other.blocks_total;
        self.resident += other.resident;
    }
}

/// One arena.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ArenaStats {
    /// Bytes of address space in its regions (glibc's "system bytes").
    pub system: usize,
    /// Of which resident.
    pub resident: usize,
    /// Bytes handed out: small blocks at their class size, big blocks' pages.
    pub in_use: usize,
    /// Regions (address ranges got from the OS in one piece; brk or mmap).
    pub regions: usize,
    /// Spans of small blocks (owned or orphaned), and their bytes.
    pub small_spans: usize,
    pub small_span_bytes: usize,
    /// Big blocks (whole pages from the heap) handed out, and their bytes.
    pub big_blocks: usize,
    pub big_bytes: usize,
    /// Free page runs, their bytes, and the bytes of them decommitted.
    pub free_runs: usize,
    pub free_bytes: usize,
    pub decommitted_bytes: usize,
    /// Empty spans kept ready, and their once-used bytes.
    pub cached_spans: usize,
    pub cached_bytes: usize,
}

/// Resident memory by what it holds (see the module doc), and the reconciliation
/// with the process's RSS.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Breakdown {
    pub live_small: usize,
    pub live_big: usize,
    pub live_large: usize,
    pub free_in_thread_heaps: usize,
    pub free_in_orphans: usize,
    pub heap_top: usize,
    pub decay_free_runs: usize,
    pub decay_cached_spans: usize,
    pub outside_spans: usize,
    pub metadata: usize,
    /// The sum of the lines above.
    pub allocator: usize,
    /// The process's RSS and anonymous resident memory (/proc/self/smaps_rollup
    /// `Rss` and `Anonymous`; statm's resident pages if smaps_rollup is missing,
    /// then `process_anon` is 0). 0 if neither could be read.
    pub process_rss: usize,
    pub process_anon: usize,
    /// `process_rss - allocator`: memory that is not the allocator's. Negative only
    /// if pages changed between the two readings.
    pub remainder: isize,
}

/// Everything the census counts. `oxmalloc::stats()` returns it; C programs get the
/// same bytes from `oxmalloc_stats_get` (include/oxmalloc.h mirrors this layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// `size_of::<Stats>()`, so a C caller can tell which layout it got.
    pub size: usize,
    /// Arenas in use (entries of `arenas` filled).
    pub arena_count: usize,
    /// Sum over the arenas of `system` and `in_use`.
    pub system: usize,
    pub in_use: usize,
    /// Blocks mmapped on their own: now, and the most at once.
    pub mmapped_blocks: usize,
    pub mmapped_bytes: usize,
    pub max_mmapped_blocks: usize,
    pub max_mmapped_bytes: usize,
    /// Live thread heaps.
    pub thread_heaps: usize,
    /// The program break when the census was taken.
    pub program_break: usize,
    /// Bytes mapped for metadata (records and the page map's leaves; virtual).
    pub metadata_mapped: usize,
    /// mincore calls the kernel refused (their pages counted as not resident).
    pub residency_errors: usize,
    pub breakdown: Breakdown,
    pub classes: [ClassStats; CLASSES],
    pub arenas: [ArenaStats; ARENAS_MAX],
}

impl Stats {
    pub const fn empty() -> Stats {
        const C: ClassStats = ClassStats {
            block_size: 0,
            spans: 0,
            span_bytes: 0,
            blocks_in_use: 0,
            bytes_in_use: 0,
            blocks_total: 0,
            resident: 0,
        };
        const A: ArenaStats = ArenaStats {
            system: 0,
            resident: 0,
            in_use: 0,
            regions: 0,
            small_spans: 0,
            small_span_bytes: 0,
            big_blocks: 0,
            big_bytes: 0,
            free_runs: 0,
            free_bytes: 0,
            decommitted_bytes: 0,
            cached_spans: 0,
            cached_bytes: 0,
        };
        const B: Breakdown = Breakdown {
            live_small: 0,
            live_big: 0,
            live_large: 0,
            free_in_thread_heaps: 0,
            free_in_orphans: 0,
            heap_top: 0,
            decay_free_runs: 0,
            decay_cached_spans: 0,
            outside_spans: 0,
            metadata: 0,
            allocator: 0,
            process_rss: 0,
            process_anon: 0,
            remainder: 0,
        };
        Stats {
            size: core::mem::size_of::<Stats>(),
            arena_count: 0,
            system: 0,
            in_use: 0,
            mmapped_blocks: 0,
            mmapped_bytes: 0,
            max_mmapped_blocks: 0,
            max_mmapped_bytes: 0,
            thread_heaps: 0,
            program_break: 0,
            metadata_mapped: 0,
            residency_errors: 0,
            breakdown: B,
            classes: [C; CLASSES],
            arenas: [A; ARENAS_MAX],
        }
    }
}

/// Who holds a small span, as the census sees it under the arena lock.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A thread heap (or the shared heap of exiting threads).
    Thread,
    /// Its arena, after its thread exited, with blocks still in use.
    Orphan,
    /// Its arena's span cache: empty, kept ready.
    Cached,
}

/// Who holds the small span `s`. Call under `s`'s arena lock (adoption, orphaning
/// and caching all happen under it, so the answer holds while the lock is held).
pub fn holder(s: &Span) -> Holder {
    if !s.heap.is_null() {
        Holder::Thread
    } else if s.live_blocks() == 0 {
        // An orphan whose last block is freed goes to the cache at once (free_orphan).
        Holder::Cached
    } else {
        Holder::Orphan
    }
}

/// Takes the census.
pub fn take() -> Stats {
    crate::thread_heap::flush_own_caches();
    let mut st = Stats::empty();
    for (c, class) in st.classes.iter_mut().enumerate() {
        class.block_size = block_size(c);
    }
    st.arena_count = init::arena_count();
    for i in 0..st.arena_count {
        count_arena(i, &mut st);
    }
    count_large(&mut st);
    count_metadata(&mut st);
    st.thread_heaps = crate::thread_heap::LIVE_HEAPS.load(Ordering::Relaxed);
    st.program_break = os::brk_now();
    st.max_mmapped_blocks = large::PEAK_COUNT.load(Ordering::Relaxed);
    st.max_mmapped_bytes = large::PEAK_BYTES.load(Ordering::Relaxed);

    let b = &mut st.breakdown;
    b.allocator = b.live_small
        + b.live_big
        + b.live_large
        + b.free_in_thread_heaps
        + b.free_in_orphans
        + b.heap_top
        + b.decay_free_runs
        + b.decay_cached_spans
        + b.outside_spans
        + b.metadata;
    // Read last, so that what the census itself touched (its stack) is in it.
    let (rss, anon) = process_rss();
    b.process_rss = rss;
    b.process_anon = anon;
    b.remainder = rss as isize - b.allocator as isize;
    st
}

/// One arena's part of the census.
pub struct ArenaCensus {
    pub arena: ArenaStats,
    /// This arena's spans by class (`block_size` left 0).
    pub classes: [ClassStats; CLASSES],
    pub breakdown: Breakdown,
    pub residency_errors: usize,
}

/// Counts arena `i` under its lock. Without `residency` no page is looked up: the
/// resident figures stay 0 (for malloc_info, which does not report them).
pub fn arena(i: usize, residency: bool) -> ArenaCensus {
    let mut out = ArenaCensus {
        arena: ArenaStats::default(),
        classes: [ClassStats::default(); CLASSES],
        breakdown: Breakdown::default(),
        residency_errors: 0,
    };
    let Some(arena) = ARENAS.get(i) else { return out };
    let a = arena.lock();
    let ar = &mut out.arena;
    let b = &mut out.breakdown;
    let classes = &mut out.classes;
    ar.system = a.region_bytes;
    ar.free_runs = a.free_runs;
    ar.free_bytes = a.free_bytes;
    ar.decommitted_bytes = a.decommitted_bytes;
    ar.big_blocks = a.big_count;
    ar.big_bytes = a.big_bytes;
    (ar.cached_spans, ar.cached_bytes) = a.span_cache_usage();
    let mut errors = 0;
    a.for_each_region(|r: &Region| {
        ar.regions += 1;
        let mut w = Window::new(r.start, r.end);
        let mut resident = |addr: usize, bytes: usize| if residency { w.resident(addr, bytes) } else { 0 };
        let mut next = r.start;
        a.for_each_span_in(r, |s| {
            if s.start > next {
                let gap = resident(next, s.start - next);
                b.outside_spans += gap;
                ar.resident += gap;
            }
            next = s.end_addr();
            let res = resident(s.start, s.bytes());
            ar.resident += res;
            match s.kind {
                Kind::Small => {
                    let live = s.live_blocks();
                    let live_bytes = live * s.block_size as usize;
                    let live_res = live_bytes.min(res);
                    match holder(s) {
                        Holder::Cached => {
                            b.decay_cached_spans += res;
                            return;
                        }
                        Holder::Thread => b.free_in_thread_heaps += res - live_res,
                        Holder::Orphan => b.free_in_orphans += res - live_res,
                    }
                    b.live_small += live_res;
                    ar.in_use += live_bytes;
                    ar.small_spans += 1;
                    ar.small_span_bytes += s.bytes();
                    if let Some(c) = classes.get_mut(s.class as usize) {
                        c.spans += 1;
                        c.span_bytes += s.bytes();
                        c.blocks_in_use += live;
                        c.bytes_in_use += live_bytes;
                        c.blocks_total += s.capacity as usize;
                        c.resident += res;
                    }
                }
                Kind::Big => {
                    b.live_big += res;
                    ar.in_use += s.bytes();
                }
                Kind::FreeRun => {
                    if a.is_heap_top(s) {
                        b.heap_top += res;
                    } else {
                        b.decay_free_runs += res;
                    }
                }
                Kind::Large | Kind::Freed => {}
            }
        });
        if r.end > next {
            let gap = resident(next, r.end - next);
            b.outside_spans += gap;
            ar.resident += gap;
        }
        errors += w.errors;
    });
    drop(a);
    out.residency_errors = errors;
    out
}

fn count_arena(i: usize, st: &mut Stats) {
    let part = arena(i, true);
    st.residency_errors += part.residency_errors;
    st.system += part.arena.system;
    st.in_use += part.arena.in_use;
    if let Some(slot) = st.arenas.get_mut(i) {
        *slot = part.arena;
    }
    for (sum, c) in st.classes.iter_mut().zip(part.classes.iter()) {
        sum.add(c);
    }
    let (sum, b) = (&mut st.breakdown, &part.breakdown);
    sum.live_small += b.live_small;
    sum.live_big += b.live_big;
    sum.free_in_thread_heaps += b.free_in_thread_heaps;
    sum.free_in_orphans += b.free_in_orphans;
    sum.heap_top += b.heap_top;
    sum.decay_free_runs += b.decay_free_runs;
    sum.decay_cached_spans += b.decay_cached_spans;
    sum.outside_spans += b.outside_spans;
}

fn count_large(st: &mut Stats) {
    large::for_each_live(|s| {
        st.mmapped_blocks += 1;
        st.mmapped_bytes += s.map_size;
        st.breakdown.live_large += resident::resident_bytes(s.start, s.map_size);
    });
}

fn count_metadata(st: &mut Stats) {
    let mut mapped = 0;
    let mut res = 0;
    let mut add = |start: usize, bytes: usize| {
        mapped += bytes;
        res += resident::resident_bytes(start, bytes);
    };
    crate::span::for_each_meta_chunk(&mut add);
    crate::arena::for_each_meta_chunk(&mut add);
    crate::thread_heap::for_each_meta_chunk(&mut add);
    crate::pagemap::for_each_table(&mut add);
    st.metadata_mapped = mapped;
    st.breakdown.metadata = res;
}

/// (RSS, anonymous resident) of this process in bytes, from /proc/self/smaps_rollup,
/// else statm's resident pages and 0.
fn process_rss() -> (usize, usize) {
    let mut buf = [0u8; 2048];
    let len = os::read_small_file(c"/proc/self/smaps_rollup", &mut buf);
    let text = buf.get(..len).unwrap_or(&[]);
    if let Some(rss) = kib_field(text, b"Rss:") {
        return (rss * 1024, kib_field(text, b"Anonymous:").unwrap_or(0) * 1024);
    }
    let len = os::read_small_file(c"/proc/self/statm", &mut buf);
    let mut fields = buf.get(..len).unwrap_or(&[]).split(|&c| c == b' ');
    let resident = fields.nth(1).and_then(crate::options::parse_number).unwrap_or(0);
    (resident as usize * os::PAGE_SIZE, 0)
}

/// The number after `name` on the line starting with it ("Rss:   1234 kB").
fn kib_field(text: &[u8], name: &[u8]) -> Option<usize> {
    let line = text.split(|&c| c == b'\n').find(|l| l.starts_with(name))?;
    let rest = line.get(name.len()..)?;
    let digits = rest.split(|&c| c == b' ' || c == b'\t').find(|f| !f.is_empty())?;
    crate::options::parse_number(digits).map(|v| v as usize)
}
