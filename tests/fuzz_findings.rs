//! Regression tests for what the fuzzer (`fuzz/`, target `ops`) found. Each finding is
//! replayed in-process against the rlib's `oxmalloc_*` functions, then the shadow-model
//! driver runs over the heap that is left (tests/driver/mod.rs).
#[path = "driver/mod.rs"]
mod driver;

use std::ffi::c_void;
use std::time::Duration;

use oxmalloc::exports as ox;

/// A thread fills several spans of one class and empties them, which leaves the spans in
/// its arena's span cache; they are then left to age past the decay period (DECAY_MS,
/// 1 s) and malloc_trim(0) is called.
fn cached_spans_aged_then_trim() {
    std::thread::spawn(|| {
        let blocks: Vec<usize> = (0..4096)
            // SAFETY: plain allocations.
            .map(|_| unsafe { ox::oxmalloc_malloc(1024) } as usize)
            .collect();
        for p in blocks {
            assert_ne!(p, 0);
            // SAFETY: each block once, from oxmalloc_malloc.
            unsafe { ox::oxmalloc_free(p as *mut c_void) };
        }
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    ox::oxmalloc_malloc_trim(0);
}

/// The allocator's books stay possible: every free run is at least a page of the heap.
fn assert_books(when: &str) {
    let info = ox::oxmalloc_mallinfo2();
    assert!(
        info.ordblks * 4096 <= info.arena && info.uordblks <= info.arena && info.fordblks <= info.arena,
        "{when}: impossible mallinfo2 {info:?}"
    );
}

/// Finding 1 (fuzzer, first 3 minutes; "attempt to subtract with overflow" in
/// SpanList::remove under malloc_trim): malloc_trim flushes the arena's span cache, and
/// giving the first cached span's pages back ran the arena's decay (release_run ->
/// maybe_decay), which flushed the rest of the same list. The flush loop then went on
/// with the `next` it had saved, a span no longer cached (possibly already merged into a
/// free run, or deleted), and released it a second time: under debug assertions the
/// list length underflowed; in release the free runs were corrupted (mallinfo2 reported
/// 2 free runs in a 4 KiB heap, and the next allocations crashed).
#[test]
fn trim_with_several_cached_spans_after_the_decay_period() {
    cached_spans_aged_then_trim();
    assert_books("after the first trim");
    for seed in 0..10 {
        driver::Driver::run(&driver::random_input(seed, 8192));
    }
    assert_books("after driver programs");
    cached_spans_aged_then_trim();
    assert_books("after the second trim");
    driver::Driver::run(&driver::random_input(99, 16384));
}
