//! A byte-string-driven random driver of oxmalloc's C API with a shadow model.
//!
//! Shared by the `cargo fuzz` target (`fuzz/fuzz_targets/ops.rs`, which includes this file
//! with `#[path]`) and the quick test in the normal suite (`tests/fuzz_driver.rs`). Any byte
//! string is a valid program: each operation takes one byte for the operation and the
//! thread that performs it, then as many argument bytes as it needs (missing bytes read as
//! 0), so libFuzzer's mutations always mean something. [`random_input`] makes programs
//! from a seed for the test suite.
//!
//! What is called: `oxmalloc::exports::oxmalloc_*` (malloc, calloc, realloc, reallocarray,
//! posix_memalign, aligned_alloc, memalign, valloc, pvalloc, free, free_sized,
//! free_aligned_sized, malloc_usable_size, malloc_trim, mallinfo2) -- the rlib's own entry
//! points, which exist beside the process's C malloc (glibc, or the sanitizer's). The
//! driver's own bookkeeping (the shadow, the channels) uses Rust's default allocator, so it
//! never shares a heap with the allocator under test.
//!
//! Threads: an operation runs on the calling thread (0) or on one of [`WORKERS`] worker
//! threads (1..=3), synchronously: the caller sends the call over a channel and waits for
//! the answer, so a program always runs the same calls on the same threads in the same
//! order. Blocks therefore move between threads freely (allocated on one, reallocated on a
//! second, freed on a third), and a worker can be told to exit, leaving its live blocks
//! to be freed by the others after its heap was given back.
//!
//! The shadow checks, and panics with a description on the first violation:
//! - every returned block is non-null (for possible requests), aligned as asked (16 bytes
//!   for malloc of 16 or more), `malloc_usable_size >= size`, and the usable size of a
//!   block does not change while it lives;
//! - no two live blocks overlap (each occupies `[p, p + max(usable, 1))`);
//! - every byte of a block's usable range keeps the pattern written into it: checked for
//!   the block before it is freed, reallocated or its usable size asked, and for all live
//!   blocks every [`VERIFY_EVERY`] operations, after `malloc_trim` and after a worker exits,
//!   and at the end; `realloc` keeps the first `min(old, new)` requested bytes; `calloc`
//!   zeroes the requested bytes;
//! - impossible requests fail the glibc way: NULL with `ENOMEM` (huge sizes, overflowing
//!   `calloc`/`reallocarray`, leaving the block of a failed `realloc` intact), `EINVAL` for
//!   bad alignments, and `posix_memalign` leaves its out-pointer alone on failure;
//! - `realloc(p, 0)` frees `p` and returns NULL.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::mpsc;
use std::thread;

use oxmalloc::exports as ox;

/// Worker threads besides the calling one.
pub const WORKERS: usize = 3;
/// At most this many live blocks; an allocation beyond it frees a block instead.
pub const MAX_LIVE: usize = 1024;
/// At most this many requested bytes live; an allocation beyond it frees a block instead.
pub const MAX_LIVE_BYTES: usize = 32 << 20;
/// All live blocks are verified every this many operations.
pub const VERIFY_EVERY: u64 = 256;

const PAGE: usize = 4096;

// mallopt parameters (malloc.h).
const M_TRIM_THRESHOLD: i32 = -1;
const M_TOP_PAD: i32 = -2;
const M_MMAP_THRESHOLD: i32 = -3;
const M_MMAP_MAX: i32 = -4;
const M_PERTURB: i32 = -6;

/// The options every run starts from (glibc's defaults, with the mmap threshold fixed so
/// that a run does not depend on the large blocks earlier runs in the process freed).
const DEFAULT_OPTIONS: [(i32, i32); 5] = [
    (M_MMAP_THRESHOLD, 128 << 10),
    (M_MMAP_MAX, 65536),
    (M_TRIM_THRESHOLD, 128 << 10),
    (M_TOP_PAD, 128 << 10),
    (M_PERTURB, 0),
];

/// What the mallopt operation may set: each parameter with a few values.
const OPTION_CHOICES: [(i32, [i32; 4]); 5] = [
    (M_MMAP_THRESHOLD, [64 << 10, 128 << 10, 512 << 10, 4 << 20]),
    (M_MMAP_MAX, [0, 2, 16, 65536]),
    (M_TRIM_THRESHOLD, [0, 4096, 128 << 10, 16 << 20]),
    (M_TOP_PAD, [0, 4096, 128 << 10, 1 << 20]),
    (M_PERTURB, [0, 0xA5, 0x01, 0]),
];

