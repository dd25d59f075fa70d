//! oxmalloc as the Rust `#[global_allocator]` of this test binary (the rlib, without the
//! `override` feature): collections across threads, big reallocs, aligned layouts,
//! zeroed allocations, `oxmalloc::owns`, and C malloc left to glibc.
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static A: oxmalloc::OxMalloc = oxmalloc::OxMalloc;

fn pattern(seed: u64, i: usize) -> u8 {
    ((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)) >> 29) as u8
}

/// A bundle of collections built by one thread, checked and dropped by another.
struct Bundle {
    seed: u64,
    v: Vec<u64>,
    s: String,
    h: HashMap<String, Vec<u8>>,
    b: BTreeMap<u64, String>,
    boxed: Box<[u8]>,
    dq: VecDeque<Box<u32>>,
}

fn build(seed: u64) -> Bundle {
    let n = 2000 + (seed % 1000) as usize;
    let v: Vec<u64> = (0..n as u64).map(|i| i * seed).collect();
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{i}:{seed};"));
    }
    let mut h = HashMap::new();
    for i in 0..n {
        h.insert(format!("key-{seed}-{i}"), (0..(i % 300)).map(|k| pattern(seed, k)).collect());
    }
    let b: BTreeMap<u64, String> = (0..n as u64).map(|i| (i * 7919 % 100_003, format!("v{i}-{seed}"))).collect();
    let boxed: Box<[u8]> = (0..100_000 + (seed as usize % 50_000)).map(|i| pattern(seed, i)).collect();
    let dq = (0..n as u32).map(Box::new).collect();
    Bundle { seed, v, s, h, b, boxed, dq }
}

fn check(x: &Bundle) {
    let seed = x.seed;
    let n = 2000 + (seed % 1000) as usize;
    assert_eq!(x.v.len(), n);
    assert!(x.v.iter().enumerate().all(|(i, &e)| e == i as u64 * seed), "Vec contents (seed {seed})");
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("{i}:{seed};"));
    }
    assert_eq!(x.s, s, "String contents (seed {seed})");
    assert_eq!(x.h.len(), n);
    for i in 0..n {
        let val = x.h.get(&format!("key-{seed}-{i}")).expect("HashMap key");
        assert_eq!(val.len(), i % 300);
        assert!(val.iter().enumerate().all(|(k, &b)| b == pattern(seed, k)), "HashMap value (seed {seed})");
    }
    assert_eq!(x.b.len(), n);
    for i in 0..n as u64 {
        assert_eq!(x.b[&(i * 7919 % 100_003)], format!("v{i}-{seed}"));
    }
    assert!(x.boxed.iter().enumerate().all(|(i, &b)| b == pattern(seed, i)), "Box<[u8]> contents (seed {seed})");
    assert!(x.dq.iter().enumerate().all(|(i, b)| **b == i as u32), "VecDeque<Box<u32>> contents");
}

/// 4 threads build collections, send them around a ring of channels; each bundle is
/// checked and dropped by a different thread than the one that built it.
#[test]
fn collections_cross_threads() {
    const T: usize = 4;
    const ROUNDS: u64 = 30;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..T).map(|_| mpsc::channel::<Bundle>()).unzip();
    let mut handles = Vec::new();
    for (t, rx) in rxs.into_iter().enumerate() {
        let tx = txs[(t + 1) % T].clone();
        handles.push(thread::spawn(move || {
            let mut received = 0;
            for r in 0..ROUNDS {
                let bundle = build((t as u64 + 1) * 1_000_003 + r);
                check(&bundle);
                tx.send(bundle).unwrap();
                let got = rx.recv().unwrap();
                assert_ne!(got.seed / 1_000_003, t as u64 + 1, "received my own bundle");
                check(&got);
                drop(got); // freed on a thread that did not allocate it
                received += 1;
            }
            received
        }));
    }
    drop(txs);
    let total: u64 = handles.into_iter().map(|h| h.join().expect("thread panicked")).sum();
    assert_eq!(total, T as u64 * ROUNDS);
}

