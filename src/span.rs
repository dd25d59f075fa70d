//! Spans: runs of whole pages, and the metadata that describes each.
//!
//! A span is one of:
//! - `Small`: carved into blocks of one size class, owned by one thread heap (or
//!   orphaned into its arena after that thread exited);
//! - `Big`: one block of whole pages from the heap (a request above the largest class
//!   but below the mmap threshold);
//! - `Large`: one block mmapped on its own (large.rs);
//! - `FreeRun`: free pages in an arena, waiting to be reused or given back.
//!
//! Span records live out of line, in memory mapped for metadata only (`meta` below),
//! so an overflowing user block cannot reach them.
//!
//! # Invariants of a small span
//! - Blocks are `[start + i * block_size]` for `i < capacity`; blocks below `bump` have
//!   been handed out at least once, blocks from `bump` to `end` never were.
//! - Every block below `bump` is in exactly one of: handed out to the program; in a
//!   thread's cache (thread_cache.rs: any thread's); `free` (the owner's list, changed
//!   under its heap's lock); `thread_free` (pushed by other threads, not yet
//!   collected).
//! - `used` = blocks below `bump` not in `free`, i.e. out (to the program or a cache)
//!   plus in `thread_free` (+1 for the span its class allocates from, see
//!   ThreadHeap::refresh_current). While the span is "full" (on its heap's full list)
//!   the field holds `full_hold()` less the local frees since, instead of `capacity`
//!   less them, so that the owner's free that makes it 0 relinks the span (see
//!   thread_heap.rs). `used == 0` otherwise means the span holds no live block.
//! - `heap` is the owning thread's heap: a cache sends a block back onto `free` when
//!   it is the cache's own heap, else onto `thread_free`. It is null for spans no
//!   thread owns (orphans, empty spans an arena keeps, big, large, free runs). A heap,
//!   not the thread's pointer (`fs:0`): in a child after fork(), a new thread may get
//!   the stack, so the thread pointer, of a parent's thread the child does not have,
//!   whose heap still owns its spans there. A heap record is reused only after its
//!   thread gave all its spans up (`abandon`).
//! - `cache_off` is the offset of the span's class's cache in a ThreadHeap for a small
//!   span that a thread owns, and 0 otherwise (the free fast path's test). The page map's
//!   cache words of the span's pages carry a copy (in 8-byte words), which is what the
//!   fast path reads: they are rewritten whenever it changes on a mapped span
//!   (`pagemap::set_cache_off`).

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arena::Arena;
use crate::os::{self, PAGE_SIZE};
use crate::sync::Mutex;
use crate::thread_heap::ThreadHeap;

/// A free block of a small span: its first word is its free mark (`mark_of`), its
/// second links the next free block.
///
/// The mark is what makes misuse visible without a header in front of every block:
/// - every free block carries it, and every path that hands a block out clears it, so
///   a block that carries its mark at free time is already free: a double free (free
///   paths check it before anything else);
/// - the allocation paths check it on the block they pop before following its link,
///   so a free block whose first bytes were overwritten (an overflow out of the block
///   below it, a write after free) ends the process instead of handing out an address
///   read from user data. An overflow has to pass the mark to reach the link.
///
/// Both words lie in one 16-byte granule, so in one page (purge.rs relies on this).
#[repr(C)]
pub struct Block {
    pub mark: usize,
    pub next: *mut Block,
}

impl Block {
    /// Marks `b`, a block of a small span, free and links it before `next`.
    ///
    /// # Safety
    /// `b` is a block that the caller may write (it is being freed).
    #[inline(always)]
    pub unsafe fn put(b: *mut Block, next: *mut Block) {
        // SAFETY: per the contract.
        unsafe {
            (*b).mark = Block::mark_of(b);
            (*b).next = next;
        }
    }

    /// Is `b` marked free?
    ///
    /// # Safety
    /// `b` is readable (a block of a live span).
    #[inline(always)]
    pub unsafe fn is_marked(b: *const Block) -> bool {
        // SAFETY: per the contract.
        unsafe { (*b).mark == Block::mark_of(b) }
    }

