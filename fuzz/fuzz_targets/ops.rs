//! Fuzz target: the input is a program for the shadow-model driver shared with the test
//! suite (tests/driver/mod.rs): malloc, calloc, realloc, aligned allocation, free,
//! malloc_usable_size, malloc_trim on four threads, with every byte of every live block,
//! alignment, usable size and non-overlap checked. A violation panics (a crash for
//! libFuzzer). Run: `cargo +nightly fuzz run ops` (see README, "Fuzzing and stress").
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/driver/mod.rs"]
mod driver;

fuzz_target!(|data: &[u8]| {
    driver::Driver::run(data);
});