/// Vec growth by push (realloc) up to 48 MiB, contents checked, then shrink.
#[test]
fn vec_realloc_growth_to_tens_of_mib() {
    let target = 48usize << 20;
    let mut v: Vec<u8> = Vec::new();
    let mut last_ptr = v.as_ptr();
    let mut moves = 0;
    for i in 0..target {
        v.push(pattern(3, i));
        if v.as_ptr() != last_ptr {
            moves += 1;
            last_ptr = v.as_ptr();
            // after every reallocation, check everything copied so far
            assert!(v.iter().enumerate().all(|(k, &b)| b == pattern(3, k)), "contents lost at len {}", v.len());
        }
    }
    assert!(moves > 5);
    assert!(v.iter().enumerate().all(|(k, &b)| b == pattern(3, k)));
    v.truncate(1000);
    v.shrink_to_fit();
    assert!(v.iter().enumerate().all(|(k, &b)| b == pattern(3, k)), "contents lost by shrink_to_fit");
    // Vec<u64> with explicit reserve steps
    let mut w: Vec<u64> = Vec::with_capacity(1);
    for step in 0..24u32 {
        w.reserve(1 << step);
        let from = w.len();
        w.extend((from as u64..).take(1 << step));
        assert!(w.iter().enumerate().all(|(i, &x)| x == i as u64), "Vec<u64> contents at step {step}");
    }
    assert_eq!(w.len(), (1 << 24) - 1);
}

/// Over-aligned layouts through std::alloc: 64 B .. 1 MiB alignment, alloc and realloc.
#[test]
fn aligned_layouts() {
    let mut live = Vec::new();
    for &align in &[64usize, 4096, 65536, 1 << 20, 2 << 20] {
        for &size in &[1usize, 8, 100, 4096, 5000, 100_000, 1 << 20, 3 << 20] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null(), "alloc({size}, align {align}) returned null");
            assert_eq!(p as usize % align, 0, "alloc({size}, align {align}) = {p:p} misaligned");
            assert!(oxmalloc::owns(p), "owns() is false for an aligned block {p:p}");
            unsafe {
                for i in 0..size {
                    *p.add(i) = pattern(align as u64 ^ size as u64, i);
                }
            }
            live.push((p, layout));
        }
    }
    // no overlap
    let mut sorted: Vec<(usize, usize)> = live.iter().map(|(p, l)| (*p as usize, l.size())).collect();
    sorted.sort();
    for w in sorted.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "aligned blocks overlap: {:x}+{} and {:x}", w[0].0, w[0].1, w[1].0);
    }
    for (p, layout) in live {
        let seed = layout.align() as u64 ^ layout.size() as u64;
        unsafe {
            for i in 0..layout.size() {
                assert_eq!(*p.add(i), pattern(seed, i), "aligned block corrupted");
            }
            // realloc keeps the alignment of the layout and the contents
            let new_size = layout.size() * 3 + 17;
            let q = realloc(p, layout, new_size);
            assert!(!q.is_null());
            assert_eq!(q as usize % layout.align(), 0, "realloc lost alignment {}", layout.align());
            for i in 0..layout.size() {
                assert_eq!(*q.add(i), pattern(seed, i), "realloc of aligned block lost contents");
            }
            dealloc(q, Layout::from_size_align(new_size, layout.align()).unwrap());
        }
    }
    // page-aligned Box via a #[repr(align)] type
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(&**p as *const Page as usize % 4096, 0);
        assert!(p.0.iter().all(|&b| b == i as u8));
    }
}

