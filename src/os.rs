//! The operating system, and nothing else: every syscall oxmalloc makes goes through
//! one of these wrappers (brk, mmap, munmap, mremap, madvise, futex, write, mincore,
//! the few reads of /proc and /sys, and the report files written at exit).
//!
//! Error policy: running out of memory or address space is a result (`None` / null),
//! for the caller to turn into `ENOMEM`. Nothing here allocates, and nothing here
//! touches `errno` on success; callers on the `free` path save and restore it.

use core::ptr;

/// The page size oxmalloc manages memory in. x86-64 Linux only has 4 KiB base pages.
pub const PAGE_SIZE: usize = 4096;
pub const PAGE_SHIFT: u32 = 12;

#[inline]
pub const fn page_round_up(n: usize) -> usize {
    (n + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

#[inline]
pub const fn page_round_down(n: usize) -> usize {
    n & !(PAGE_SIZE - 1)
}

/// Maps `size` bytes (a multiple of the page size) of fresh, zeroed, private memory,
/// subject to the kernel's overcommit policy like glibc's own mappings (so an
/// impossible request fails here, as it does under glibc, instead of later).
pub fn map(size: usize) -> Option<*mut u8> {
    map_with(size, 0)
}

/// As `map`, for oxmalloc's own sparse tables (page-map leaves): `MAP_NORESERVE`,
/// since only the few pages ever written become resident.
pub fn map_sparse(size: usize) -> Option<*mut u8> {
    map_with(size, libc::MAP_NORESERVE)
}

fn map_with(size: usize, extra_flags: i32) -> Option<*mut u8> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choice cannot
    // alias any existing Rust object.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        Some(p.cast())
    }
}

/// Makes `[p, p + len)` (whole pages of a mapping of ours) inaccessible: a guard.
///
/// # Safety
/// The range lies in a mapping oxmalloc made and nothing uses it.
pub unsafe fn guard(p: *mut u8, len: usize) -> bool {
    // SAFETY: per the contract.
    unsafe { libc::mprotect(p.cast(), len, libc::PROT_NONE) == 0 }
}

/// Maps `size` bytes aligned to `align` (a power of two, at least a page) by mapping
/// `size + align - PAGE_SIZE` and unmapping the unaligned head and the surplus tail.
pub fn map_aligned(size: usize, align: usize) -> Option<*mut u8> {
    if align <= PAGE_SIZE {
        return map(size);
    }
    let span = size.checked_add(align - PAGE_SIZE)?;
    let raw = map(span)? as usize;
    let start = (raw + align - 1) & !(align - 1);
    let head = start - raw;
    let tail = span - head - size;
    // SAFETY: both pieces lie inside the mapping made just above and are not handed out.
    unsafe {
        if head > 0 {
            unmap(raw as *mut u8, head);
        }
        if tail > 0 {
            unmap((start + size) as *mut u8, tail);
        }
    }
    Some(start as *mut u8)
}

/// Unmaps `[p, p + size)`.
///
/// # Safety
/// The range must be a whole mapping (or pages of one) that oxmalloc owns and no longer uses.
pub unsafe fn unmap(p: *mut u8, size: usize) {
    // SAFETY: the caller owns the range; munmap of owned pages cannot fail except on
    // bad arguments, which would be an oxmalloc bug, so the result is not needed.
    unsafe { libc::munmap(p.cast(), size) };
}

/// Resizes the mapping at `p` from `old` to `new` bytes, moving it if it must.
///
/// # Safety
/// `[p, p + old)` must be a whole mapping owned by the caller.
pub unsafe fn remap(p: *mut u8, old: usize, new: usize) -> Option<*mut u8> {
    // SAFETY: the caller owns the mapping; MREMAP_MAYMOVE lets the kernel relocate it,
    // which the caller accounts for by using the returned address.
    let q = unsafe { libc::mremap(p.cast(), old, new, libc::MREMAP_MAYMOVE) };
    if q == libc::MAP_FAILED {
        None
    } else {
        Some(q.cast())
    }
}

/// Gives the physical pages of `[p, p + size)` back to the kernel; the range stays
/// mapped and reads as zero afterwards (`MADV_DONTNEED`, so RSS drops at once).
///
/// # Safety
/// The range must be page-aligned memory owned by oxmalloc that holds no live data.
pub unsafe fn decommit(p: *mut u8, size: usize) {
    // SAFETY: the caller guarantees the range is ours and free.
    unsafe { libc::madvise(p.cast(), size, libc::MADV_DONTNEED) };
}

/// Asks which pages of `[start, start + out.len() * PAGE_SIZE)` are resident
/// (mincore(2)): `out[i]` bit 0 is set for resident page i. False when the kernel
/// refuses (a page of the range is not mapped).
///
/// `start` must be page-aligned; the range need not be ours, only mapped.
pub fn mincore(start: usize, out: &mut [u8]) -> bool {
    // SAFETY: mincore only writes `out.len()` bytes into `out`, which we own; it reads
    // no user memory.
    unsafe { libc::mincore(start as *mut libc::c_void, out.len() * PAGE_SIZE, out.as_mut_ptr()) == 0 }
}

/// Opens `path` (NUL-terminated) for writing, created or truncated, mode 0644.
/// The file descriptor, or None.
pub fn create_file(path: &core::ffi::CStr) -> Option<i32> {
    // SAFETY: open(2) on a NUL-terminated path; no memory of ours is written.
    let fd = unsafe {
        libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC, 0o644 as libc::c_uint)
    };
    (fd >= 0).then_some(fd)
}