    /// The free mark of the block at `b`: its address plus that of oxmalloc's page map
    /// (`pagemap::base`, which address-space randomisation moves from run to run). A
    /// program has no reason to store that sum of two addresses in a block's first
    /// word (with oxmalloc mapped near the top of the address space, as shared
    /// libraries are, it is not even a canonical address for a block in mapped memory
    /// or in a position-independent program's heap), and it is never 0, the
    /// mark of LIST_END and of a block handed out. The free fast path has the map's
    /// address in a register already (it computes it for its lookup): the mark costs
    /// it one `add`.
    ///
    /// Why a mark per block address: the memory of a free block keeps its mark after
    /// the block's span is given back, and a big block carved there later hands it to
    /// the program as its first bytes, which `realloc` copies into a small block. A
    /// mark the same for every block (tried: the map's address alone) then made
    /// that small block read as free: `malloc_usable_size` and `free` of it reported a
    /// double free in the threaded shadow test, 3 runs of 40. A value that is the mark
    /// of one address only is the mark of a block only where it was written. (Before,
    /// each span's blocks carried the span's eight-byte page-map entry, which the fast
    /// path read anyway; the byte per page it reads now, pagemap.rs, names no span.
    /// That mark had the same flaw within a span: a live block holding a copy of the
    /// first word of a free block of its span read as free, conformance.c's "free"
    /// section.)
    #[inline(always)]
    pub fn mark_of(b: *const Block) -> usize {
        (b as usize).wrapping_add(crate::pagemap::base())
    }
}

/// The end of every owner free list (`Span::free`), which `pop_blocks` tells by its
/// address. Its mark is 0, which no free block's is. Never written.
pub static LIST_END: ListEnd = ListEnd(core::cell::UnsafeCell::new(Block { mark: 0, next: ptr::null_mut() }));

#[repr(transparent)]
pub struct ListEnd(core::cell::UnsafeCell<Block>);
// SAFETY: LIST_END is never written (see its doc).
unsafe impl Sync for ListEnd {}

/// The terminator of owner free lists.
#[inline(always)]
pub const fn list_end() -> *mut Block {
    LIST_END.0.get()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// Also what NO_SPAN (all zero, pagemap.rs) reads as: a record without blocks.
    FreeRun = 0,
    Small = 1,
    Big = 2,
    Large = 3,
    /// Not a span: FREED_LARGE, the page-map entry of an unmapped large block.
    Freed = 4,
}

/// A span record in static memory (the sentinels below), shareable because nothing
/// ever writes it.
#[repr(transparent)]
pub struct StaticSpan(core::cell::UnsafeCell<Span>);

// SAFETY: static span records are never written (see each one's doc).
unsafe impl Sync for StaticSpan {}

impl StaticSpan {
    pub const fn new(kind: Kind) -> StaticSpan {
        let mut s = Span::empty();
        s.kind = kind;
        StaticSpan(core::cell::UnsafeCell::new(s))
    }

    #[inline(always)]
    pub const fn get(&self) -> *mut Span {
        self.0.get()
    }
}

/// What the page map keeps for the first page of a large block after it is unmapped,
/// so that freeing it again is reported as a double free rather than as a pointer
/// oxmalloc never returned (until another mapping there replaces the entry). No owner,
/// no blocks: the free fast path never touches it.
pub static FREED_LARGE: StaticSpan = StaticSpan::new(Kind::Freed);

/// States of the two low bits of `Span::thread_free` (blocks are 16-aligned, so the
/// bits are free). Other threads freeing into the span read them to decide where the
/// block goes:
/// - `TF_NORMAL`: push onto `thread_free`; the owner collects it when it refills from
///   the span, when it looks for a span of the class (full spans too), or at decay.
///   The list ends at `list_end()`, as the owner's free list does.
/// - `TF_ORPHAN`: no thread owns the span (its thread exited); free it under its
///   arena's lock.
pub const TF_NORMAL: usize = 0;
pub const TF_ORPHAN: usize = 3;
pub const TF_STATE: usize = 3;

/// The rest of the `thread_free` word: the list's head (a block address: 16-aligned,
/// below 2^47) in bits 4..47, and how many blocks the list holds in bits 48..63 (a
/// span has at most 128 pages of blocks of at least 16 bytes: 32768 blocks). With the
/// count the owner takes the list over without walking it; the blocks were last
/// written by other threads, so each step of such a walk is a cache miss.
pub const TF_HEAD: usize = ((1 << TF_COUNT_SHIFT) - 1) & !TF_STATE;
pub const TF_COUNT_SHIFT: u32 = 48;
pub const TF_ONE: usize = 1 << TF_COUNT_SHIFT;

