//! Tuning parameters, with glibc's names, defaults and meanings: `mallopt`, the
//! `MALLOC_*_` environment variables, and `GLIBC_TUNABLES=glibc.malloc.*`.
//!
//! | parameter        | env / tunable                                   | default  | effect in oxmalloc |
//! |------------------|-------------------------------------------------|----------|--------------------|
//! | M_TRIM_THRESHOLD | MALLOC_TRIM_THRESHOLD_ / glibc.malloc.trim_threshold | 128 KiB | free space at the top of the brk heap beyond this is given back |
//! | M_TOP_PAD        | MALLOC_TOP_PAD_ / glibc.malloc.top_pad          | 128 KiB  | extra bytes the heap grows by, and keeps when trimming |
//! | M_MMAP_THRESHOLD | MALLOC_MMAP_THRESHOLD_ / glibc.malloc.mmap_threshold | 128 KiB, dynamic | requests at or above it get their own mapping |
//! | M_MMAP_MAX       | MALLOC_MMAP_MAX_ / glibc.malloc.mmap_max        | 65536    | at most this many such mappings (0: none) |
//! | M_ARENA_MAX      | MALLOC_ARENA_MAX / glibc.malloc.arena_max       | CPUs     | cap on arenas |
//! | M_ARENA_TEST     | MALLOC_ARENA_TEST / glibc.malloc.arena_test     | 8        | recorded; oxmalloc sizes arenas from the CPUs at once |
//! | M_PERTURB        | MALLOC_PERTURB_ / glibc.malloc.perturb          | 0        | fill blocks with ~byte on malloc, byte on free |
//! | M_CHECK_ACTION   | MALLOC_CHECK_ / glibc.malloc.check              | 3        | bit 0: print a message on heap misuse (oxmalloc always aborts) |
//! | M_MXFAST         | glibc.malloc.mxfast                             | 128      | recorded (0..=160 accepted); oxmalloc has no fastbins |
//!
//! As in glibc, setting the mmap threshold, trim threshold, top pad or mmap max turns
//! off the dynamic mmap threshold (which otherwise rises to the size of the largest
//! mmapped block freed, up to 32 MiB, with the trim threshold at twice that). It also
//! turns off the one liberty oxmalloc takes with the trim threshold: an arena that has
//! to grow again within a second of giving memory back (lowering the break, unmapping
//! a region) keeps more from then on (arena.rs, `ArenaInner::keep`).
//! Environment variables are read without allocating (libc's getenv).

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

pub const M_MXFAST: i32 = 1;
pub const M_TRIM_THRESHOLD: i32 = -1;
pub const M_TOP_PAD: i32 = -2;
pub const M_MMAP_THRESHOLD: i32 = -3;
pub const M_MMAP_MAX: i32 = -4;
pub const M_CHECK_ACTION: i32 = -5;
pub const M_PERTURB: i32 = -6;
pub const M_ARENA_TEST: i32 = -7;
pub const M_ARENA_MAX: i32 = -8;

const DEFAULT_MMAP_THRESHOLD: usize = 128 * 1024;
/// glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: the dynamic threshold's ceiling.
const MMAP_THRESHOLD_MAX: usize = 32 * 1024 * 1024;
const MAX_FAST_SIZE: usize = 160;

static TRIM_THRESHOLD: AtomicUsize = AtomicUsize::new(128 * 1024);
static TOP_PAD: AtomicUsize = AtomicUsize::new(128 * 1024);
static MMAP_THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_MMAP_THRESHOLD);
static MMAP_MAX: AtomicUsize = AtomicUsize::new(65536);
static ARENA_MAX: AtomicUsize = AtomicUsize::new(0);
static ARENA_TEST: AtomicUsize = AtomicUsize::new(8);
static PERTURB: AtomicUsize = AtomicUsize::new(0);
static CHECK_ACTION: AtomicUsize = AtomicUsize::new(3);
static MXFAST: AtomicUsize = AtomicUsize::new(128);
/// Set once the user fixed a threshold: no dynamic mmap threshold from then on.
static NO_DYNAMIC_THRESHOLD: AtomicBool = AtomicBool::new(false);
/// Bumped whenever an option changes, so thread heaps re-read what concerns them.
static EPOCH: AtomicU32 = AtomicU32::new(1);
static ENV_READ: AtomicBool = AtomicBool::new(false);

/// A snapshot of the options.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub trim_threshold: usize,
    pub top_pad: usize,
    pub mmap_threshold: usize,
    pub mmap_max: usize,
    pub arena_max: usize,
    pub arena_test: usize,
    pub perturb_byte: u8,
    pub check_action: usize,
    pub mxfast: usize,
    pub dynamic_threshold: bool,
}

