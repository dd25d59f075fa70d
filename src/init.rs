//! Lazy, allocation-free start-up (design invariant 8).
//!
//! The first call into oxmalloc may come from the dynamic loader, from `dlsym`, or from
//! another library's constructor before ours ran, so nothing is set up eagerly: the
//! first thread heap to be created runs `ensure` (options and arena count: no calls
//! that allocate), then `ensure_hooks` (the pthread key and the fork handler, which may
//! allocate, so they run once the calling thread already has its heap).
//! The library constructor re-reads the environment, which may not have been
//! readable during the dynamic loader's first mallocs, and reads the reports asked
//! for at exit (exit_report.rs).

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::arena::MAX_ARENAS;
use crate::options;
use crate::os;
use crate::thread_heap::{self, HEAP_KEY};

const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static BASIC: AtomicU8 = AtomicU8::new(NOT_STARTED);
static HOOKS: AtomicU8 = AtomicU8::new(NOT_STARTED);
static CPUS: AtomicUsize = AtomicUsize::new(1);

/// Runs `f` once across threads; later callers wait until it has finished.
fn once(state: &AtomicU8, f: impl FnOnce()) {
    if state.load(Ordering::Acquire) == DONE {
        return;
    }
    if state.compare_exchange(NOT_STARTED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok() {
        f();
        state.store(DONE, Ordering::Release);
        return;
    }
    while state.load(Ordering::Acquire) != DONE {
        core::hint::spin_loop();
        // SAFETY: sched_yield has no memory effects.
        unsafe { libc::sched_yield() };
    }
}

pub fn ensure() {
    once(&BASIC, || {
        options::init_from_env();
        CPUS.store(os::usable_cpus(), Ordering::Relaxed);
    });
}

pub fn ensure_hooks() {
    once(&HOOKS, || {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: registers a destructor with the signature pthread expects.
        if unsafe { libc::pthread_key_create(&mut key, Some(thread_heap::on_thread_exit)) } == 0 {
            HEAP_KEY.store(key, Ordering::Release);
        }
        crate::fork::install();
    });
}

/// How many arenas thread heaps are spread over: the CPUs this process may use,
/// capped by M_ARENA_MAX.
pub fn arena_count() -> usize {
    let mut n = CPUS.load(Ordering::Relaxed);
    let max = options::get().arena_max;
    if max > 0 {
        n = n.min(max);
    }
    n.clamp(1, MAX_ARENAS)
}

extern "C" fn constructor() {
    options::init_from_env();
    crate::exit_report::init_from_env();
}

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = constructor;
