//! The allocator's own locks. They never allocate (a futex word and nothing else), so
//! they are safe on the malloc path, unlike `std::sync::Mutex` or parking_lot's slow
//! path, which may allocate.
//!
//! No lock is held across a call out of oxmalloc, and the locks are taken in one
//! order: a thread heap's `lock` (its owner's slow paths; the fast paths take none),
//! the registry of heaps, other heaps' locks (only with `try_lock`, see thread_heap.rs
//! "Idle heaps"), `Arena::lock`, `meta::LOCK`. A transfer cache's lock
//! (transfer_cache.rs) is innermost: nothing else is taken while it is held.
//! Fork holds none of them across the fork (the prepare handler only waits once for
//! the forking thread's own heap lock, see fork.rs): the child resets any lock found
//! held.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use crate::os;

/// A futex mutex (Drepper's three-state design): 0 unlocked, 1 locked, 2 locked with
/// possible waiters. Uncontended lock and unlock are one atomic each.
pub struct RawMutex {
    state: AtomicU32,
}

impl RawMutex {
    pub const fn new() -> Self {
        RawMutex { state: AtomicU32::new(0) }
    }

    #[inline]
    pub fn lock(&self) {
        if self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    /// Takes the lock if it is free; never waits.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
        // Spin briefly: critical sections are short, and a futex sleep costs more.
        for _ in 0..100 {
            core::hint::spin_loop();
            if self.state.load(Ordering::Relaxed) == 0
                && self.state.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                return;
            }
        }
        while self.state.swap(2, Ordering::Acquire) != 0 {
            os::futex_wait(&self.state, 2);
        }
    }

    #[inline]
    pub fn unlock(&self) {
        if self.state.swap(0, Ordering::Release) == 2 {
            os::futex_wake_one(&self.state);
        }
    }

    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != 0
    }

    /// Forgets any holder. Only for the child after fork(), where the holder is a
    /// thread that no longer exists.
    pub fn reset(&self) {
        self.state.store(0, Ordering::Relaxed);
    }
}

/// Data guarded by a [`RawMutex`].
pub struct Mutex<T> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by `raw`.
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: as above; T itself moves between threads only under the lock.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Self {
        Mutex { raw: RawMutex::new(), data: UnsafeCell::new(value) }
    }

    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard { mutex: self }
    }

    /// The lock if it is free; never waits.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // Not `then_some`: its argument is built either way, and dropping a guard that
        // was never the lock's would unlock it under its holder.
        if self.raw.try_lock() {
            Some(MutexGuard { mutex: self })
        } else {
            None
        }
    }

    pub fn raw(&self) -> &RawMutex {
        &self.raw
    }

    /// The data without the lock.
    ///
    /// # Safety
    /// The caller must be the only thread that can touch the data (the child after
    /// fork, or code that holds the lock through `raw()`).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_unlocked(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's promise.
        unsafe { &mut *self.data.get() }
    }
}

pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, so this is the only reference.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.raw.unlock();
    }
}