#[repr(C)]
pub struct Span {
    // Hot fields of the fast paths first.
    /// The owner's free list, ending at `list_end()` (never null).
    pub free: *mut Block,
    pub used: i32,
    pub block_size: u32,
    /// The owning thread heap, or null (see the module doc).
    pub heap: *mut ThreadHeap,
    pub thread_free: AtomicUsize,
    pub bump: usize,
    pub end: usize,

    pub start: usize,
    pub pages: usize,
    pub capacity: u32,
    pub class: u8,
    pub kind: Kind,
    /// Small spans a thread owns: the byte offset of their class's cache in a
    /// ThreadHeap (never 0); 0 for orphans and every other kind, where each heap has
    /// `no_cache`, so the free fast path's room test is also its kind test (empty spans
    /// kept ready in an arena's span cache have 0 too). Copied into the page map's cache
    /// words of the span's pages, where the fast path reads it
    /// (`pagemap::set_cache_off`).
    pub cache_off: u32,
    /// Small spans: set aside as full by the owner (owner-only flag).
    pub in_full: bool,
    /// Small spans: the span its class allocates from, whose `used` carries the +1 of
    /// being current (see ThreadHeap::refresh_current).
    pub is_current: bool,
    /// FreeRun: its pages read as zero (fresh from the OS, or decommitted).
    pub zeroed: bool,
    /// FreeRun: pages decommitted (madvised away) since it was last used.
    pub decommitted: bool,
    /// Small: carved in the strict mode (check.rs), so every free block is zero beyond
    /// its mark and link. Large: guard pages surround the block.
    pub checked: bool,
    /// Large: the size of the mapping. Big/Small: unused.
    pub map_size: usize,
    pub arena: *mut Arena,
    pub region: *mut crate::arena::Region,
    /// Intrusive list links (heap queues, full list, arena bins, orphan lists).
    pub next: *mut Span,
    pub prev: *mut Span,
    /// Small spans: pages decommitted by purge.rs, bit i for page i (spans of small
    /// blocks have at most 128 pages).
    pub purged: u128,
    /// The generation of `arena` when this span was carved (see ArenaInner::generation).
    pub arena_gen: u32,
    /// FreeRun: when it was freed, in arena ticks (for decay).
    pub freed_at: u64,
}

impl Span {
    pub const fn empty() -> Span {
        Span {
            free: list_end(),
            used: 0,
            block_size: 0,
            heap: ptr::null_mut(),
            thread_free: AtomicUsize::new(0),
            bump: 0,
            end: 0,
            start: 0,
            pages: 0,
            capacity: 0,
            class: 0,
            kind: Kind::FreeRun,
            cache_off: 0,
            in_full: false,
            is_current: false,
            zeroed: false,
            decommitted: false,
            checked: false,
            map_size: 0,
            arena: ptr::null_mut(),
            region: ptr::null_mut(),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            purged: 0,
            arena_gen: 0,
            freed_at: 0,
        }
    }