impl Options {
    /// Must every malloc and free go through the slow path? (Perturbing fills every
    /// block; a threshold inside the fast path's sizes must be checked on every call.)
    pub fn needs_slow_path(&self) -> bool {
        self.perturb_byte != 0
            || crate::check::enabled()
            || (self.mmap_threshold <= crate::size_class::SMALL_LOOKUP_MAX && self.mmap_max > 0)
    }
}

pub fn get() -> Options {
    Options {
        trim_threshold: TRIM_THRESHOLD.load(Ordering::Relaxed),
        top_pad: TOP_PAD.load(Ordering::Relaxed),
        mmap_threshold: MMAP_THRESHOLD.load(Ordering::Relaxed),
        mmap_max: MMAP_MAX.load(Ordering::Relaxed),
        arena_max: ARENA_MAX.load(Ordering::Relaxed),
        arena_test: ARENA_TEST.load(Ordering::Relaxed),
        perturb_byte: PERTURB.load(Ordering::Relaxed) as u8,
        check_action: CHECK_ACTION.load(Ordering::Relaxed),
        mxfast: MXFAST.load(Ordering::Relaxed),
        dynamic_threshold: !NO_DYNAMIC_THRESHOLD.load(Ordering::Relaxed),
    }
}

/// The mmap threshold alone (one load, for the allocation paths).
#[inline]
pub fn mmap_threshold() -> usize {
    MMAP_THRESHOLD.load(Ordering::Relaxed)
}

/// M_MMAP_MAX alone.
#[inline]
pub fn mmap_max() -> usize {
    MMAP_MAX.load(Ordering::Relaxed)
}

#[inline]
pub fn epoch() -> u32 {
    EPOCH.load(Ordering::Relaxed)
}

/// glibc's mallopt: 1 if the parameter was accepted, 0 if not.
pub fn mallopt(param: i32, value: i32) -> i32 {
    // glibc converts the int to size_t: a negative value is a huge one.
    let v = value as isize as usize;
    let ok = match param {
        M_TRIM_THRESHOLD => {
            TRIM_THRESHOLD.store(v, Ordering::Relaxed);
            NO_DYNAMIC_THRESHOLD.store(true, Ordering::Relaxed);
            true
        }
        M_TOP_PAD => {
            TOP_PAD.store(v, Ordering::Relaxed);
            NO_DYNAMIC_THRESHOLD.store(true, Ordering::Relaxed);
            true
        }
        M_MMAP_THRESHOLD => {
            MMAP_THRESHOLD.store(v, Ordering::Relaxed);
            NO_DYNAMIC_THRESHOLD.store(true, Ordering::Relaxed);
            true
        }
        M_MMAP_MAX => {
            MMAP_MAX.store(value.max(0) as usize, Ordering::Relaxed);
            NO_DYNAMIC_THRESHOLD.store(true, Ordering::Relaxed);
            true
        }
        M_ARENA_MAX => {
            if value > 0 {
                ARENA_MAX.store(v, Ordering::Relaxed);
            }
            true
        }
        M_ARENA_TEST => {
            if value > 0 {
                ARENA_TEST.store(v, Ordering::Relaxed);
            }
            true
        }
        M_PERTURB => {
            PERTURB.store(value as u8 as usize, Ordering::Relaxed);
            true
        }
        M_CHECK_ACTION => {
            CHECK_ACTION.store(v, Ordering::Relaxed);
            true
        }
        M_MXFAST if value >= 0 && (value as usize) <= MAX_FAST_SIZE => {
            MXFAST.store(v, Ordering::Relaxed);
            true
        }
        M_MXFAST => false,
        // glibc 2.36 answers 1 to a parameter it does not know; oxmalloc says 0, so a
        // caller can tell that nothing happened.
        _ => false,
    };
    if ok {
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }
    ok as i32
}

/// glibc's dynamic mmap threshold: freeing an mmapped block bigger than the threshold
/// (up to 32 MiB) raises the threshold to its size, and the trim threshold to twice that,
/// so that a program that keeps allocating such blocks gets them from the heap.
pub fn note_mmapped_free(size: usize) {
    if NO_DYNAMIC_THRESHOLD.load(Ordering::Relaxed) {
        return;
    }
    // glibc sets the threshold to the freed chunk's size, which includes its header, so
    // a new request of the same size falls below it. oxmalloc's mappings have no
    // header: one byte past the mapping's size has the same effect.
    if size >= MMAP_THRESHOLD.load(Ordering::Relaxed) && size <= MMAP_THRESHOLD_MAX {
        MMAP_THRESHOLD.store(size + 1, Ordering::Relaxed);
        TRIM_THRESHOLD.store(2 * size, Ordering::Relaxed);
    }
}

