//! rust-collections: a Rust program using std collections, for `oxmalloc bench`.
//!
//! Built by the bench driver with plain `rustc` (no cargo), once per global allocator:
//!   (no cfg)            std::alloc::System, i.e. glibc's malloc
//!   --cfg use_oxmalloc  oxmalloc::OxMalloc   (--extern oxmalloc=liboxmalloc.rlib)
//!   --cfg use_mimalloc  mimalloc through its C API (links the system libmimalloc.so.2;
//!                       the mimalloc crate is not used: no new dependencies)
//! usage: collections SCALE. Prints `checksum=` (independent of the allocator: hash map
//! iteration order is never let into it).

use std::collections::{BTreeMap, HashMap, VecDeque};

#[cfg(use_oxmalloc)]
#[global_allocator]
static GLOBAL: oxmalloc::OxMalloc = oxmalloc::OxMalloc;

#[cfg(use_mimalloc)]
mod mi {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    extern "C" {
        fn mi_malloc_aligned(size: usize, align: usize) -> *mut c_void;
        fn mi_zalloc_aligned(size: usize, align: usize) -> *mut c_void;
        fn mi_realloc_aligned(p: *mut c_void, size: usize, align: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
    }

    pub struct MiMalloc;

    unsafe impl GlobalAlloc for MiMalloc {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            mi_malloc_aligned(l.size(), l.align()).cast()
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            mi_zalloc_aligned(l.size(), l.align()).cast()
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            mi_realloc_aligned(p.cast(), new, l.align()).cast()
        }
        unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
            mi_free(p.cast())
        }
    }

    #[global_allocator]
    static GLOBAL: MiMalloc = MiMalloc;
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn fnv(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Word counting with a HashMap<String, Vec<u32>>: many small strings and vectors.
fn words(rng: &mut Rng, n: usize) -> u64 {
    let syll = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "xe", "zu", "qi"];
    let mut index: HashMap<String, Vec<u32>> = HashMap::new();
    for i in 0..n {
        let mut w = String::new();
        for _ in 0..1 + rng.below(4) {
            w.push_str(syll[rng.below(syll.len() as u64) as usize]);
        }
        index.entry(w).or_default().push(i as u32);
    }
    // order-independent: sum of per-entry hashes
    let mut sum = 0u64;
    for (k, v) in &index {
        sum = sum.wrapping_add(fnv(k.as_bytes(), v.len() as u64 ^ u64::from(v[0])));
    }
    // remove half of the keys, sorted for determinism
    let mut keys: Vec<String> = index.keys().cloned().collect();
    keys.sort();
    for k in keys.iter().step_by(2) {
        index.remove(k);
    }
    sum.wrapping_add(index.len() as u64)
}

/// An ordered map with churn: inserts, removals and range scans of String values.
fn ordered(rng: &mut Rng, n: usize) -> u64 {
    let mut map: BTreeMap<u64, String> = BTreeMap::new();
    let mut sum = 0u64;
    for i in 0..n {
        let k = rng.below(n as u64 / 2 + 1);
        if rng.below(3) == 0 {
            if let Some(v) = map.remove(&k) {
                sum = sum.wrapping_add(v.len() as u64);
            }
        } else {
            map.insert(k, format!("value-{i}-{}", "#".repeat((k % 40) as usize)));
        }
        if i % 1000 == 0 {
            for (k, v) in map.range(k..).take(20) {
                sum = sum.wrapping_add(k ^ v.len() as u64);
            }
        }
    }
    sum.wrapping_add(map.len() as u64)
}

/// Vec<String> building, sorting, dedup and joining.
fn strings(rng: &mut Rng, n: usize) -> u64 {
    let mut v: Vec<String> = (0..n).map(|_| format!("{:x}", rng.next() % 1_000_003)).collect();
    v.sort_unstable();
    v.dedup();
    let joined = v.join(",");
    let mut parts: Vec<&str> = joined.split(',').collect();
    parts.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    fnv(parts[..parts.len().min(1000)].concat().as_bytes(), v.len() as u64)
}

/// A queue of boxed records of varying size moving through (nested Vec, Box).
fn queue(rng: &mut Rng, n: usize) -> u64 {
    let mut q: VecDeque<Box<(u64, Vec<u64>)>> = VecDeque::new();
    let mut sum = 0u64;
    for i in 0..n as u64 {
        let len = rng.below(48) as usize;
        q.push_back(Box::new((i, vec![i; len])));
        if q.len() > 5000 {
            for _ in 0..rng.below(3) + 1 {
                if let Some(b) = q.pop_front() {
                    sum = sum.wrapping_add(b.0 ^ b.1.len() as u64);
                }
            }
        }
    }
    sum.wrapping_add(q.len() as u64)
}

fn main() {
    let scale: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 1,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: collections SCALE (a positive integer)");
            std::process::exit(2);
        }
    };
    let mut rng = Rng(42);
    let mut sum = 0u64;
    for _ in 0..scale {
        sum = sum.wrapping_add(words(&mut rng, 150_000));
        sum = sum.wrapping_add(ordered(&mut rng, 150_000));
        sum = sum.wrapping_add(strings(&mut rng, 150_000));
        sum = sum.wrapping_add(queue(&mut rng, 300_000));
    }
    println!("checksum={sum:016x}");
    println!("ops={}", scale * 750_000);
}