/// A close-on-exec duplicate of `fd`, numbered `min` or above (out of the way of a
/// program that counts on the low numbers). None if the kernel refuses.
pub fn dup_above(fd: i32, min: i32) -> Option<i32> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) creates a descriptor; no memory is touched.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    (d >= 0).then_some(d)
}

/// Closes a file descriptor this module opened.
pub fn close(fd: i32) {
    // SAFETY: closing a descriptor we own.
    unsafe { libc::close(fd) };
}

/// This process's id.
pub fn pid() -> u32 {
    // SAFETY: getpid has no memory effects.
    unsafe { libc::getpid() as u32 }
}

/// The program break now (`sbrk(0)`).
pub fn brk_now() -> usize {
    // SAFETY: sbrk(0) only reads the break.
    unsafe { libc::sbrk(0) as usize }
}

/// Moves the break by `delta` bytes (positive grows). Returns the old break, or `None`
/// when the kernel refuses (ENOMEM, a mapping above the heap, an RLIMIT_DATA cap).
///
/// glibc's `sbrk` keeps its cached break (`__curbrk`) in step, so other users of
/// `sbrk` in the process (the program, glibc's own malloc in a non-interposing Rust
/// program) see our moves, as we see theirs.
pub fn brk_move(delta: isize) -> Option<usize> {
    // SAFETY: sbrk moves the process break; oxmalloc only ever grows it for itself or
    // shrinks it over memory it owns at the top (see arena.rs).
    let old = unsafe { libc::sbrk(delta as libc::intptr_t) };
    if old as isize == -1 {
        None
    } else {
        Some(old as usize)
    }
}

/// A coarse monotonic clock in milliseconds (the vDSO's CLOCK_MONOTONIC_COARSE: a few
/// nanoseconds, no syscall), for decay decisions.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Blocks while `*word == expected` (or until woken).
pub fn futex_wait(word: &core::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT only reads the word, which outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        )
    };
}

/// Wakes one waiter of `word`.
pub fn futex_wake_one(word: &core::sync::atomic::AtomicU32) {
    // SAFETY: FUTEX_WAKE does not touch memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1)
    };
}

/// Writes all of `bytes` to file descriptor `fd`, retrying short writes and EINTR.
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the slice is valid for reads of its length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = bytes.get(n as usize..).unwrap_or(&[]);
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// Writes `oxmalloc: <msg> <hex address>` to stderr with write(2) and aborts
/// (`usize::MAX`: no address). For states the allocator cannot continue from.
#[cold]
#[inline(never)]
pub fn fatal(msg: &str, addr: usize) -> ! {
    fatal_parts(&[msg], addr)
}

/// Writes `oxmalloc: <op>(): <problem> <hex address>` to stderr and aborts: the report
/// of a misuse of the heap by the program (double free, invalid pointer, a corrupted
/// free block), as glibc's malloc_printerr does.
#[cold]
#[inline(never)]
pub fn fatal_misuse(op: &str, problem: &str, addr: usize) -> ! {
    fatal_parts(&[op, "(): ", problem], addr)
}

fn fatal_parts(parts: &[&str], addr: usize) -> ! {
    let mut buf = [0u8; 192];
    let mut w = crate::fmt::Buf::new(&mut buf);
    w.str("oxmalloc: ");
    for part in parts {
        w.str(part);
    }
    if addr != usize::MAX {
        w.str(" ");
        w.hex(addr);
    }
    w.str("\n");
    write_all(2, w.as_bytes());
    // SAFETY: abort never returns; it raises SIGABRT as glibc's malloc_printerr does.
    unsafe { libc::abort() }
}

/// Reads a small file (e.g. under /proc or /sys) into `buf` without allocating;
/// returns the number of bytes read, 0 if it cannot be read.
pub fn read_small_file(path: &core::ffi::CStr, buf: &mut [u8]) -> usize {
    // SAFETY: open/read/close on a NUL-terminated path into a buffer we own.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let mut len = 0;
        while len < buf.len() {
            let n = libc::read(fd, buf.as_mut_ptr().add(len).cast(), buf.len() - len);
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        libc::close(fd);
        len
    }
}

/// The number of CPUs this process may run on: its affinity mask, further bounded by
/// a cgroup v2 CPU quota (`cpu.max`) when one is set.
pub fn usable_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this process.
    let mut n = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        if libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            libc::CPU_COUNT(&set) as usize
        } else {
            0
        }
    };
    if n == 0 {
        // SAFETY: sysconf has no memory effects.
        n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    }
    let mut buf = [0u8; 64];
    let len = read_small_file(c"/sys/fs/cgroup/cpu.max", &mut buf);
    if let Some((quota, period)) = parse_cpu_max(buf.get(..len).unwrap_or(&[])) {
        let cpus = quota.div_ceil(period).max(1);
        n = n.min(cpus as usize);
    }
    n.max(1)
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000").
fn parse_cpu_max(s: &[u8]) -> Option<(u64, u64)> {
    let mut fields = s.split(|&c| c == b' ' || c == b'\n').filter(|f| !f.is_empty());
    let quota = crate::options::parse_number(fields.next()?)?;
    let period = crate::options::parse_number(fields.next()?)?;
    if period == 0 {
        return None;
    }
    Some((quota, period))
}
