//! The readable report of a census (census.rs): what `malloc_stats()` prints, and what
//! `OXMALLOC_STATS` writes at exit.
//!
//! It opens with glibc's `malloc_stats` lines, unchanged in shape ("Arena N:",
//! "system bytes", "in use bytes", "Total (incl. mmap):", "max mmap regions/bytes"),
//! so tools that parse glibc's output keep working, then goes on with oxmalloc's own
//! sections: bytes in use by size class, the arenas, the mmapped blocks, and the RSS
//! breakdown. The text is composed from a census taken beforehand: no allocator lock
//! is held while it is written.

use crate::census::{Breakdown, Stats};
use crate::fmt::FdOut;

/// Writes the whole report to `fd`.
pub fn write(fd: i32, st: &Stats) {
    let mut buf = [0u8; 4096];
    let mut out = FdOut::new(fd, &mut buf);
    glibc_lines(&mut out, st);
    classes(&mut out, st);
    arenas(&mut out, st);
    breakdown(&mut out, st);
    out.flush();
}

fn glibc_line(out: &mut FdOut, label: &str, v: usize) {
    out.str(label).dec_width(v as u64, 10).str("\n");
    out.end_line();
}

/// glibc's malloc_stats, line for line.
fn glibc_lines(out: &mut FdOut, st: &Stats) {
    for (i, a) in st.arenas.iter().enumerate().take(st.arena_count) {
        out.str("Arena ").dec(i as u64).str(":\n");
        glibc_line(out, "system bytes     = ", a.system);
        glibc_line(out, "in use bytes     = ", a.in_use);
    }
    out.str("Total (incl. mmap):\n");
    glibc_line(out, "system bytes     = ", st.system + st.mmapped_bytes);
    glibc_line(out, "in use bytes     = ", st.in_use + st.mmapped_bytes);
    glibc_line(out, "max mmap regions = ", st.max_mmapped_blocks);
    glibc_line(out, "max mmap bytes   = ", st.max_mmapped_bytes);
}

fn classes(out: &mut FdOut, st: &Stats) {
    out.str("\noxmalloc: in use by size class (classes with spans)\n");
    out.str("   block  spans  blocks in use / total     bytes in use    span bytes      resident\n");
    out.end_line();
    let mut total = crate::census::ClassStats::default();
    for c in st.classes.iter().filter(|c| c.spans > 0) {
        out.dec_width(c.block_size as u64, 8).dec_width(c.spans as u64, 7);
        out.dec_width(c.blocks_in_use as u64, 15).str(" / ").dec_width(c.blocks_total as u64, 7);
        out.bytes_human(c.bytes_in_use, 17).bytes_human(c.span_bytes, 14).bytes_human(c.resident, 14).str("\n");
        out.end_line();
        total.add(c);
    }
    out.str("     all").dec_width(total.spans as u64, 7);
    out.dec_width(total.blocks_in_use as u64, 15).str(" / ").dec_width(total.blocks_total as u64, 7);
    out.bytes_human(total.bytes_in_use, 17).bytes_human(total.span_bytes, 14).bytes_human(total.resident, 14).str("\n");
    out.end_line();
}

fn arenas(out: &mut FdOut, st: &Stats) {
    out.str("\noxmalloc: arenas\n");
    out.str(" arena regions      system    resident      in use  small spans  big blocks  free runs  free bytes (decommitted)  spans kept ready\n");
    out.end_line();
    for (i, a) in st.arenas.iter().enumerate().take(st.arena_count) {
        out.dec_width(i as u64, 6).dec_width(a.regions as u64, 8);
        out.bytes_human(a.system, 12).bytes_human(a.resident, 12).bytes_human(a.in_use, 12);
        out.dec_width(a.small_spans as u64, 13).dec_width(a.big_blocks as u64, 12).dec_width(a.free_runs as u64, 11);
        out.bytes_human(a.free_bytes, 12).str(" (").bytes_human(a.decommitted_bytes, 0).str(")");
        out.dec_width(a.cached_spans as u64, 8).str(" (").bytes_human(a.cached_bytes, 0).str(")\n");
        out.end_line();
    }
    out.str("mmapped blocks: ").dec(st.mmapped_blocks as u64).str(", ").bytes_human(st.mmapped_bytes, 0);
    out.str(" (at most ").dec(st.max_mmapped_blocks as u64).str(", ").bytes_human(st.max_mmapped_bytes, 0).str(")\n");
    out.end_line();
    out.str("thread heaps: ").dec(st.thread_heaps as u64).str("; program break: ").hex(st.program_break).str("\n");
    out.end_line();
}

/// One line of the breakdown: label, bytes, share of the process's RSS.
fn part(out: &mut FdOut, label: &str, v: i64, rss: usize) {
    out.str("  ").str_width(label, 52);
    if v < 0 {
        out.str("        -").bytes_human(v.unsigned_abs() as usize, 0);
    } else {
        out.bytes_human(v as usize, 12);
    }
    out.percent(v, rss as u64, 8).str("\n");
    out.end_line();
}

fn breakdown(out: &mut FdOut, st: &Stats) {
    let b: &Breakdown = &st.breakdown;
    let rss = b.process_rss;
    out.str("\noxmalloc: resident memory (RSS breakdown; % of the process's RSS)\n");
    out.end_line();
    let rows: [(&str, usize); 10] = [
        ("live small blocks (at class size)", b.live_small),
        ("live big blocks (whole pages in the heap)", b.live_big),
        ("live large blocks (mmapped)", b.live_large),
        ("free blocks in thread heaps' spans", b.free_in_thread_heaps),
        ("free blocks in orphaned spans (arena bins)", b.free_in_orphans),
        ("kept top of the heap", b.heap_top),
        ("free pages waiting for decay", b.decay_free_runs),
        ("empty spans kept ready (decay)", b.decay_cached_spans),
        ("heap pages outside any span", b.outside_spans),
        ("allocator metadata", b.metadata),
    ];
    for (label, v) in rows {
        part(out, label, v as i64, rss);
    }
    part(out, "= the allocator's resident memory", b.allocator as i64, rss);
    part(out, "+ not the allocator's (binary, libraries, stacks, ...)", b.remainder as i64, rss);
    part(out, "= process RSS (/proc/self/smaps_rollup)", rss as i64, rss);
    out.str("  class rounding (requested sizes are not recorded):            unknown, inside live\n");
    out.end_line();
    if st.residency_errors > 0 {
        out.str("  (mincore failed ").dec(st.residency_errors as u64).str(" times: those pages were counted as not resident)\n");
        out.end_line();
    }
}