/// Sizes worth hitting exactly (class edges, page edges, the default mmap threshold and
/// the largest dynamic one); a program picks one and adds -2..=+1.
const INTERESTING: [usize; 40] = [
    0, 1, 8, 16, 24, 32, 48, 64, 80, 112, 128, 160, 256, 320, 512, 640, 1024, 1280, 2048,
    2560, 4096, 5120, 8192, 10240, 16384, 20480, 32768, 40960, 65536, 81920, 114688,
    131072, 135168, 262144, 524288, 1 << 20, (1 << 20) + PAGE, 2 << 20, 4 << 20, 8 << 20,
];

/// Sizes that cannot be satisfied on x86-64 (beyond the user address space).
const IMPOSSIBLE: [usize; 5] = [usize::MAX, usize::MAX - 4095, isize::MAX as usize, 1 << 62, 1 << 47];

// ---------------------------------------------------------------------------------
// Calls, executed on some thread
// ---------------------------------------------------------------------------------

/// One call into oxmalloc, with pointers as integers so that it can cross threads.
#[derive(Clone, Copy, Debug)]
enum Call {
    Malloc(usize),
    Calloc(usize, usize),
    Realloc(usize, usize),
    ReallocArray(usize, usize, usize),
    /// (alignment, size, initial value of the out-pointer)
    PosixMemalign(usize, usize, usize),
    AlignedAlloc(usize, usize),
    Memalign(usize, usize),
    Valloc(usize),
    Pvalloc(usize),
    Free(usize),
    FreeSized(usize, usize),
    FreeAlignedSized(usize, usize, usize),
    Usable(usize),
    Trim,
    MallInfo,
    Mallopt(i32, i32),
}

/// What a call returned: a pointer or size, errno after it (when it returned NULL or an
/// error), and posix_memalign's return code.
#[derive(Clone, Copy, Debug, Default)]
struct Ret {
    val: usize,
    errno: i32,
    rc: i32,
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(e: i32) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e }
}

impl Call {
    /// Performs the call on the current thread.
    fn exec(self) -> Ret {
        set_errno(0);
        let mut rc = 0;
        // SAFETY: the driver passes only NULL or blocks it got from oxmalloc and has not
        // freed (the shadow tracks exactly those), with the sizes/alignments they were
        // made with for the sized frees; the posix_memalign out-pointer is a local.
        let val = unsafe {
            match self {
                Call::Malloc(n) => ox::oxmalloc_malloc(n) as usize,
                Call::Calloc(k, n) => ox::oxmalloc_calloc(k, n) as usize,
                Call::Realloc(p, n) => ox::oxmalloc_realloc(p as *mut c_void, n) as usize,
                Call::ReallocArray(p, k, n) => ox::oxmalloc_reallocarray(p as *mut c_void, k, n) as usize,
                Call::PosixMemalign(a, n, init) => {
                    let mut out = init as *mut c_void;
                    rc = ox::oxmalloc_posix_memalign(&mut out, a, n);
                    out as usize
                }
                Call::AlignedAlloc(a, n) => ox::oxmalloc_aligned_alloc(a, n) as usize,
                Call::Memalign(a, n) => ox::oxmalloc_memalign(a, n) as usize,
                Call::Valloc(n) => ox::oxmalloc_valloc(n) as usize,
                Call::Pvalloc(n) => ox::oxmalloc_pvalloc(n) as usize,
                Call::Free(p) => {
                    ox::oxmalloc_free(p as *mut c_void);
                    0
                }
                Call::FreeSized(p, n) => {
                    ox::oxmalloc_free_sized(p as *mut c_void, n);
                    0
                }
                Call::FreeAlignedSized(p, a, n) => {
                    ox::oxmalloc_free_aligned_sized(p as *mut c_void, a, n);
                    0
                }
                Call::Usable(p) => ox::oxmalloc_malloc_usable_size(p as *mut c_void),
                Call::Trim => ox::oxmalloc_malloc_trim(0) as usize,
                Call::MallInfo => ox::oxmalloc_mallinfo2().uordblks,
                Call::Mallopt(param, value) => ox::oxmalloc_mallopt(param, value) as usize,
            }
        };
        Ret { val, errno: errno(), rc }
    }
}

/// A thread that performs calls it is sent, one at a time, and answers each.
struct Worker {
    calls: mpsc::Sender<Call>,
    answers: mpsc::Receiver<Ret>,
    handle: thread::JoinHandle<()>,
}

