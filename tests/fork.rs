//! fork() under load (tests/c/fork.c): children of a process whose threads are busy in
//! malloc and stdio must be able to allocate, and must never hang.
mod common;

use common::*;
use std::time::Duration;

fn fork_test(mode: &str, n: &str, preload: Preload) {
    let exe = compile_c("fork", &[]);
    // Global limit; each child is also limited to 10 s by the program itself.
    let out = run(cmd(&exe, &[mode, n]), &preload, Duration::from_secs(120));
    let summary = summary_line(&out, &format!("SUMMARY fork-{mode}")).unwrap_or_default();
    assert!(
        out.success() && summary.contains("failed=0"),
        "fork {mode} {n} failed under {}:\n{}",
        preload.label(),
        out.describe()
    );
    eprintln!("{}", out.stdout_str());
}

/// 300 forks while 4 threads allocate/free and 3 threads do stdio (getline on a pipe,
/// fprintf + fflush(NULL)); every child allocates (also > 128 KiB) and exits in time.
#[test]
fn fork_while_threads_allocate() {
    fork_test("threaded", "40", Preload::None); // control
    fork_test("threaded", "300", Preload::Oxmalloc);
}

/// Two threads grow and shrink the heap continuously while the main thread forks 500
/// times: every child's [heap] must be mapped up to its break (Linux copies mm->brk
/// before the mappings, so a brk() running during fork leaves the child a break beyond
/// its heap), and fresh blocks in the child must be writable.
#[test]
fn fork_while_threads_move_the_break() {
    fork_test("brkrace", "100", Preload::None); // control
    fork_test("brkrace", "500", Preload::Oxmalloc);
}

/// Single-threaded: children (and grandchildren) use and free inherited blocks; the
/// parent's blocks are unaffected.
#[test]
fn fork_single_threaded() {
    fork_test("single", "30", Preload::None); // control
    fork_test("single", "100", Preload::Oxmalloc);
}

/// Forks while another thread empties spans of the forking thread's heap and takes
/// them from it (give_back_whole_span, and the decay's "Idle heaps" once the forking
/// thread has been idle for a second), under that heap's lock: 3 rounds of 20000
/// blocks freed 50 at a time through ~1.2 s of forks each; every child allocates from
/// the inherited heap and exits 0, and the parent's own blocks stay intact. (In an
/// instrumented run, 806 spans were taken during 1675 forks, 116 takes found the heap
/// pinned by a fork and left it alone.)
#[test]
fn fork_while_another_thread_takes_spans_from_the_forking_heap() {
    fork_test("reclaim", "1", Preload::None); // control
    fork_test("reclaim", "3", Preload::Oxmalloc);
}

/// A thread of the parent allocates (cached and uncached sizes), then mallocs and frees
/// 20 KiB blocks in a loop (holding its heap's lock part of the time) while the main
/// thread forks 20 times. In each child a new thread (on the dead thread's stack
/// and thread pointer, as glibc reuses it) frees those blocks and allocates, checks and
/// frees rounds of the same sizes, then the child's main thread does the same: a
/// thread must not take a dead thread's spans for its own because its thread pointer
/// is the same.
#[test]
fn a_child_thread_on_a_dead_parent_thread_s_stack_frees_its_blocks() {
    fork_test("reused", "5", Preload::None); // control
    fork_test("reused", "20", Preload::Oxmalloc);
}
