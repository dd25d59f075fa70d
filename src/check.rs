//! The strict mode (`OXMALLOC_CHECK=1`, or the `check` cargo feature): more misuse
//! found, at a cost in speed and memory.
//!
//! The default build already catches double frees, frees of pointers it never handed
//! out, and overwritten free blocks (span.rs, `Block`'s free mark). The strict mode
//! adds, for blocks of the size classes:
//! - **zero on free**: a freed block is filled with zeros (stale data does not linger);
//! - **quarantine**: a freed block waits in a FIFO of QUARANTINE_LEN blocks before it
//!   can be reused, so a use after free hits a block nobody else owns yet;
//! - **write-after-free detection**: a block leaving the quarantine, and a block being
//!   handed out again, must still be all zero (beyond its mark and link): any other
//!   byte was written after the free, and the process ends naming the block;
//! - every malloc and free goes through the slow paths, which validate every pointer
//!   (a 16-byte-aligned pointer into the middle of a block of the calling thread is
//!   caught too, which the fast path cannot afford).
//!
//! And for large (mmapped) blocks:
//! - **guard pages**: a PROT_NONE page on each side of the block, so running off
//!   either end faults at once (in the block's last page, an overflow within the
//!   rounding to whole pages is not caught).

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::os;
use crate::span::{Block, Span};
use crate::sync::Mutex;

static ENABLED: AtomicBool = AtomicBool::new(cfg!(feature = "check"));

/// Is the strict mode on?
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns the strict mode on (from `OXMALLOC_CHECK`, read at start-up).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// How many freed blocks wait before they can be reused.
pub const QUARANTINE_LEN: usize = 1024;

struct Quarantine {
    blocks: [(*mut Block, *mut Span); QUARANTINE_LEN],
    next: usize,
}

// SAFETY: only used under its Mutex.
unsafe impl Send for Quarantine {}

static QUARANTINE: Mutex<Quarantine> =
    Mutex::new(Quarantine { blocks: [(ptr::null_mut(), ptr::null_mut()); QUARANTINE_LEN], next: 0 });

/// Zero-fills the block `b` of small span `s` being freed, marks it free, and puts it
/// in quarantine. Returns the block that leaves the quarantine to make room (null if
/// none), checked and unmarked: the caller frees it for real.
///
/// # Safety
/// `b` is an out block of the small span `s`, validated by the caller.
pub unsafe fn quarantine(b: *mut Block, s: *mut Span) -> (*mut Block, *mut Span) {
    // SAFETY: per the contract the block is the caller's to give back.
    unsafe {
        ptr::write_bytes(b.cast::<u8>(), 0, (*s).block_size as usize);
        Block::put(b, ptr::null_mut());
    }
    let (old, old_span) = {
        let mut q = QUARANTINE.lock();
        let i = q.next % QUARANTINE_LEN;
        q.next = q.next.wrapping_add(1);
        // SAFETY: i < QUARANTINE_LEN.
        let slot = unsafe { q.blocks.get_unchecked_mut(i) };
        core::mem::replace(slot, (b, s))
    };
    if old.is_null() {
        return (old, old_span);
    }
    // SAFETY: a quarantined block stays out (counted in `used`) until it leaves here,
    // so its span is live and the block is ours.
    unsafe {
        if !Block::is_marked(old) || !(*old).next.is_null() {
            os::fatal_misuse("free", "write after free (found in quarantine) in the block at", old as usize);
        }
        verify_zero(old, old_span, "free");
        (*old).mark = 0;
    }
    (old, old_span)
}

/// Ends the process if any byte of block `b` of span `s` beyond its mark and link is
/// not zero (it was freed zeroed; something wrote to it since).
///
/// # Safety
/// `b` is a free block of the small span `s`.
pub unsafe fn verify_zero(b: *mut Block, s: *mut Span, op: &str) {
    // SAFETY: per the contract, the block's bytes are readable.
    unsafe {
        let size = (*s).block_size as usize;
        let words = b.cast::<usize>();
        for i in 2..size / 8 {
            if words.add(i).read() != 0 {
                os::fatal_misuse(op, "write after free detected in the block at", b as usize);
            }
        }
    }
}

/// The child after fork: the quarantine lock may have been held by a thread that is gone.
pub fn reset_after_fork() {
    if QUARANTINE.raw().is_locked() {
        QUARANTINE.raw().reset();
    }
}