impl Worker {
    fn spawn(index: usize) -> Worker {
        let (calls, call_rx) = mpsc::channel::<Call>();
        let (answer_tx, answers) = mpsc::channel::<Ret>();
        let handle = thread::Builder::new()
            .name(format!("oxmalloc-driver-{index}"))
            .spawn(move || {
                while let Ok(call) = call_rx.recv() {
                    if answer_tx.send(call.exec()).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a driver worker thread");
        Worker { calls, answers, handle }
    }

    fn call(&self, call: Call) -> Ret {
        self.calls.send(call).expect("driver worker thread is gone");
        self.answers.recv().expect("driver worker thread died")
    }

    /// Ends the thread (its oxmalloc heap is given back by the thread-exit destructor)
    /// and waits for it.
    fn exit(self) {
        drop(self.calls);
        self.handle.join().expect("driver worker thread panicked");
    }
}

// ---------------------------------------------------------------------------------
// The pattern every block holds
// ---------------------------------------------------------------------------------

/// Period of the pattern. Block `id` holds `TABLE[(phase(id) + offset) % PERIOD]` at each
/// offset: a pseudo-random byte string, which starts at one of `PERIOD` places depending on
/// the block, so that a block's bytes differ from its neighbours' and from themselves
/// shifted. Fill and check are `memcpy`/`memcmp` against the table (fast even in the
/// fuzzer, whose instrumentation makes a byte loop very slow).
const PERIOD: usize = 1 << 16;

/// The pattern, twice over (so that any `PERIOD` bytes from any phase are contiguous).
fn table() -> &'static [u8] {
    static TABLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut s = 0x0123_4567_89AB_CDEFu64;
        let mut t: Vec<u8> = (0..PERIOD)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                (z ^ (z >> 31)) as u8
            })
            .collect();
        t.extend_from_within(..);
        t
    })
}

fn phase(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as usize % PERIOD
}

fn pattern_byte(id: u64, off: usize) -> u8 {
    table()[(phase(id) + off) % PERIOD]
}

/// The pattern of block `id` for `[from, to)` as pieces: (offset in the block, pattern bytes).
fn pattern_pieces(id: u64, from: usize, to: usize) -> impl Iterator<Item = (usize, &'static [u8])> {
    let t = table();
    let ph = phase(id);
    let mut o = from;
    std::iter::from_fn(move || {
        (o < to).then(|| {
            let len = (to - o).min(PERIOD);
            let start = (ph + o) % PERIOD;
            let piece = (o, &t[start..start + len]);
            o += len;
            piece
        })
    })
}

/// Writes the pattern of block `id` into `[from, to)` of the block at `p`.
///
/// # Safety
/// `p..p + to` must be writable memory of the block.
unsafe fn fill(p: usize, id: u64, from: usize, to: usize) {
    for (o, src) in pattern_pieces(id, from, to) {
        // SAFETY: [p + o, p + o + src.len()) is inside [p + from, p + to) (caller's
        // contract); the table is not the block.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), (p + o) as *mut u8, src.len()) };
    }
}

/// The first offset in `[from, to)` of the block at `p` that does not hold the pattern.
///
/// # Safety
/// `p..p + to` must be readable memory of the block.
unsafe fn check(p: usize, id: u64, from: usize, to: usize) -> Option<usize> {
    for (o, want) in pattern_pieces(id, from, to) {
        // SAFETY: inside [p + from, p + to) (caller's contract).
        let got = unsafe { std::slice::from_raw_parts((p + o) as *const u8, want.len()) };
        if got != want {
            return Some(o + got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0));
        }
    }
    None
}

/// The first of the `n` bytes at `p` that is not zero.
///
/// # Safety
/// `p..p + n` must be readable.
unsafe fn first_nonzero(p: usize, n: usize) -> Option<usize> {
    static ZEROS: [u8; PERIOD] = [0; PERIOD];
    let mut o = 0;
    while o < n {
        let len = (n - o).min(PERIOD);
        // SAFETY: [p + o, p + o + len) is inside [p, p + n).
        let got = unsafe { std::slice::from_raw_parts((p + o) as *const u8, len) };
        if got != &ZEROS[..len] {
            return Some(o + got.iter().position(|&b| b != 0).unwrap_or(0));
        }
        o += len;
    }
    None
}

// ---------------------------------------------------------------------------------
// The shadow
// ---------------------------------------------------------------------------------

/// A live block as the shadow knows it.
#[derive(Clone, Copy, Debug)]
struct Blk {
    p: usize,
    /// Requested size.
    n: usize,
    /// malloc_usable_size when it was made (must not change while it lives).
    usable: usize,
    /// Alignment the call that made it guarantees.
    align: usize,
    /// Pattern seed, unique per block.
    id: u64,
    /// Which sized free C23 allows for it.
    sized: SizedFree,
    /// Thread that made it (0 = the calling thread).
    thread: usize,
}

/// The sized free a block may be given (C23): `free_sized(p, size)` for blocks from
/// malloc, calloc and realloc; `free_aligned_sized(p, align, size)` for blocks from
/// aligned_alloc; neither for the other aligned allocations.
#[derive(Clone, Copy, Debug, PartialEq)]
enum SizedFree {
    Plain,
    AlignedAlloc(usize),
    No,
}