extern "C" {
    static environ: *const *const libc::c_char;
}

/// Reads the environment once it is available (libc's `environ` is set up after the
/// first mallocs of the dynamic loader, so the first call may find nothing to read;
/// the library constructor calls this again).
pub fn init_from_env() {
    // SAFETY: reading libc's environ pointer; it is null or a valid array.
    if unsafe { environ }.is_null() || ENV_READ.swap(true, Ordering::AcqRel) {
        return;
    }
    let set = |param: i32, name: &CStr| {
        if let Some(v) = getenv_number(name) {
            apply(param, v);
        }
    };
    set(M_TRIM_THRESHOLD, c"MALLOC_TRIM_THRESHOLD_");
    set(M_TOP_PAD, c"MALLOC_TOP_PAD_");
    set(M_MMAP_THRESHOLD, c"MALLOC_MMAP_THRESHOLD_");
    set(M_MMAP_MAX, c"MALLOC_MMAP_MAX_");
    set(M_ARENA_MAX, c"MALLOC_ARENA_MAX");
    set(M_ARENA_TEST, c"MALLOC_ARENA_TEST");
    set(M_PERTURB, c"MALLOC_PERTURB_");
    set(M_CHECK_ACTION, c"MALLOC_CHECK_");
    if getenv_number(c"OXMALLOC_CHECK").is_some_and(|v| v != 0) {
        crate::check::enable();
        EPOCH.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(t) = getenv(c"GLIBC_TUNABLES") {
        for item in t.split(|&c| c == b':') {
            let Some(eq) = item.iter().position(|&c| c == b'=') else { continue };
            let (name, value) = (&item[..eq], &item[eq + 1..]);
            let Some(v) = parse_number(value) else { continue };
            let param = match name {
                b"glibc.malloc.trim_threshold" => M_TRIM_THRESHOLD,
                b"glibc.malloc.top_pad" => M_TOP_PAD,
                b"glibc.malloc.mmap_threshold" => M_MMAP_THRESHOLD,
                b"glibc.malloc.mmap_max" => M_MMAP_MAX,
                b"glibc.malloc.arena_max" => M_ARENA_MAX,
                b"glibc.malloc.arena_test" => M_ARENA_TEST,
                b"glibc.malloc.perturb" => M_PERTURB,
                b"glibc.malloc.check" => M_CHECK_ACTION,
                b"glibc.malloc.mxfast" => M_MXFAST,
                _ => continue,
            };
            apply(param, v);
        }
    }
}

/// Applies a value read from the environment: glibc takes these as size_t (no sign),
/// and ignores values out of range for an int-valued parameter.
fn apply(param: i32, v: u64) {
    match param {
        M_TRIM_THRESHOLD | M_TOP_PAD | M_MMAP_THRESHOLD => {
            let slot = match param {
                M_TRIM_THRESHOLD => &TRIM_THRESHOLD,
                M_TOP_PAD => &TOP_PAD,
                _ => &MMAP_THRESHOLD,
            };
            slot.store(v as usize, Ordering::Relaxed);
            NO_DYNAMIC_THRESHOLD.store(true, Ordering::Relaxed);
            EPOCH.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            if v <= i32::MAX as u64 {
                mallopt(param, v as i32);
            }
        }
    }
}

/// The value of an environment variable, without allocating.
pub fn getenv(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns null or a NUL-terminated string in the environment block,
    // which lives as long as the process unless the program edits it.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_bytes())
        }
    }
}

fn getenv_number(name: &CStr) -> Option<u64> {
    parse_number(getenv(name)?)
}

/// Parses a number the way glibc's tunables do (strtoul base 0): decimal, `0x` hex,
/// or leading-`0` octal. Anything else (empty, trailing junk, overflow) is rejected.
pub fn parse_number(s: &[u8]) -> Option<u64> {
    let (digits, radix) = if s.len() > 2 && (s.starts_with(b"0x") || s.starts_with(b"0X")) {
        (&s[2..], 16)
    } else if s.len() > 1 && s[0] == b'0' {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)? as u64;
        v = v.checked_mul(radix as u64)?.checked_add(d)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::parse_number;

    #[test]
    fn numbers_parse_like_strtoul_base_0() {
        assert_eq!(parse_number(b"131072"), Some(131072));
        assert_eq!(parse_number(b"0x20000"), Some(131072));
        assert_eq!(parse_number(b"010"), Some(8));
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"12k"), None);
        assert_eq!(parse_number(b"-1"), None);
        assert_eq!(parse_number(b"99999999999999999999999"), None);
    }
}
