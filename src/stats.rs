//! Statistics: glibc's `mallinfo2`, `malloc_stats` and `malloc_info`, from oxmalloc's
//! own books. Counters live in the arenas (updated under their locks, on span-level
//! events only) and in large.rs; nothing is counted on the fast paths.

use crate::arena::ARENAS;
use crate::fmt::Buf;
use crate::init;
use crate::large;
use crate::os;
use crate::span::Kind;

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

#[derive(Clone, Copy, Default)]
struct ArenaFigures {
    system: usize,
    in_use: usize,
    free: usize,
    free_runs: usize,
    decommitted: usize,
}

fn arena_figures(i: usize) -> ArenaFigures {
    let Some(arena) = ARENAS.get(i) else { return ArenaFigures::default() };
    let a = arena.lock();
    // In use: the blocks handed out (small blocks at their class size, big blocks at
    // their pages), not the spans that hold them.
    let mut in_use = 0;
    a.for_each_span(|s| match s.kind {
        Kind::Small => in_use += s.live_blocks() * s.block_size as usize,
        Kind::Big => in_use += s.bytes(),
        Kind::Large | Kind::FreeRun | Kind::Freed => {}
    });
    ArenaFigures {
        system: a.region_bytes,
        in_use,
        free: a.free_bytes,
        free_runs: a.free_runs,
        decommitted: a.decommitted_bytes,
    }
}

pub fn mallinfo2() -> MallInfo2 {
    let mut m = MallInfo2::default();
    for (i, _) in ARENAS.iter().enumerate().take(init::arena_count()) {
        let f = arena_figures(i);
        m.arena += f.system;
        m.uordblks += f.in_use;
        m.fordblks += f.system - f.in_use;
        m.ordblks += f.free_runs;
        m.keepcost += f.free.min(f.free - f.decommitted);
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

/// glibc's malloc_stats: per arena system and in-use bytes, then totals, to stderr.
pub fn malloc_stats() {
    let mut buf = [0u8; 512];
    let mut total = ArenaFigures::default();
    let line = |w: &mut Buf, label: &str, v: usize| {
        w.str(label).dec_width(v as u64, 10).str("\n");
    };
    for (i, _) in ARENAS.iter().enumerate().take(init::arena_count()) {
        let f = arena_figures(i);
        total.system += f.system;
        total.in_use += f.in_use;
        let mut w = Buf::new(&mut buf);
        w.str("Arena ").dec(i as u64).str(":\n");
        line(&mut w, "system bytes     = ", f.system);
        line(&mut w, "in use bytes     = ", f.in_use);
        os::write_all(2, w.as_bytes());
    }
    let hblkhd = large::BYTES.load(core::sync::atomic::Ordering::Relaxed);
    let mut w = Buf::new(&mut buf);
    w.str("Total (incl. mmap):\n");
    line(&mut w, "system bytes     = ", total.system + hblkhd);
    line(&mut w, "in use bytes     = ", total.in_use + hblkhd);
    line(&mut w, "max mmap regions = ", large::PEAK_COUNT.load(core::sync::atomic::Ordering::Relaxed));
    line(&mut w, "max mmap bytes   = ", large::PEAK_BYTES.load(core::sync::atomic::Ordering::Relaxed));
    os::write_all(2, w.as_bytes());
}

/// glibc's malloc_info: an XML description of the heap, written to `stream`.
/// The text is composed in a stack buffer first: no allocator lock is held while
/// stdio (which may allocate) writes it.
pub fn malloc_info(options: i32, stream: *mut libc::FILE) -> i32 {
    if options != 0 {
        os::set_errno(libc::EINVAL);
        return -1;
    }
    let mut buf = [0u8; 4096];
    let mut w = Buf::new(&mut buf);
    w.str("<malloc version=\"1\">\n");
    let mut total = ArenaFigures::default();
    for (i, _) in ARENAS.iter().enumerate().take(init::arena_count()) {
        let f = arena_figures(i);
        total.system += f.system;
        total.free += f.free;
        total.free_runs += f.free_runs;
        w.str("<heap nr=\"").dec(i as u64).str("\">\n<sizes>\n</sizes>\n");
        w.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
        w.str("<total type=\"rest\" count=\"").dec(f.free_runs as u64).str("\" size=\"").dec(f.free as u64).str("\"/>\n");
        w.str("<system type=\"current\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<system type=\"max\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<aspace type=\"total\" size=\"").dec(f.system as u64).str("\"/>\n");
        w.str("<aspace type=\"mprotect\" size=\"").dec(f.system as u64).str("\"/>\n</heap>\n");
    }
    let hblks = large::COUNT.load(core::sync::atomic::Ordering::Relaxed);
    let hblkhd = large::BYTES.load(core::sync::atomic::Ordering::Relaxed);
    w.str("<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
    w.str("<total type=\"rest\" count=\"").dec(total.free_runs as u64).str("\" size=\"").dec(total.free as u64).str("\"/>\n");
    w.str("<total type=\"mmap\" count=\"").dec(hblks as u64).str("\" size=\"").dec(hblkhd as u64).str("\"/>\n");
    w.str("<system type=\"current\" size=\"").dec(total.system as u64).str("\"/>\n");
    w.str("<system type=\"max\" size=\"").dec(total.system as u64).str("\"/>\n");
    w.str("<aspace type=\"total\" size=\"").dec(total.system as u64).str("\"/>\n");
    w.str("<aspace type=\"mprotect\" size=\"").dec(total.system as u64).str("\"/>\n");
    w.str("</malloc>\n");
    let bytes = w.as_bytes();
    // SAFETY: `stream` is the caller's FILE; fwrite reads our buffer.
    unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), stream) };
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
