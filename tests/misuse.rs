//! Heap misuse ends the process with SIGABRT and one line on stderr that names the
//! problem and the address (tests/c/misuse.c commits one misuse per run and prints
//! the address first). No timing; the line is compared exactly.
mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// Runs `misuse MODE` under oxmalloc and checks it aborted with exactly
/// `oxmalloc: <op>(): <problem> <address printed by the program>` on stderr.
fn expect_abort(mode: &str, op: &str, problem: &str) {
    expect_abort_with(mode, &[], op, problem)
}

fn run_misuse(mode: &str, env: &[(&str, &str)]) -> Output {
    let exe = compile_c("misuse", &[]);
    let mut c = cmd(&exe, &[mode]);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c, &Preload::Oxmalloc, Duration::from_secs(30))
}

fn expect_abort_with(mode: &str, env: &[(&str, &str)], op: &str, problem: &str) {
    let out = run_misuse(mode, env);
    let stdout = out.stdout_str();
    let addr = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ADDR "))
        .unwrap_or_else(|| panic!("{mode}: the program printed no address:\n{}", out.describe()))
        .trim()
        .to_string();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{mode}: expected SIGABRT\n{}",
        out.describe()
    );
    assert!(!stdout.contains("SURVIVED"), "{mode}: the misuse went unnoticed\n{}", out.describe());
    let expected = format!("oxmalloc: {op}(): {problem} {addr}");
    let stderr = out.stderr_str();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines, vec![expected.as_str()], "{mode}: stderr is not exactly the one line\n{}", out.describe());
}

#[test]
fn double_free_of_a_small_block() {
    expect_abort("double-small", "free", "double free of");
}

#[test]
fn double_free_of_a_100k_block() {
    expect_abort("double-100k", "free", "double free of");
}

#[test]
fn double_free_of_a_4m_block() {
    expect_abort("double-4m", "free", "double free of");
}

#[test]
fn double_free_by_another_thread() {
    expect_abort("double-remote", "free", "double free of");
}

#[test]
fn free_of_an_interior_pointer() {
    expect_abort("interior", "free", "invalid pointer (inside a block, not its start)");
    expect_abort("interior-remote", "free", "invalid pointer (inside a block, not its start)");
    expect_abort("interior-remote-heap", "free", "invalid pointer (inside a block, not its start)");
}

#[test]
fn free_of_an_interior_pointer_of_a_large_block() {
    // p + 16 lies in the block's first page, which the page map knows.
    expect_abort("interior-large", "free", "invalid pointer (inside a block, not its start)");
}

#[test]
fn free_of_a_stack_address() {
    expect_abort("stack", "free", "invalid pointer (not from oxmalloc)");
}

#[test]
fn free_of_a_wild_address() {
    expect_abort("wild", "free", "invalid pointer (not from oxmalloc)");
}

#[test]
fn realloc_of_a_wild_address() {
    expect_abort("realloc-wild", "realloc", "invalid pointer (not from oxmalloc)");
}

#[test]
fn realloc_of_a_freed_block() {
    expect_abort("realloc-freed", "realloc", "pointer to a freed block");
}

#[test]
fn free_of_memory_oxmalloc_never_returned() {
    expect_abort("foreign", "free", "invalid pointer (not from oxmalloc)");
}

#[test]
fn malloc_usable_size_of_a_foreign_pointer() {
    expect_abort("usable-foreign", "malloc_usable_size", "invalid pointer (not from oxmalloc)");
}

#[test]
fn free_sized_with_the_wrong_size() {
    expect_abort("free-sized", "free_sized", "size does not match the block at");
}

#[test]
fn overflow_into_a_free_block_is_caught_before_its_link_is_followed() {
    expect_abort("overflow", "malloc", "corrupted free block (overflow or write after free) at");
}

#[test]
fn write_after_free_is_caught_when_the_block_is_reused() {
    expect_abort("write-after-free", "malloc", "corrupted free block (overflow or write after free) at");
}

/// A freed block first waits in the thread's cache, where its first bytes mean nothing
/// to the allocator (malloc takes it back as it is); the write is caught when the cache
/// sends the block back to its span, before its link would be used.
#[test]
fn write_after_free_into_a_cached_block_is_caught_when_the_cache_flushes() {
    expect_abort("uaf-cached", "free", "corrupted free block (overflow or write after free) at");
}

/// Every free block carries a mark, so a link overwritten with the address of another
/// span's free block (here one of another class, waiting in the thread's cache) passes
/// the mark check; it is caught before that block is handed out a second time.
#[test]
fn a_link_overwritten_with_a_free_block_of_another_span_is_caught() {
    expect_abort("uaf-link", "malloc", "corrupted free block (overflow or write after free) at");
}

/// malloc_trim walks a span's free list to find its free pages: a link overwritten to
/// point at its own block is reported there, not looped on.
#[test]
fn a_free_block_linked_to_itself_is_caught_by_malloc_trim() {
    expect_abort("self-link-trim", "malloc", "corrupted free block (overflow or write after free) at");
}

// The strict mode (OXMALLOC_CHECK=1) catches what the default build lets through.

const STRICT: &[(&str, &str)] = &[("OXMALLOC_CHECK", "1")];

#[test]
fn strict_mode_catches_a_write_after_free_when_the_block_comes_back() {
    expect_abort_with("uaf-late", STRICT, "free", "write after free detected in the block at");
}

#[test]
fn strict_mode_catches_an_aligned_interior_pointer_of_the_calling_thread() {
    expect_abort_with("interior-own", STRICT, "free", "invalid pointer (inside a block, not its start)");
}

#[test]
fn strict_mode_zeroes_freed_blocks() {
    let out = run_misuse("zero-on-free", STRICT);
    assert!(out.success() && out.stdout_str().contains("ZEROED\n"), "{}", out.describe());
    assert!(!out.stdout_str().contains("NOT ZEROED"), "{}", out.describe());
}

#[test]
fn strict_mode_puts_guard_pages_after_large_blocks() {
    let out = run_misuse("large-overflow", STRICT);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{}", out.describe());
    // Without the strict mode the byte after the block is the next mapping or a hole:
    // nothing to assert there, the guard is the point.
}

#[test]
fn strict_mode_runs_the_shadow_driver_clean() {
    // Every byte of every live block checked, with quarantine and zeroing under it.
    let exe = compile_c("shadow", &[]);
    let mut c = cmd(&exe, &["7", "100000", "2000", "4"]);
    c.env("OXMALLOC_CHECK", "1");
    let out = run(c, &Preload::Oxmalloc, Duration::from_secs(120));
    let summary = summary_line(&out, "SUMMARY shadow").unwrap_or_default();
    assert!(out.success() && summary.contains("failed=0"), "{}", out.describe());
}
