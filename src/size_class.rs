//! Size classes: the block sizes small requests are rounded up to.
//!
//! 16-byte steps up to 128 bytes, then four classes per doubling up to 128 KiB (the
//! default mmap threshold). Four per doubling bounds the rounding waste at 20% of a
//! block (12.5% on average over sizes); every class is a multiple of 16, so every
//! block is 16-byte aligned. Requests above `MAX_CLASS_SIZE` that still belong in the
//! heap (a raised `M_MMAP_THRESHOLD`) are page runs of their own ("big" blocks).
//!
//! Each class carves blocks out of spans of `SPANS[c].pages` pages, chosen so that the
//! span holds at least 64 KiB (or four blocks) and wastes little at its tail.

use crate::os::PAGE_SIZE;

pub const NUM_CLASSES: usize = 48;
pub const MAX_CLASS_SIZE: usize = 128 * 1024;

/// Block size of each class.
///
/// | classes | sizes                      | spacing          |
/// |---------|----------------------------|------------------|
/// | 0..8    | 16 32 48 64 80 96 112 128  | 16 B             |
/// | 8..12   | 160 192 224 256            | 32 B   (1/4 of 128) |
/// | 12..16  | 320 384 448 512            | 64 B             |
/// | 16..20  | 640 768 896 1024           | 128 B            |
/// | 20..24  | 1280 1536 1792 2048        | 256 B            |
/// | 24..28  | 2560 3072 3584 4096        | 512 B            |
/// | 28..32  | 5 6 7 8 KiB                | 1 KiB            |
/// | 32..36  | 10 12 14 16 KiB            | 2 KiB            |
/// | 36..40  | 20 24 28 32 KiB            | 4 KiB            |
/// | 40..44  | 40 48 56 64 KiB            | 8 KiB            |
/// | 44..48  | 80 96 112 128 KiB          | 16 KiB           |
pub const CLASS_SIZE: [u32; NUM_CLASSES] = [
    16, 32, 48, 64, 80, 96, 112, 128, //
    160, 192, 224, 256, //
    320, 384, 448, 512, //
    640, 768, 896, 1024, //
    1280, 1536, 1792, 2048, //
    2560, 3072, 3584, 4096, //
    5120, 6144, 7168, 8192, //
    10240, 12288, 14336, 16384, //
    20480, 24576, 28672, 32768, //
    40960, 49152, 57344, 65536, //
    81920, 98304, 114688, 131072,
];

/// An array with one entry per size class, indexed without a bounds check: every class
/// index in oxmalloc comes from `class_of`/`aligned_class` or from a span's `class`
/// field, which was set from one, so it is below NUM_CLASSES. (A bounds check would
/// drag in the panic machinery, which liboxmalloc.so must not contain: see lib.rs.)
#[repr(transparent)]
pub struct PerClass<T>(pub [T; NUM_CLASSES]);

impl<T> core::ops::Index<usize> for PerClass<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, class: usize) -> &T {
        debug_assert!(class < NUM_CLASSES);
        // SAFETY: class indices are below NUM_CLASSES (type doc).
        unsafe { self.0.get_unchecked(class) }
    }
}

impl<T> core::ops::IndexMut<usize> for PerClass<T> {
    #[inline(always)]
    fn index_mut(&mut self, class: usize) -> &mut T {
        debug_assert!(class < NUM_CLASSES);
        // SAFETY: as above.
        unsafe { self.0.get_unchecked_mut(class) }
    }
}

/// The block size of class `class`.
#[inline(always)]
pub fn block_size(class: usize) -> usize {
    debug_assert!(class < NUM_CLASSES);
    // SAFETY: class indices are below NUM_CLASSES (see PerClass).
    unsafe { *CLASS_SIZE.get_unchecked(class) as usize }
}

/// The span layout of class `class`.
#[inline(always)]
pub fn span_of(class: usize) -> SpanShape {
    debug_assert!(class < NUM_CLASSES);
    // SAFETY: as above.
    unsafe { *SPANS.get_unchecked(class) }
}

/// Sizes up to this are classed by one table lookup on the malloc fast path.
pub const SMALL_LOOKUP_MAX: usize = 1024;

/// `SMALL_CLASS[(size + 15) >> 4]` is the class of `size` for `size <= SMALL_LOOKUP_MAX`.
/// A `const`, not a `static`: the compiler then emits a private table reached with one
/// rip-relative address, where a static of a cdylib costs an extra load from the GOT.
pub const SMALL_CLASS: [u8; SMALL_LOOKUP_MAX / 16 + 1] = {
    let mut t = [0u8; SMALL_LOOKUP_MAX / 16 + 1];
    let mut i = 0;
    while i < t.len() {
        t[i] = class_of_computed(if i == 0 { 1 } else { i * 16 }) as u8;
        i += 1;
    }
    t
};