    #[inline]
    pub fn bytes(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    #[inline]
    pub fn end_addr(&self) -> usize {
        self.start + self.bytes()
    }

    #[inline]
    pub fn tf_state(&self) -> usize {
        self.thread_free.load(Ordering::Acquire) & TF_STATE
    }

    /// What `used` is held at while the owner holds the span as full (`capacity` blocks
    /// out): 1, so that the owner's first local free brings the span back to its queue.
    /// (Holding more, a quarter of the blocks, saved larson 5% of its instructions, a
    /// span no longer going round full -> queue -> full for every block freed into it,
    /// but cost cfrac 12% of its peak RSS: spans set aside with free blocks in them.)
    #[inline]
    pub fn full_hold(&self) -> i32 {
        1
    }

    /// Takes a span its owner held as full back to a plain count: `used` was held at
    /// `full_hold()` and counted down by one per local free since.
    pub fn leave_full(&mut self) {
        self.used = self.capacity as i32 - (self.full_hold() - self.used);
        self.in_full = false;
    }

    /// Blocks of this small span that are out (a racy snapshot when another thread owns
    /// it: for statistics only). Remote frees not yet collected still count as out.
    pub fn live_blocks(&self) -> usize {
        // SAFETY: reading plain fields of a live record; a torn or stale value only
        // skews the statistic.
        let (used, in_full, current) = unsafe {
            (
                ptr::read_volatile(&self.used),
                ptr::read_volatile(&self.in_full),
                ptr::read_volatile(&self.is_current),
            )
        };
        if in_full && !self.heap.is_null() {
            // `used` is held at `full_hold()` (less the local frees since) while its
            // owner holds it full. (An orphan's `in_full` only says which orphan list it
            // is on.)
            return (self.capacity as i32 - (self.full_hold() - used)).max(0) as usize;
        }
        (used - current as i32).max(0) as usize
    }

    /// Is `addr` 16-byte aligned (as every block is) and in the carved part of this
    /// small span (below `bump`)? What `is_block_start` checks but for its division; the
    /// first 16 bytes at such an address lie in the span.
    #[inline]
    pub fn in_carved(&self, addr: usize) -> bool {
        addr & 15 == 0 && addr.wrapping_sub(self.start) < self.bump.wrapping_sub(self.start)
    }

    /// Does `addr` point at the start of a block of this small span that was handed
    /// out at least once (below `bump`)?
    #[inline]
    pub fn is_block_start(&self, addr: usize) -> bool {
        // A span is at most 128 pages, so the offset fits 32 bits (and a 32-bit division
        // is the cheaper one).
        addr >= self.start && addr < self.bump && ((addr - self.start) as u32).checked_rem(self.block_size) == Some(0)
    }
}

/// An intrusive doubly linked list of spans through `next`/`prev`.
pub struct SpanList {
    pub head: *mut Span,
    pub tail: *mut Span,
    pub len: usize,
}

impl SpanList {
    pub const fn new() -> Self {
        SpanList { head: ptr::null_mut(), tail: ptr::null_mut(), len: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `s` is a valid span on no list.
    pub unsafe fn push_front(&mut self, s: *mut Span) {
        // SAFETY: `s` and the current head are valid spans (list invariant).
        unsafe {
            (*s).prev = ptr::null_mut();
            (*s).next = self.head;
            if !self.head.is_null() {
                (*self.head).prev = s;
            } else {
                self.tail = s;
            }
        }
        self.head = s;
        self.len += 1;
    }

    /// # Safety
    /// `s` is a valid span on no list.
    pub unsafe fn push_back(&mut self, s: *mut Span) {
        // SAFETY: `s` and the current tail are valid spans (list invariant).
        unsafe {
            (*s).next = ptr::null_mut();
            (*s).prev = self.tail;
            if !self.tail.is_null() {
                (*self.tail).next = s;
            } else {
                self.head = s;
            }
        }
        self.tail = s;
        self.len += 1;
    }

    /// # Safety
    /// `s` is on this list.
    pub unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: `s` and its neighbours are valid spans on this list.
        unsafe {
            if (*s).prev.is_null() {
                self.head = (*s).next;
            } else {
                (*(*s).prev).next = (*s).next;
            }
            if !(*s).next.is_null() {
                (*(*s).next).prev = (*s).prev;
            } else {
                self.tail = (*s).prev;
            }
            (*s).next = ptr::null_mut();
            (*s).prev = ptr::null_mut();
        }
        self.len -= 1;
    }

    pub fn pop_front(&mut self) -> *mut Span {
        let s = self.head;
        if !s.is_null() {
            // SAFETY: the head is on this list.
            unsafe { self.remove(s) };
        }
        s
    }

    /// Iterates the spans; the closure must not unlink the span it is given.
    pub fn for_each(&self, mut f: impl FnMut(*mut Span)) {
        let mut s = self.head;
        while !s.is_null() {
            // SAFETY: list members are valid spans.
            let next = unsafe { (*s).next };
            f(s);
            s = next;
        }
    }
}

/// Fixed-size records (span records and thread heaps) carved from metadata mappings
/// that are never unmapped, with a free list for reuse.
///
/// Each mapping ("chunk") starts with a `ChunkHeader` in its first record slot, which
/// links the chunks for the statistics (their resident pages are allocator metadata);
/// records follow it at multiples of `item` from the page-aligned chunk start.
pub struct Pool {
    free: *mut PoolLink,
    bump: usize,
    end: usize,
    item: usize,
    /// The newest chunk, or null.
    chunks: *mut ChunkHeader,
    /// Bytes mapped for this pool (reported as allocator metadata).
    pub mapped: usize,
    pub live: usize,
}

/// A free pool record, linked through its first word.
struct PoolLink {
    next: *mut PoolLink,
}

#[repr(C)]
struct ChunkHeader {
    prev: *mut ChunkHeader,
    bytes: usize,
}

// SAFETY: a Pool is only used under its Mutex.
unsafe impl Send for Pool {}

impl Pool {
    pub const fn new(item: usize) -> Pool {
        Pool { free: ptr::null_mut(), bump: 0, end: 0, item, chunks: ptr::null_mut(), mapped: 0, live: 0 }
    }

