//! fork() (design invariant 7).
//!
//! The usual recipe, taking every allocator lock in a `pthread_atfork` prepare
//! handler, deadlocks under glibc: `fork` runs the prepare handlers *before* it takes
//! the stdio list lock, so a thread that holds that lock (in `fflush(NULL)`, say) and
//! waits for one of ours inside `malloc` blocks the forking thread, which holds ours
//! and waits for stdio. jemalloc and tcmalloc hang this way.
//!
//! oxmalloc takes no lock around fork. In the child, which has only the forking
//! thread, every allocator lock still held belonged to a thread that no longer exists
//! and may have been interrupted mid-update: the child resets that lock and rebuilds
//! what it guarded from scratch (an arena starts empty under a new generation, so spans
//! carved before are never given back to it; a record pool starts a new chunk). The
//! memory involved stays mapped and unused in the child. Everything else is either the
//! forking thread's own (its heap) or updated with single atomic operations.

use crate::arena::ARENAS;
use crate::span::{Pool, SPAN_POOL};
use crate::sync::Mutex;

pub fn install() {
    // SAFETY: registers a plain function as the child handler.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

pub(crate) fn reset_pool_after_fork(pool: &Mutex<Pool>, item: usize) {
    if pool.raw().is_locked() {
        pool.raw().reset();
        // SAFETY: single-threaded child; nobody else can hold or use the pool.
        unsafe { *pool.get_unlocked() = Pool::new(item) };
    }
}

extern "C" fn child() {
    for a in ARENAS.iter() {
        if a.inner.raw().is_locked() {
            a.inner.raw().reset();
            // SAFETY: the child is single-threaded here.
            unsafe { a.inner.get_unlocked().reset_after_fork() };
        }
    }
    reset_pool_after_fork(&SPAN_POOL, core::mem::size_of::<crate::span::Span>());
    crate::arena::reset_pools_after_fork();
    crate::thread_heap::reset_pools_after_fork();
}