/// alloc_zeroed returns zeroed memory, also when recycling dirty memory.
#[test]
fn alloc_zeroed_is_zero() {
    for &size in &[1usize, 16, 100, 1000, 4096, 10_000, 65_536, 131_072, 200_000, 1 << 20, 5 << 20] {
        for &align in &[8usize, 64, 4096] {
            let layout = Layout::from_size_align(size, align).unwrap();
            for _ in 0..4 {
                unsafe {
                    let d = alloc(layout);
                    assert!(!d.is_null());
                    std::ptr::write_bytes(d, 0xA5, size);
                    dealloc(d, layout);
                    let z = alloc_zeroed(layout);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0);
                    let s = std::slice::from_raw_parts(z, size);
                    assert!(s.iter().all(|&b| b == 0), "alloc_zeroed({size}, {align}) not zero");
                    std::ptr::write_bytes(z, 0x5A, size);
                    dealloc(z, layout);
                }
            }
        }
    }
    let v = vec![0u64; 3 << 20];
    assert!(v.iter().all(|&x| x == 0));
    // the allocator object can be called directly too
    unsafe {
        let layout = Layout::from_size_align(12345, 32).unwrap();
        let p = A.alloc_zeroed(layout);
        assert!(!p.is_null() && p as usize % 32 == 0);
        assert!(std::slice::from_raw_parts(p, 12345).iter().all(|&b| b == 0));
        A.dealloc(p, layout);
    }
}

/// `owns` is true for Rust heap memory, false for glibc malloc, stack and static memory.
#[test]
fn owns_rust_heap_but_not_c_malloc() {
    let b = Box::new(12345u64);
    let v: Vec<u8> = vec![1; 100_000];
    let s = String::from("hello");
    let big = vec![0u8; 8 << 20];
    assert!(oxmalloc::owns(&*b as *const u64 as *const u8), "owns(Box) is false");
    assert!(oxmalloc::owns(v.as_ptr()), "owns(Vec) is false");
    assert!(oxmalloc::owns(s.as_ptr()), "owns(String) is false");
    assert!(oxmalloc::owns(big.as_ptr()), "owns(8 MiB Vec) is false");

    let local = 5u64;
    static STATIC: u64 = 7;
    assert!(!oxmalloc::owns(&local as *const u64 as *const u8), "owns(stack address) is true");
    assert!(!oxmalloc::owns(&STATIC as *const u64 as *const u8), "owns(static) is true");
    assert!(!oxmalloc::owns(std::ptr::null()), "owns(NULL) is true");

    // Without the `override` feature, C malloc stays glibc's.
    for &n in &[16usize, 1000, 200_000, 4 << 20] {
        let p = unsafe { libc::malloc(n) } as *const u8;
        assert!(!p.is_null());
        assert!(!oxmalloc::owns(p), "owns(libc::malloc({n})) is true: C malloc was replaced without `override`");
        unsafe { libc::free(p as *mut libc::c_void) };
    }
    // A CString is built by Rust (oxmalloc); strdup by glibc.
    let c = CString::new("owned by rust").unwrap();
    assert!(oxmalloc::owns(c.as_ptr() as *const u8));
    let d = unsafe { libc::strdup(c.as_ptr()) };
    assert!(!oxmalloc::owns(d as *const u8), "strdup memory is oxmalloc's");
    unsafe { libc::free(d as *mut libc::c_void) };
}

/// The test binary does not export malloc: dlsym(RTLD_DEFAULT, "malloc") is glibc's.
#[test]
fn c_malloc_symbol_is_glibc() {
    unsafe {
        let name = CString::new("malloc").unwrap();
        let sym = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        assert!(!sym.is_null(), "dlsym(malloc) failed");
        let mut info: libc::Dl_info = std::mem::zeroed();
        assert!(libc::dladdr(sym, &mut info) != 0, "dladdr failed");
        assert!(!info.dli_fname.is_null());
        let file = CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned();
        assert!(file.contains("libc.so"), "malloc resolves into {file}, want glibc's libc.so");
        let exe = std::env::current_exe().unwrap();
        assert!(!file.ends_with(exe.file_name().unwrap().to_str().unwrap()), "malloc resolves into the test binary");
        for n in ["free", "calloc", "realloc", "posix_memalign"] {
            let cn = CString::new(n).unwrap();
            let s = libc::dlsym(libc::RTLD_DEFAULT, cn.as_ptr());
            let mut i: libc::Dl_info = std::mem::zeroed();
            assert!(!s.is_null() && libc::dladdr(s, &mut i) != 0);
            let f = CStr::from_ptr(i.dli_fname).to_string_lossy().into_owned();
            assert!(f.contains("libc.so"), "{n} resolves into {f}");
        }
    }
}