/// The class of `size` (`1 <= size <= MAX_CLASS_SIZE`) by arithmetic.
#[inline]
pub const fn class_of_computed(size: usize) -> usize {
    if size <= 128 {
        return if size == 0 { 0 } else { size.div_ceil(16) - 1 };
    }
    let s = size - 1;
    let bit = (usize::BITS - 1 - s.leading_zeros()) as usize; // floor(log2(s)), >= 7
    let shift = bit - 2;
    8 + (bit - 7) * 4 + ((s >> shift) & 3)
}

/// The class of `size` (`size <= MAX_CLASS_SIZE`).
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    if size <= SMALL_LOOKUP_MAX {
        SMALL_CLASS[(size + 15) >> 4] as usize
    } else {
        class_of_computed(size)
    }
}

/// How a class's spans are laid out.
#[derive(Clone, Copy)]
pub struct SpanShape {
    pub pages: u32,
    pub capacity: u32,
}

pub static SPANS: [SpanShape; NUM_CLASSES] = {
    let mut t = [SpanShape { pages: 0, capacity: 0 }; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = span_shape(CLASS_SIZE[c] as usize);
        c += 1;
    }
    t
};

/// The span size for blocks of `size`: at least 64 KiB and four blocks, then up to an
/// eighth more pages if that wastes less at the tail.
const fn span_shape(size: usize) -> SpanShape {
    let min_bytes = if size * 4 > 64 * 1024 { size * 4 } else { 64 * 1024 };
    let min_pages = min_bytes.div_ceil(PAGE_SIZE);
    let mut best = min_pages;
    let mut best_waste = (min_pages * PAGE_SIZE) % size;
    let mut p = min_pages + 1;
    while p <= min_pages + min_pages / 8 {
        let waste = (p * PAGE_SIZE) % size;
        // Compare waste as a fraction of the span: waste/p < best_waste/best.
        if waste * best < best_waste * p {
            best = p;
            best_waste = waste;
        }
        p += 1;
    }
    SpanShape { pages: best as u32, capacity: ((best * PAGE_SIZE) / size) as u32 }
}

/// The smallest class whose blocks are all aligned to `align` (a power of two up to a
/// page) and hold `size` bytes. Spans start on a page boundary, so a class whose size
/// is a multiple of `align` has every block aligned.
pub fn aligned_class(size: usize, align: usize) -> Option<usize> {
    if size > MAX_CLASS_SIZE || align > PAGE_SIZE || !align.is_power_of_two() {
        return None;
    }
    let mut c = class_of(size.max(align));
    while c < NUM_CLASSES {
        if block_size(c) & (align - 1) == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_smallest_class_that_holds_it() {
        for size in 1..=MAX_CLASS_SIZE {
            let c = class_of(size);
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} class {c}");
            if c > 0 {
                assert!((CLASS_SIZE[c - 1] as usize) < size, "size {size} not in smallest class");
            }
        }
        assert_eq!(class_of(0), 0);
    }

    #[test]
    fn classes_are_increasing_multiples_of_16() {
        for c in 0..NUM_CLASSES {
            assert_eq!(CLASS_SIZE[c] % 16, 0);
            if c > 0 {
                assert!(CLASS_SIZE[c] > CLASS_SIZE[c - 1]);
            }
        }
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, MAX_CLASS_SIZE);
    }

    #[test]
    fn rounding_waste_is_bounded_above_64_bytes() {
        let mut total_waste = 0f64;
        let mut n = 0f64;
        for size in 65..=MAX_CLASS_SIZE {
            let block = CLASS_SIZE[class_of(size)] as f64;
            let waste = (block - size as f64) / block;
            assert!(waste <= 0.20 + 1e-9, "size {size}: waste {waste}");
            total_waste += waste;
            n += 1.0;
        }
        assert!(total_waste / n <= 0.125, "average waste {}", total_waste / n);
    }

    #[test]
    fn spans_hold_at_least_four_blocks_and_waste_little() {
        for c in 0..NUM_CLASSES {
            let s = SPANS[c];
            let bytes = s.pages as usize * PAGE_SIZE;
            assert!(s.capacity >= 4);
            assert!(s.pages <= 128, "purge.rs keeps a 128-bit page bitmap");
            assert!(s.capacity <= 4096, "purge.rs keeps a 4096-bit block bitmap");
            assert_eq!(s.capacity as usize, bytes / CLASS_SIZE[c] as usize);
            let waste = bytes - s.capacity as usize * CLASS_SIZE[c] as usize;
            assert!(waste * 8 <= bytes, "class {c} wastes {waste} of {bytes}");
        }
    }

    #[test]
    fn aligned_classes_are_aligned() {
        for align in [16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
            for size in [1, 15, 100, 1000, 5000, 70000] {
                if let Some(c) = aligned_class(size, align) {
                    assert!(CLASS_SIZE[c] as usize >= size);
                    assert_eq!(CLASS_SIZE[c] as usize % align, 0);
                }
            }
        }
    }
}
