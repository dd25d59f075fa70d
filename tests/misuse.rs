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
    let exe = compile_c("misuse", &[]);
    let out = run(cmd(&exe, &[mode]), &Preload::Oxmalloc, Duration::from_secs(30));
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