/// Counts of what a run did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ops: u64,
    pub allocs: u64,
    pub reallocs: u64,
    pub frees: u64,
    /// Calls performed by a worker thread.
    pub on_workers: u64,
    /// Frees and reallocs of a block made by another thread.
    pub cross_thread: u64,
    pub worker_exits: u64,
    pub failed_requests: u64,
    pub trims: u64,
    pub mallopts: u64,
    pub full_verifications: u64,
    pub peak_live: usize,
    pub peak_live_bytes: usize,
}

/// Reads a program's bytes; past the end every byte is 0.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> usize {
        usize::from(self.byte()) | usize::from(self.byte()) << 8
    }
    /// A request size: mostly small, sometimes up to 256 KiB, rarely up to 4 MiB or an
    /// interesting edge.
    fn size(&mut self) -> usize {
        match self.byte() {
            0..=99 => usize::from(self.byte()),
            100..=159 => self.u16() % 1100,
            160..=209 => self.u16(),
            210..=229 => {
                let b = self.byte();
                (INTERESTING[usize::from(b) % INTERESTING.len()] + usize::from(b >> 6)).saturating_sub(2)
            }
            230..=247 => self.u16() * 4 + usize::from(self.byte() % 4),
            _ => (self.u16() % 4096) * 1024 + usize::from(self.byte()),
        }
    }
    /// An alignment, 1 to 2 MiB (powers of two).
    fn align(&mut self) -> usize {
        let b = self.byte();
        // Mostly the small alignments; 1/8 of the time 4 KiB .. 2 MiB.
        if b & 7 == 0 {
            1 << (12 + (b >> 3) % 10)
        } else {
            1 << ((b >> 3) % 12)
        }
    }
}

/// The driver: a shadow of every live block plus the worker threads.
pub struct Driver {
    live: Vec<Blk>,
    /// start -> end (`start + max(usable, 1)`) of each live block.
    ranges: BTreeMap<usize, usize>,
    live_bytes: usize,
    workers: Vec<Option<Worker>>,
    next_id: u64,
    pub stats: Stats,
    /// A description of the operation being performed, for failure messages.
    what: String,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Driver {
        Driver {
            live: Vec::new(),
            ranges: BTreeMap::new(),
            live_bytes: 0,
            workers: (0..WORKERS).map(|_| None).collect(),
            next_id: 1,
            stats: Stats::default(),
            what: String::new(),
        }
    }

    /// Runs a program, then verifies and frees every block and ends the workers.
    ///
    /// The allocator's options are first reset to [`DEFAULT_OPTIONS`] (a program may
    /// change them with its mallopt operation), so that a program means the same in a
    /// fresh process as after others.
    pub fn run(data: &[u8]) -> Stats {
        let mut d = Driver::new();
        for (param, value) in DEFAULT_OPTIONS {
            if d.call(0, Call::Mallopt(param, value)).val != 1 {
                d.fail(format_args!("mallopt({param}, {value}) did not return 1"));
            }
        }
        d.exec(data);
        d.finish();
        d.stats
    }

    #[track_caller]
    fn fail(&self, msg: std::fmt::Arguments) -> ! {
        panic!(
            "oxmalloc driver: {msg}\n  during op {} ({}); {} live blocks, {} live bytes",
            self.stats.ops,
            self.what,
            self.live.len(),
            self.live_bytes
        );
    }

    /// Performs `call` on thread `t` (0 = this one, else worker `t - 1`, started if needed).
    fn call(&mut self, t: usize, call: Call) -> Ret {
        if t == 0 {
            return call.exec();
        }
        self.stats.on_workers += 1;
        self.workers[t - 1].get_or_insert_with(|| Worker::spawn(t)).call(call)
    }

    fn exit_worker(&mut self, t: usize) {
        if let Some(w) = self.workers[t - 1].take() {
            w.exit();
            self.stats.worker_exits += 1;
        }
    }

    /// Checks every byte of `b`'s usable range.
    fn verify(&self, b: &Blk, when: &str) {
        // SAFETY: `b` is live: its usable range is the caller's memory.
        if let Some(off) = unsafe { check(b.p, b.id, 0, b.usable) } {
            // SAFETY: off < b.usable, inside the block.
            let got = unsafe { *((b.p + off) as *const u8) };
            self.fail(format_args!(
                "{when}: block {:#x} (size {}, usable {}, align {}, made on thread {}) corrupted at \
                 offset {off}: byte {got:#04x}, expected {:#04x}",
                b.p,
                b.n,
                b.usable,
                b.align,
                b.thread,
                pattern_byte(b.id, off)
            ));
        }
    }

    fn verify_all(&mut self, when: &str) {
        self.stats.full_verifications += 1;
        for b in &self.live {
            self.verify(b, when);
        }
    }

