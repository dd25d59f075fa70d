//! fork() (design invariant 7).
//!
//! The usual recipe, taking every allocator lock in a `pthread_atfork` prepare
//! handler, deadlocks under glibc: `fork` runs the prepare handlers *before* it takes
//! the stdio list lock, so a thread that holds that lock (in `fflush(NULL)`, say) and
//! waits for one of ours inside `malloc` blocks the forking thread, which holds ours
//! and waits for stdio. jemalloc and tcmalloc hang this way.
//!
//! oxmalloc takes no shared lock around fork. In the child, which has only the forking
//! thread, every allocator lock still held belonged to a thread that no longer exists
//! and may have been interrupted mid-update: the child resets that lock and rebuilds
//! what it guarded from scratch (an arena starts empty under a new generation, so spans
//! carved before are never given back to it; a record pool starts a new chunk). The
//! memory involved stays mapped and unused in the child. Everything else is either the
//! forking thread's own (its heap) or updated with single atomic operations.
//!
//! The one lock the prepare handler waits for is the forking thread's own heap lock,
//! which another thread may hold for a moment while it takes free spans from the heap
//! (thread_heap.rs, "Idle heaps"): the child must not inherit the heap's lists half
//! rewritten. The handler pins the heap (others leave it alone until the fork is
//! over) and waits for the lock once; it does not hold it. The thread it may wait for
//! waits for nothing but arena locks, whose holders are inside oxmalloc and never wait
//! for stdio, so this cannot close the cycle described above.
//!
//! One thing must not happen *during* fork: moving the break. Linux's fork copies the
//! parent's `brk` value before it locks and copies the mappings, so a `brk()` running
//! in another thread at that moment leaves the child a break that its heap mapping
//! does not reach, and the child faults on memory it was handed. So the prepare
//! handler announces the fork and waits for any `sbrk` call already under way to
//! return (a syscall that never waits on a lock of anyone's: no deadlock), and until
//! the fork is over arenas grow with mmap and skip trimming the break.

use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use crate::arena::ARENAS;
use crate::span::{Pool, SPAN_POOL};
use crate::sync::Mutex;

/// Forks under way in this process (between prepare and parent/child handlers).
static FORKING: AtomicUsize = AtomicUsize::new(0);
/// Threads inside `brk_section`.
static BRK_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

pub fn install() {
    // SAFETY: registers plain functions as fork handlers.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Runs `f`, which moves the program break, unless a fork is under way: then `None`,
/// and the caller does without the break this time.
pub fn brk_section<T>(f: impl FnOnce() -> T) -> Option<T> {
    // Announce first, then look (and the forking thread does the opposite), both
    // sequentially consistent: one of the two sees the other.
    BRK_IN_FLIGHT.fetch_add(1, SeqCst);
    let result = if FORKING.load(SeqCst) == 0 { Some(f()) } else { None };
    BRK_IN_FLIGHT.fetch_sub(1, SeqCst);
    result
}

extern "C" fn prepare() {
    crate::thread_heap::pin_own_heap(true);
    FORKING.fetch_add(1, SeqCst);
    while BRK_IN_FLIGHT.load(SeqCst) != 0 {
        core::hint::spin_loop();
    }
}

extern "C" fn parent() {
    FORKING.fetch_sub(1, SeqCst);
    crate::thread_heap::pin_own_heap(false);
}

pub(crate) fn reset_pool_after_fork(pool: &Mutex<Pool>, item: usize) {
    if pool.raw().is_locked() {
        pool.raw().reset();
        // SAFETY: single-threaded child; nobody else can hold or use the pool.
        unsafe { *pool.get_unlocked() = Pool::new(item) };
    }
}

extern "C" fn child() {
    FORKING.store(0, SeqCst);
    BRK_IN_FLIGHT.store(0, SeqCst);
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
    crate::transfer_cache::reset_after_fork();
    crate::check::reset_after_fork();
    crate::large::reset_after_fork();
}


