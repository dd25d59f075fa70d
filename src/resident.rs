//! Which of the allocator's pages are resident, asked of the kernel (mincore(2)).
//!
//! The books (free runs' `decommitted` flags, spans' `purged` bitmaps) say which pages
//! oxmalloc gave back, but not which of the others the program ever touched: a span
//! carved but half unused, a big block never written, a free run merged from a
//! decommitted and a dirty one. So the statistics count resident bytes the way the
//! kernel charges them, page by page.
//!
//! `Window` reads the residency of one mapping (an arena region, a large block, a
//! metadata chunk) through a fixed stack window of WINDOW_PAGES pages, refilled as the
//! caller walks forward: one syscall per 2 MiB walked in address order, no allocation.

use crate::os::{self, PAGE_SIZE};

const WINDOW_PAGES: usize = 512;

/// Residency of the pages of `[start, end)`, a range that is mapped as a whole.
pub struct Window {
    start: usize,
    end: usize,
    /// The first page the window holds, and how many it holds (0: none yet).
    base: usize,
    len: usize,
    vec: [u8; WINDOW_PAGES],
    /// Windows the kernel refused (their pages were counted as not resident).
    pub errors: usize,
}

impl Window {
    /// `start` and `end` are page-aligned.
    pub fn new(start: usize, end: usize) -> Window {
        Window { start, end, base: 0, len: 0, vec: [0; WINDOW_PAGES], errors: 0 }
    }

    /// Resident bytes of `[addr, addr + bytes)` (clamped to the window's range).
    pub fn resident(&mut self, addr: usize, bytes: usize) -> usize {
        let mut page = os::page_round_down(addr.max(self.start));
        let end = addr.saturating_add(bytes).min(self.end);
        let mut resident = 0;
        while page < end {
            if page < self.base || page >= self.base + self.len * PAGE_SIZE {
                self.fill(page);
            }
            let i = (page - self.base) / PAGE_SIZE;
            if self.vec.get(i).is_some_and(|v| v & 1 != 0) {
                resident += PAGE_SIZE;
            }
            page += PAGE_SIZE;
        }
        resident
    }

    fn fill(&mut self, page: usize) {
        let len = ((self.end - page) / PAGE_SIZE).clamp(1, WINDOW_PAGES);
        self.base = page;
        self.len = len;
        let Some(out) = self.vec.get_mut(..len) else { return };
        if !os::mincore(page, out) {
            out.fill(0);
            self.errors += 1;
        }
    }
}

/// Resident bytes of the pages overlapping the mapped range `[start, start + bytes)`.
pub fn resident_bytes(start: usize, bytes: usize) -> usize {
    let first = os::page_round_down(start);
    let end = os::page_round_up(start.saturating_add(bytes));
    Window::new(first, end).resident(first, end - first)
}