    /// Checks and records a block just returned by `how`, and fills it with its pattern.
    #[allow(clippy::too_many_arguments)]
    fn adopt(&mut self, t: usize, p: usize, n: usize, align: usize, how: &str, zeroed: bool, sized: SizedFree) {
        if p == 0 {
            self.fail(format_args!("{how}(size {n}, align {align}) on thread {t} returned NULL"));
        }
        if p % align != 0 {
            self.fail(format_args!("{how}(size {n}) returned {p:#x}, not {align}-aligned"));
        }
        let usable = self.call(t, Call::Usable(p)).val;
        if usable < n {
            self.fail(format_args!("{how}(size {n}) = {p:#x}: malloc_usable_size {usable} < size"));
        }
        if zeroed {
            // SAFETY: the block has at least n usable bytes.
            if let Some(i) = unsafe { first_nonzero(p, n) } {
                self.fail(format_args!("calloc of {n} bytes = {p:#x}: byte {i} is not 0"));
            }
        }
        self.insert_range(p, usable, how);
        let id = self.next_id;
        self.next_id += 1;
        // SAFETY: [p, p + usable) is the new block's memory, which malloc_usable_size
        // says the caller may use.
        unsafe { fill(p, id, 0, usable) };
        self.live.push(Blk { p, n, usable, align, id, sized, thread: t });
        self.live_bytes += n;
        self.stats.allocs += 1;
        self.stats.peak_live = self.stats.peak_live.max(self.live.len());
        self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.live_bytes);
    }

    fn insert_range(&mut self, p: usize, usable: usize, how: &str) {
        let end = p + usable.max(1);
        if let Some((&s, &e)) = self.ranges.range(..=p).next_back() {
            if e > p {
                self.fail(format_args!("{how} returned {p:#x} (usable {usable}), inside live block [{s:#x}, {e:#x})"));
            }
        }
        if let Some((&s, &e)) = self.ranges.range(p..).next() {
            if s < end {
                self.fail(format_args!(
                    "{how} returned {p:#x} (usable {usable}), overlapping live block [{s:#x}, {e:#x})"
                ));
            }
        }
        self.ranges.insert(p, end);
    }

    /// Takes block `i` out of the shadow (after checking it).
    fn remove(&mut self, i: usize) -> Blk {
        let b = self.live.swap_remove(i);
        self.ranges.remove(&b.p);
        self.live_bytes -= b.n;
        b
    }

    fn pick(&self, input: &mut Input) -> Option<usize> {
        let k = input.u16();
        (!self.live.is_empty()).then(|| k % self.live.len())
    }

    fn room_for(&self, n: usize) -> bool {
        self.live.len() < MAX_LIVE && self.live_bytes.saturating_add(n) <= MAX_LIVE_BYTES
    }

    /// Frees block `i` on thread `t`, with free / free_sized / free_aligned_sized.
    fn free(&mut self, t: usize, i: usize, how: u8) {
        self.verify(&self.live[i], "before free");
        let b = self.remove(i);
        if b.thread != t {
            self.stats.cross_thread += 1;
        }
        let call = match (how % 3, b.sized) {
            (1, SizedFree::Plain) => Call::FreeSized(b.p, b.n),
            (2, SizedFree::AlignedAlloc(a)) => Call::FreeAlignedSized(b.p, a, b.n),
            _ => Call::Free(b.p),
        };
        self.what = format!("{call:?} on thread {t}");
        self.call(t, call);
        self.stats.frees += 1;
    }

    /// Makes room if there is none for `n` more bytes; false when there is no room.
    fn make_room(&mut self, t: usize, n: usize) -> bool {
        if self.room_for(n) {
            return true;
        }
        if let Some(i) = (!self.live.is_empty()).then(|| (n ^ self.live.len()) % self.live.len()) {
            self.free(t, i, 0);
        }
        false
    }

    fn alloc(&mut self, t: usize, kind: u8, input: &mut Input) {
        let n = input.size();
        let a = input.align();
        let extra = input.byte();
        if !self.make_room(t, n) {
            return;
        }
        match kind {
            0 => {
                self.what = format!("malloc({n}) on thread {t}");
                let p = self.call(t, Call::Malloc(n)).val;
                self.adopt(t, p, n, if n >= 16 { 16 } else { 1 }, "malloc", false, SizedFree::Plain);
            }
            1 => {
                // calloc(k, n / k) for k in 1..=16 (k = 0 when extra says so: calloc(0, n)).
                let k = usize::from(extra % 17);
                let each = n.checked_div(k).unwrap_or(n);
                let total = k * each;
                self.what = format!("calloc({k}, {each}) on thread {t}");
                let p = self.call(t, Call::Calloc(k, each)).val;
                self.adopt(t, p, total, if total >= 16 { 16 } else { 1 }, "calloc", true, SizedFree::Plain);
            }
            2 => {
                let a = a.max(8);
                let sentinel = 0xDEAD_0000 + usize::from(extra);
                self.what = format!("posix_memalign({a}, {n}) on thread {t}");
                let r = self.call(t, Call::PosixMemalign(a, n, sentinel));
                if r.rc != 0 {
                    self.fail(format_args!("posix_memalign(align {a}, size {n}) returned {}", r.rc));
                }
                self.adopt(t, r.val, n, a, "posix_memalign", false, SizedFree::No);
            }
            3 => {
                self.what = format!("aligned_alloc({a}, {n}) on thread {t}");
                let p = self.call(t, Call::AlignedAlloc(a, n)).val;
                self.adopt(t, p, n, a.max(if n >= 16 { 16 } else { 1 }), "aligned_alloc", false, SizedFree::AlignedAlloc(a));
            }
            4 => {
                // memalign rounds an alignment that is not a power of two up to one.
                let asked = if extra & 1 == 1 && a > 2 { a - 1 - usize::from(extra >> 1) % (a / 2) } else { a };
                self.what = format!("memalign({asked}, {n}) on thread {t}");
                let p = self.call(t, Call::Memalign(asked, n)).val;
                self.adopt(t, p, n, asked.next_power_of_two(), "memalign", false, SizedFree::No);
            }
            _ => {
                if extra & 1 == 0 {
                    self.what = format!("valloc({n}) on thread {t}");
                    let p = self.call(t, Call::Valloc(n)).val;
                    self.adopt(t, p, n, PAGE, "valloc", false, SizedFree::No);
                } else {
                    self.what = format!("pvalloc({n}) on thread {t}");
                    let p = self.call(t, Call::Pvalloc(n)).val;
                    let rounded = n.div_ceil(PAGE).max(1) * PAGE;
                    self.adopt(t, p, rounded, PAGE, "pvalloc", false, SizedFree::No);
                }
            }
        }
    }

    /// realloc (or reallocarray) of block `i` (or of NULL when there is none) to a size
    /// picked by the program: absolute, or relative to the current size.
    fn realloc(&mut self, t: usize, input: &mut Input) {
        let i = self.pick(input);
        let mode = input.byte();
        let abs = input.size();
        let Some(i) = i else {
            if self.room_for(abs) {
                self.what = format!("realloc(NULL, {abs}) on thread {t}");
                let p = self.call(t, Call::Realloc(0, abs)).val;
                self.adopt(t, p, abs, if abs >= 16 { 16 } else { 1 }, "realloc(NULL)", false, SizedFree::Plain);
            }
            return;
        };
        let old = self.live[i];
        let n = match mode % 4 {
            0 | 1 => abs,
            2 => old.n.saturating_sub(usize::from(input.byte()) * old.n / 256), // shrink
            _ => old.n + 1 + usize::from(input.byte()) * (old.n + 64) / 256,    // grow up to ~2x
        };
        if n > old.n && self.live_bytes + (n - old.n) > MAX_LIVE_BYTES {
            self.make_room(t, n);
            return;
        }
        self.verify(&old, "before realloc");
        if old.thread != t {
            self.stats.cross_thread += 1;
        }
        let array = mode & 4 != 0 && n > 0;
        let call = if array {
            // reallocarray(p, k, n / k) with k dividing n.
            let k = [1, 2, 4, 8, 16][usize::from(mode >> 3) % 5];
            let k = if n % k == 0 { k } else { 1 };
            Call::ReallocArray(old.p, k, n / k)
        } else {
            Call::Realloc(old.p, n)
        };
        self.what = format!("{call:?} of a block of {} (usable {}) on thread {t}", old.n, old.usable);
        let q = self.call(t, call).val;
        self.stats.reallocs += 1;
        self.remove(i);
        if n == 0 {
            if q != 0 {
                self.fail(format_args!("realloc({:#x}, 0) returned {q:#x}, not NULL (it must free)", old.p));
            }
            self.stats.frees += 1;
            return;
        }
        if q == 0 {
            self.fail(format_args!("realloc({:#x}, {} -> {n}) returned NULL", old.p, old.n));
        }
        let keep = old.n.min(n);
        // SAFETY: q is a live block of at least n >= keep bytes (checked below before any
        // write; reading keep bytes of a block of n is in bounds).
        if let Some(off) = unsafe { check(q, old.id, 0, keep) } {
            self.fail(format_args!(
                "realloc({:#x} -> {q:#x}, {} -> {n}) lost the contents at offset {off}",
                old.p, old.n
            ));
        }
        let align = if n >= 16 { 16 } else { 1 };
        if q % align != 0 {
            self.fail(format_args!("realloc to {n} returned {q:#x}, not {align}-aligned"));
        }
        let usable = self.call(t, Call::Usable(q)).val;
        if usable < n {
            self.fail(format_args!("realloc to {n} = {q:#x}: malloc_usable_size {usable} < size"));
        }
        self.insert_range(q, usable, "realloc");
        // SAFETY: [q, q + usable) is the block's usable memory.
        unsafe { fill(q, old.id, keep, usable) };
        self.live.push(Blk { p: q, n, usable, align, id: old.id, sized: SizedFree::Plain, thread: t });
        self.live_bytes += n;
        self.stats.peak_live_bytes = self.stats.peak_live_bytes.max(self.live_bytes);
        self.stats.peak_live = self.stats.peak_live.max(self.live.len());
    }

    /// malloc_usable_size of block `i` on thread `t`: unchanged since it was made.
    fn usable(&mut self, t: usize, i: usize) {
        let b = self.live[i];
        self.verify(&b, "before malloc_usable_size");
        self.what = format!("malloc_usable_size({:#x}) on thread {t}", b.p);
        let u = self.call(t, Call::Usable(b.p)).val;
        if u != b.usable {
            self.fail(format_args!(
                "malloc_usable_size({:#x}) = {u}, was {} when the block (size {}) was made",
                b.p, b.usable, b.n
            ));
        }
    }

    /// Requests that must fail, the glibc way.
    fn impossible(&mut self, t: usize, input: &mut Input) {
        let sel = input.byte();
        let huge = IMPOSSIBLE[usize::from(sel >> 3) % IMPOSSIBLE.len()];
        let small = usize::from(input.byte()) + 2;
        let i = self.pick(input);
        let expect_null = |d: &Self, r: Ret, what: &str, want: i32| {
            if r.val != 0 || r.errno != want {
                d.fail(format_args!("{what} returned {:#x} with errno {}, expected NULL with errno {want}", r.val, r.errno));
            }
        };
        self.stats.failed_requests += 1;
        match sel % 8 {
            0 => {
                self.what = format!("malloc({huge:#x})");
                let r = self.call(t, Call::Malloc(huge));
                expect_null(self, r, &self.what.clone(), libc::ENOMEM);
            }
            1 => {
                let k = usize::MAX / small + 1;
                self.what = format!("calloc({k:#x}, {small})");
                let r = self.call(t, Call::Calloc(k, small));
                expect_null(self, r, &self.what.clone(), libc::ENOMEM);
            }
            2 => {
                // Not a power of two, or below sizeof(void *).
                let a = if small % 2 == 0 { [1, 2, 4][small % 3] } else { 8 * small + 8 };
                let a = if a.is_power_of_two() && a >= 8 { 24 } else { a };
                self.what = format!("posix_memalign({a}, 16)");
                let r = self.call(t, Call::PosixMemalign(a, 16, 0xBAD0));
                if r.rc != libc::EINVAL || r.val != 0xBAD0 {
                    self.fail(format_args!(
                        "posix_memalign(align {a}) returned {} and set the pointer to {:#x}: expected EINVAL, \
                         pointer untouched",
                        r.rc, r.val
                    ));
                }
            }
            3 => {
                let a = small * 2 + 1 + usize::from(small > 100) * 2;
                let a = if a.is_power_of_two() { 3 } else { a };
                self.what = format!("aligned_alloc({a}, 16)");
                let r = self.call(t, Call::AlignedAlloc(a, 16));
                expect_null(self, r, &self.what.clone(), libc::EINVAL);
            }
            4 | 5 => {
                let Some(i) = i else { return };
                let b = self.live[i];
                self.verify(&b, "before an impossible realloc");
                let call = if sel % 8 == 4 {
                    Call::Realloc(b.p, huge)
                } else {
                    Call::ReallocArray(b.p, usize::MAX / small + 1, small)
                };
                self.what = format!("{call:?} of a block of {}", b.n);
                let r = self.call(t, call);
                expect_null(self, r, &self.what.clone(), libc::ENOMEM);
                self.verify(&b, "after a failed realloc (the block must be left as it was)");
                self.usable(t, i);
            }
            6 => {
                let a = usize::MAX / 2 + 1 + small;
                self.what = format!("memalign({a:#x}, 16)");
                let r = self.call(t, Call::Memalign(a, 16));
                expect_null(self, r, &self.what.clone(), libc::EINVAL);
            }
            _ => {
                self.what = format!("pvalloc({huge:#x})");
                let r = self.call(t, Call::Pvalloc(huge));
                expect_null(self, r, &self.what.clone(), libc::ENOMEM);
            }
        }
    }

    /// Interprets a program (see the module documentation).
    ///
    /// Operation byte: low 4 bits the operation, bits 4-5 the thread (0 = this one, 1..=3
    /// a worker); bits 6-7 are free for the operation:
    ///
    /// | op | what | arguments |
    /// |----|------|-----------|
    /// | 0, 1 | malloc | size, alignment (unused), extra |
    /// | 2 | calloc(k, size / k) | size, alignment (unused), k |
    /// | 3 | posix_memalign (bit 6 clear) or aligned_alloc | size, alignment, extra |
    /// | 4 | memalign (bit 6 clear; extra bit 0: alignment not a power of two) or valloc/pvalloc | size, alignment, extra |
    /// | 5, 6 | realloc / reallocarray of a block (or of NULL) | block, mode, size, amount |
    /// | 7, 8, 9 | free / free_sized / free_aligned_sized of a block | block, how |
    /// | 10 | a burst of 1..=32 frees (bit 6), else malloc | count, block |
    /// | 11 | malloc_usable_size of a block | block |
    /// | 12 | a request that must fail | which, small, block |
    /// | 13 | worker exit (thread > 0, bit 6), mallopt (thread 0, bit 7), else mallinfo2 | (mallopt: parameter and value) |
    /// | 14 | malloc_trim(0) and full verification (bit 6), else malloc | |
    /// | 15 | full verification (bit 6), else malloc | |
    pub fn exec(&mut self, data: &[u8]) {
        let mut input = Input { data, pos: 0 };
        while input.pos < data.len() {
            let op = input.byte();
            let t = usize::from(op >> 4 & 3);
            self.stats.ops += 1;
            match op & 15 {
                0 | 1 => self.alloc(t, 0, &mut input), // malloc
                2 => self.alloc(t, 1, &mut input),     // calloc
                3 => self.alloc(t, 2 + (op >> 6) % 2, &mut input), // posix_memalign or aligned_alloc (bit 6)
                4 => self.alloc(t, 4 + (op >> 6) % 2, &mut input), // memalign or valloc/pvalloc
                5 | 6 => self.realloc(t, &mut input),
                7..=9 => {
                    if let Some(i) = self.pick(&mut input) {
                        let how = input.byte();
                        self.free(t, i, how);
                    }
                }
                10 if op & 64 != 0 => {
                    // A burst of frees of consecutive blocks (spans run empty).
                    let k = usize::from(input.byte() % 32) + 1;
                    if let Some(i) = self.pick(&mut input) {
                        for _ in 0..k.min(self.live.len()) {
                            let i = i % self.live.len();
                            self.free(t, i, 0);
                        }
                    }
                }
                11 => {
                    if let Some(i) = self.pick(&mut input) {
                        self.usable(t, i);
                    }
                }
                12 => self.impossible(t, &mut input),
                13 => {
                    // A worker exits (when t > 0); its blocks stay live in the shadow.
                    if t > 0 && op & 64 != 0 {
                        self.what = format!("exit of worker {t}");
                        self.exit_worker(t);
                        self.verify_all("after a worker thread exited");
                    } else if t > 0 || op & 128 == 0 {
                        self.what = "mallinfo2".into();
                        self.call(t, Call::MallInfo);
                    } else {
                        let b = input.byte();
                        let (param, values) = OPTION_CHOICES[usize::from(b) % OPTION_CHOICES.len()];
                        let value = values[usize::from(b >> 6)];
                        self.what = format!("mallopt({param}, {value})");
                        if self.call(t, Call::Mallopt(param, value)).val != 1 {
                            self.fail(format_args!("mallopt({param}, {value}) did not return 1"));
                        }
                        self.stats.mallopts += 1;
                    }
                }
                // Whole-heap operations (bit 6; they cost a verification of every block);
                // otherwise one more malloc.
                14 if op & 64 != 0 => {
                    self.what = format!("malloc_trim(0) on thread {t}");
                    self.call(t, Call::Trim);
                    self.stats.trims += 1;
                    self.verify_all("after malloc_trim");
                }
                15 if op & 64 != 0 => {
                    self.what = "full verification".into();
                    self.verify_all("full verification");
                }
                _ => self.alloc(t, 0, &mut input),
            }
            if self.stats.ops % VERIFY_EVERY == 0 {
                self.what = "periodic verification".into();
                self.verify_all("periodic verification");
            }
        }
    }

    /// Test hook (a check of the checker): flips one byte of the usable range of a live
    /// block, which the next verification must report. Returns false without live blocks.
    pub fn scribble(&mut self, which: usize, offset: usize) -> bool {
        let Some(b) = (!self.live.is_empty()).then(|| self.live[which % self.live.len()]) else {
            return false;
        };
        if b.usable == 0 {
            return false;
        }
        // SAFETY: the offset is inside the block's usable range, which the driver owns.
        unsafe { *((b.p + offset % b.usable) as *mut u8) ^= 0x40 };
        true
    }

    /// Verifies every live block, frees them all (spread over the threads), and ends the
    /// workers.
    pub fn finish(&mut self) {
        self.what = "final verification".into();
        self.verify_all("final verification");
        let mut k = 0;
        while !self.live.is_empty() {
            let i = self.live.len() - 1;
            self.free(k % (WORKERS + 1), i, k as u8);
            k += 1;
        }
        for t in 1..=WORKERS {
            self.exit_worker(t);
        }
    }
}

/// A program of `len` bytes from `seed` (xorshift64*), for seeded runs.
pub fn random_input(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}