    /// The header's slot: one record, or more if a record is smaller than the header.
    fn header_slot(&self) -> usize {
        self.item.max(1) * core::mem::size_of::<ChunkHeader>().div_ceil(self.item.max(1))
    }

    /// Calls `f(start, bytes)` for every chunk this pool mapped.
    pub fn for_each_chunk(&self, mut f: impl FnMut(usize, usize)) {
        let mut c = self.chunks;
        while !c.is_null() {
            // SAFETY: chunk headers are written when the chunk is mapped and chunks are
            // never unmapped; the caller holds the pool's lock.
            unsafe {
                f(c as usize, (*c).bytes);
                c = (*c).prev;
            }
        }
    }

    /// A zeroed record, or null when no memory is left.
    pub fn alloc(&mut self) -> *mut u8 {
        let p = if !self.free.is_null() {
            let b = self.free;
            // SAFETY: `b` is a record on our free list; its first word links the next.
            self.free = unsafe { (*b).next };
            b.cast::<u8>()
        } else {
            if self.bump + self.item > self.end {
                const CHUNK: usize = 256 * 1024;
                let size = CHUNK.max(os::page_round_up(self.header_slot() + self.item));
                let Some(m) = os::map(size) else { return ptr::null_mut() };
                let header = m.cast::<ChunkHeader>();
                // SAFETY: a fresh page-aligned mapping of at least one record slot,
                // which is at least a header's size (header_slot).
                unsafe { header.write(ChunkHeader { prev: self.chunks, bytes: size }) };
                self.chunks = header;
                self.bump = m as usize + self.header_slot();
                self.end = m as usize + size;
                self.mapped += size;
            }
            let p = self.bump as *mut u8;
            self.bump += self.item;
            p
        };
        // SAFETY: the record is `item` bytes of pool memory nobody else uses.
        unsafe { ptr::write_bytes(p, 0, self.item) };
        self.live += 1;
        p
    }

    /// # Safety
    /// `p` came from `alloc` of this pool and is no longer referenced.
    pub unsafe fn free(&mut self, p: *mut u8) {
        let b = p.cast::<PoolLink>();
        // SAFETY: the record is ours again; reuse its first word as the link.
        unsafe { (*b).next = self.free };
        self.free = b;
        self.live -= 1;
    }
}

/// Span records.
pub static SPAN_POOL: Mutex<Pool> = Mutex::new(Pool::new(core::mem::size_of::<Span>()));

/// Calls `f(start, bytes)` for each mapping of span records (allocator metadata).
pub fn for_each_meta_chunk(f: impl FnMut(usize, usize)) {
    SPAN_POOL.lock().for_each_chunk(f);
}

/// A new span record initialised to `Span::empty()`, or null when out of memory.
pub fn new_span() -> *mut Span {
    let p = SPAN_POOL.lock().alloc().cast::<Span>();
    if !p.is_null() {
        // SAFETY: a fresh record of the right size and alignment (pool items are
        // handed out at multiples of size_of::<Span>() from page-aligned chunks).
        unsafe { p.write(Span::empty()) };
    }
    p
}

/// # Safety
/// `s` came from `new_span`, is on no list, and no page maps to it any more.
pub unsafe fn delete_span(s: *mut Span) {
    // SAFETY: per the contract, nothing references the record.
    unsafe { SPAN_POOL.lock().free(s.cast()) };
}
