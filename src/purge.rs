//! Giving back free pages *inside* spans of small blocks.
//!
//! Arenas give back free page runs (arena.rs), but a span that still holds a few live
//! blocks keeps all its pages, however many of its blocks are free: after a program
//! frees 63 of every 64 objects, every span is mostly free and nothing could be
//! returned. Purging a span decommits (MADV_DONTNEED) each page whose every
//! overlapping block is free.
//!
//! A decommitted page reads as zero, which would destroy the free-list links stored in
//! its blocks, so the blocks that *start* in a purged page leave the free list and the
//! page is recorded in the span's `purged` bitmap; `unpurge` puts those blocks back
//! (their pages fault in again when used) when the span runs out of listed blocks.
//! A free block that starts in a kept page but reaches into a purged one stays
//! listed: only its first 16 bytes (its mark and link, in one page since blocks are
//! 16-aligned) are ever read while it is free.
//!
//! Invariants: a block starting in a purged page is free and on no list; `used` counts
//! neither purged nor listed blocks (both are free). Only the span's owner (or its
//! arena, under the lock, for an orphan) purges or unpurges it.

use crate::os::{self, PAGE_SIZE};
use crate::span::{list_end, Block, Span};

/// The most blocks a span holds (16-byte blocks in a 64 KiB span).
const MAX_BLOCKS: usize = 4096;

/// Decommits the pages of `s` that hold only free blocks. Returns the bytes given back.
///
/// # Safety
/// The caller has exclusive use of `s`'s free list (its owner, or the arena lock for an
/// orphan), and `s` is a small span.
pub unsafe fn purge(s: &mut Span) -> usize {
    let size = s.block_size as usize;
    if s.free == list_end() || size == 0 || s.capacity as usize > MAX_BLOCKS {
        return 0;
    }
    let carved = (s.bump - s.start) / size; // blocks below bump; the rest never used
    let mut free = [0u64; MAX_BLOCKS / 64];
    let mut b = s.free;
    let mut listed = 0;
    while b != list_end() {
        // A link overwritten after the free is reported, not followed: a block of this
        // span, marked free, and no more of them than were carved (a block linked to
        // itself passes the first two).
        // SAFETY: `b` is read only once it is known to lie in the span's carved blocks.
        if !s.is_block_start(b as usize) || !unsafe { Block::is_marked(b) } || listed == carved {
            os::fatal_misuse("malloc", "corrupted free block (overflow or write after free) at", b as usize);
        }
        listed += 1;
        let i = (b as usize - s.start) / size;
        if let Some(w) = free.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
        // SAFETY: `b` is on the span's free list, which we have exclusive use of.
        b = unsafe { (*b).next };
    }
    let is_free = |i: usize| i >= carved || free.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);

    // Pages below the bump page: purge those whose every overlapping block is free.
    let used_pages = (s.bump - s.start).div_ceil(PAGE_SIZE).min(128);
    let mut newly: u128 = 0;
    for page in 0..used_pages {
        if s.purged & (1u128 << page) != 0 {
            continue;
        }
        let first = page * PAGE_SIZE / size;
        let last = ((page + 1) * PAGE_SIZE - 1) / size;
        if (first..=last.min(s.capacity as usize - 1)).all(is_free) {
            newly |= 1u128 << page;
        }
    }
    if newly == 0 {
        return 0;
    }
    // Decommit runs of consecutive pages.
    let mut bytes = 0;
    let mut page = 0;
    while page < used_pages {
        if newly & (1u128 << page) == 0 {
            page += 1;
            continue;
        }
        let run_start = page;
        while page < used_pages && newly & (1u128 << page) != 0 {
            page += 1;
        }
        let len = (page - run_start) * PAGE_SIZE;
        // SAFETY: the pages hold only free blocks of our span, and no listed block's
        // first word lies in them once the list is rebuilt below.
        unsafe { os::decommit((s.start + run_start * PAGE_SIZE) as *mut u8, len) };
        bytes += len;
    }
    s.purged |= newly;
    // Rebuild the free list from the listed blocks whose first word is in a kept page,
    // in address order (touching no purged page).
    let mut head: *mut Block = list_end();
    for i in (0..carved).rev() {
        if !is_free(i) {
            continue;
        }
        let addr = s.start + i * size;
        if s.purged & (1u128 << ((addr - s.start) / PAGE_SIZE)) != 0 {
            continue;
        }
        let blk = addr as *mut Block;
        // SAFETY: a free block of our span whose first 16 bytes are in a committed page.
        unsafe { Block::put(blk, head) };
        head = blk;
    }
    s.free = head;
    bytes
}

/// Puts the blocks that start in purged pages back on the free list (the pages fault
/// back in as they are used). True if any block came back.
///
/// # Safety
/// As `purge`.
pub unsafe fn unpurge(s: &mut Span) -> bool {
    if s.purged == 0 {
        return false;
    }
    let size = s.block_size as usize;
    let carved = (s.bump - s.start) / size.max(1);
    let mut head = s.free;
    let mut added = false;
    for i in (0..carved).rev() {
        let addr = s.start + i * size;
        if s.purged & (1u128 << ((addr - s.start) / PAGE_SIZE)) != 0 {
            let blk = addr as *mut Block;
            // SAFETY: a block starting in a purged page is free and on no list; its page
            // read as zero since the purge, so a mark there means the program freed
            // the block again meanwhile (and the fast path listed it a second time).
            unsafe {
                if Block::is_marked(blk) {
                    os::fatal_misuse("free", "double free of", addr);
                }
                Block::put(blk, head);
            }
            head = blk;
            added = true;
        }
    }
    s.purged = 0;
    s.free = head;
    added
}
