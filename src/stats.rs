//! Statistics: glibc's `mallinfo2`, `malloc_stats` and `malloc_info`, from oxmalloc's
//! own books. Counters live in the arenas (updated under their locks, on span-level
//! events only) and in large.rs; nothing is counted on the fast paths. The fuller
//! figures (by class, resident memory) come from a census of the spans (census.rs).

use crate::arena::ARENAS;
use crate::census;
use crate::fmt::Buf;
use crate::init;
use crate::large;
use crate::os;
use crate::report;

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MallInfo2 {
    /// Non-mmapped space from the system (all arena regions).
    pub arena: usize,
    /// Free runs in the arenas.
    pub ordblks: usize,
    /// glibc's fastbin chunks: oxmalloc has none.
    pub smblks: usize,
    /// Blocks mmapped on their own, and their bytes.
    pub hblks: usize,
    pub hblkhd: usize,
    /// Always 0, as in glibc.
    pub usmblks: usize,
    pub fsmblks: usize,
    /// Bytes in use in the arenas (spans of small blocks, big blocks).
    pub uordblks: usize,
    /// Bytes free in the arenas.
    pub fordblks: usize,
    /// Bytes at the top of the heap that malloc_trim could give back.
    pub keepcost: usize,
}

/// glibc's `struct mallinfo` (int fields, truncated as glibc truncates them).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct MallInfo {
    pub arena: i32,
    pub ordblks: i32,
    pub smblks: i32,
    pub hblks: i32,
    pub hblkhd: i32,
    pub usmblks: i32,
    pub fsmblks: i32,
    pub uordblks: i32,
    pub fordblks: i32,
    pub keepcost: i32,
}

pub fn mallinfo2() -> MallInfo2 {
    crate::thread_heap::flush_own_caches();
    let mut m = MallInfo2::default();
    for i in 0..init::arena_count() {
        // In use: the blocks handed out (small blocks at their class size, big blocks at
        // their pages), not the spans that hold them.
        let f = census::arena(i, false).arena;
        m.arena += f.system;
        m.uordblks += f.in_use;
        m.fordblks += f.system - f.in_use;
        m.ordblks += f.free_runs;
        m.keepcost += f.free_bytes - f.decommitted_bytes;
    }
    m.hblks = large::COUNT.load(core::sync::atomic::Ordering::Relaxed);
    m.hblkhd = large::BYTES.load(core::sync::atomic::Ordering::Relaxed);
    m
}

pub fn mallinfo() -> MallInfo {
    let m = mallinfo2();
    MallInfo {
        arena: m.arena as i32,
        ordblks: m.ordblks as i32,
        smblks: m.smblks as i32,
        hblks: m.hblks as i32,
        hblkhd: m.hblkhd as i32,
        usmblks: m.usmblks as i32,
        fsmblks: m.fsmblks as i32,
        uordblks: m.uordblks as i32,
        fordblks: m.fordblks as i32,
        keepcost: m.keepcost as i32,
    }
}

/// glibc's malloc_stats, extended: glibc's lines (per arena system and in-use bytes,
/// then totals), then bytes in use by size class, the arenas, and the RSS breakdown,
/// to stderr (report.rs). A census (census.rs) is taken first; no lock is held while
/// the text is written.
pub fn malloc_stats() {
    report::write(2, &census::take());
}

/// glibc's malloc_info: an XML description of the heap, written to `stream`: per
/// arena a `<heap nr="N">` whose `<sizes>` lists, per size class, the free blocks its
/// spans hold (`total` bytes, `count` blocks; a block never carved counts as free),
/// then glibc's totals (`rest`: the free page runs). Each section is composed in a
/// stack buffer first: no allocator lock is held while stdio (which may allocate)
/// writes it.
///
/// # Safety
/// `stream` is a valid, open stdio stream.
pub unsafe fn malloc_info(options: i32, stream: *mut libc::FILE) -> i32 {
    if options != 0 {
        os::set_errno(libc::EINVAL);
        return -1;
    }
    crate::thread_heap::flush_own_caches();
    let put = |w: &Buf| {
        let bytes = w.as_bytes();
        // SAFETY: `stream` is the caller's open FILE (the contract); fwrite reads our
        // buffer.
        unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stream) };
    };
    let mut buf = [0u8; 8192];
    let mut w = Buf::new(&mut buf);
    w.str("<malloc version=\"1\">\n");
    put(&w);
    let (mut system, mut free, mut free_runs) = (0, 0, 0);
    for i in 0..init::arena_count() {
        let part = census::arena(i, false);
        let f = &part.arena;
        system += f.system;
        free += f.free_bytes;
        free_runs += f.free_runs;
        let mut w = Buf::new(&mut buf);
        w.str("<heap nr=\"").dec(i as u64).str("\">\n<sizes>\n");
        let mut from = 1;
        for (c, k) in part.classes.iter().enumerate() {
            let size = crate::size_class::block_size(c);
            let free = k.blocks_total.saturating_sub(k.blocks_in_use);
            if free > 0 {
                w.str("<size from=\"").dec(from as u64).str("\" to=\"").dec(size as u64);
                w.str("\" total=\"").dec((free * size) as u64).str("\" count=\"").dec(free as u64).str("\"/>\n");
            }
            from = size + 1;
        }
        w.str("</sizes>\n");
        w.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
        w.str("<total type=\"rest\" count=\"").dec(f.free_runs as u64).str("\" size=\"").dec(f.free_bytes as u64).str("\"/>\n");
        w.str("<system type=\"current\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<system type=\"max\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<aspace type=\"total\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<aspace type=\"mprotect\" size=\"").dec(f.system as u64).str("\"/>\n</heap>\n");
        put(&w);
    }
    let hblks = large::COUNT.load(core::sync::atomic::Ordering::Relaxed);
    let hblkhd = large::BYTES.load(core::sync::atomic::Ordering::Relaxed);
    let mut w = Buf::new(&mut buf);
    w.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
    w.str("<total type=\"rest\" count=\"").dec(free_runs as u64).str("\" size=\"").dec(free as u64).str("\"/>\n");
    w.str("<total type=\"mmap\" count=\"").dec(hblks as u64).str("\" size=\"").dec(hblkhd as u64).str("\"/>\n");
    w.str("<system type=\"current\" size=\"").dec(system as u64).str("\"/>\n");
    w.str("<system type=\"max\" size=\"").dec(system as u64).str("\"/>\n");
    w.str("<aspace type=\"total\" size=\"").dec(system as u64).str("\"/>\n");
    w.str("<aspace type=\"mprotect\" size=\"").dec(system as u64).str("\"/>\n");
    w.str("</malloc>\n");
    put(&w);
    0
}

/// glibc's malloc_trim: give back free memory at the top of the heap (keeping `pad`)
/// and the free pages inside it. 1 if memory was released, else 0.
pub fn malloc_trim(pad: usize) -> i32 {
    let mut released = crate::thread_heap::purge_for_trim() > 0;
    for (i, _) in ARENAS.iter().enumerate().take(init::arena_count()) {
        released |= ARENAS.get(i).is_some_and(|a| a.lock().trim(pad));
    }
    released as i32
}
