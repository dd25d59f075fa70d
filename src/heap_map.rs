//! The heap map: a text file describing every region, span, free run and large block,
//! written without allocating (`OXMALLOC_MAP=path`, at exit; exit_report.rs). The
//! `oxmalloc` launcher turns it into a picture (`oxmalloc run --map heap.svg`,
//! src/bin/oxmalloc/heapmap.rs), which documents the format for its reader.
//!
//! ```text
//! oxmalloc-heap-map 1
//! pid 1234
//! page 4096
//! brk 0x5581c000                       the program break
//! classes 16 32 48 ...                 block size of each class
//! arena 0
//! region 0x55810000 0x5581c000 brk     START END brk|mmap, in address order per arena
//! small 0x55810000 16 5 96 301 682 thread 16 0
//!                                      START PAGES CLASS BLOCK IN_USE CAPACITY
//!                                      thread|orphan|cached RESIDENT_PAGES PURGED_PAGES
//! big 0x55820000 40 40                 START PAGES RESIDENT_PAGES
//! free 0x55848000 12 dirty 12          START PAGES top|dirty|decommitted RESIDENT_PAGES
//! large 0x7f00c000 1052672 257         START BYTES RESIDENT_PAGES
//! end
//! ```
//! Spans follow their region in address order. Each arena is written under its
//! lock (the lines go straight to the file through a stack buffer), so the map is
//! consistent per arena.

use crate::arena::{Region, RegionKind, ARENAS};
use crate::census::{self, Holder};
use crate::fmt::FdOut;
use crate::init;
use crate::large;
use crate::os::{self, PAGE_SIZE};
use crate::resident::{self, Window};
use crate::size_class::{block_size, NUM_CLASSES};
use crate::span::Kind;

/// Writes the map to `fd`.
pub fn write(fd: i32) {
    let mut buf = [0u8; 16384];
    let mut out = FdOut::new(fd, &mut buf);
    out.str("oxmalloc-heap-map 1\npid ").dec(os::pid() as u64);
    out.str("\npage ").dec(PAGE_SIZE as u64).str("\nbrk ").hex(os::brk_now()).str("\nclasses");
    for c in 0..NUM_CLASSES {
        out.str(" ").dec(block_size(c) as u64);
    }
    out.str("\n");
    out.end_line();
    for i in 0..init::arena_count() {
        write_arena(&mut out, i);
    }
    large::for_each_live(|s| {
        out.str("large ").hex(s.start).str(" ").dec(s.map_size as u64).str(" ");
        out.dec((resident::resident_bytes(s.start, s.map_size) / PAGE_SIZE) as u64).str("\n");
        out.end_line();
    });
    out.str("end\n");
    out.flush();
}

fn write_arena(out: &mut FdOut, i: usize) {
    let Some(arena) = ARENAS.get(i) else { return };
    let a = arena.lock();
    out.str("arena ").dec(i as u64).str("\n");
    out.end_line();
    // Regions are listed newest first; the map lists them by address.
    let mut last = 0;
    loop {
        let mut next: Option<&Region> = None;
        a.for_each_region(|r| {
            if r.start >= last && next.map_or(true, |n| r.start < n.start) {
                next = Some(r);
            }
        });
        let Some(r) = next else { break };
        last = r.end;
        let kind = if r.kind == RegionKind::Brk { "brk" } else { "mmap" };
        out.str("region ").hex(r.start).str(" ").hex(r.end).str(" ").str(kind).str("\n");
        out.end_line();
        let mut w = Window::new(r.start, r.end);
        a.for_each_span_in(r, |s| {
            let resident = w.resident(s.start, s.bytes()) / PAGE_SIZE;
            match s.kind {
                Kind::Small => {
                    let holder = match census::holder(s) {
                        Holder::Thread => "thread",
                        Holder::Orphan => "orphan",
                        Holder::Cached => "cached",
                    };
                    out.str("small ").hex(s.start).str(" ").dec(s.pages as u64).str(" ").dec(s.class as u64);
                    out.str(" ").dec(s.block_size as u64).str(" ").dec(s.live_blocks() as u64);
                    out.str(" ").dec(s.capacity as u64).str(" ").str(holder).str(" ").dec(resident as u64);
                    out.str(" ").dec(s.purged.count_ones() as u64).str("\n");
                }
                Kind::Big => {
                    out.str("big ").hex(s.start).str(" ").dec(s.pages as u64).str(" ").dec(resident as u64).str("\n");
                }
                Kind::FreeRun => {
                    let state = if a.is_heap_top(s) {
                        "top"
                    } else if s.decommitted {
                        "decommitted"
                    } else {
                        "dirty"
                    };
                    out.str("free ").hex(s.start).str(" ").dec(s.pages as u64).str(" ").str(state);
                    out.str(" ").dec(resident as u64).str("\n");
                }
                Kind::Large | Kind::Freed => {}
            }
            out.end_line();
        });
    }
}
