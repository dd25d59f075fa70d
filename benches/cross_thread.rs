//! Cross-thread free: thread A (the bench thread) allocates blocks in batches of 64
//! and sends each batch over a bounded channel to thread B, which frees them. Every
//! free is therefore a remote free. Reported as time and throughput per block.
//!
//! Compared: `oxmalloc::OxMalloc` and `std::alloc::System` (glibc), both through
//! `GlobalAlloc`, for 64-byte and 1024-byte blocks.
//!
//! B lives for the whole benchmark; a measurement of `n` blocks runs from A's first
//! allocation until B reports that it has freed the n-th block. Batches are sent by
//! value (fixed arrays, no heap), so the channel itself allocates nothing per message.
//!
//! Run: `cargo bench --bench cross_thread`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use oxmalloc::OxMalloc;

const SIZES: [usize; 2] = [64, 1024];
const BATCH: usize = 64;
/// Batches in flight at most (A blocks when B falls behind).
const CHANNEL_BOUND: usize = 64;

// A batch is a few hundred bytes and a channel holds at most CHANNEL_BOUND of them:
// boxing it would put an allocation of the measured allocator on the measured path.
#[allow(clippy::large_enum_variant)]
enum Msg {
    /// `n` blocks (addresses as usize, so the message is `Send`) to free.
    Batch { ptrs: [usize; BATCH], n: usize },
    /// Everything sent before has been freed once B reads this: acknowledge.
    Fence,
    Quit,
}

/// The freeing thread B, with its channel; frees with allocator `A` and `layout`.
struct Freer {
    tx: SyncSender<Msg>,
    ack: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Freer {
    fn spawn<A: GlobalAlloc + Sync + 'static>(alloc: &'static A, layout: Layout) -> Freer {
        let (tx, rx) = sync_channel::<Msg>(CHANNEL_BOUND);
        let (ack_tx, ack) = sync_channel::<()>(1);
        let handle = std::thread::Builder::new()
            .name("freer".into())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Batch { ptrs, n } => {
                            for &p in &ptrs[..n] {
                                unsafe { alloc.dealloc(p as *mut u8, layout) };
                            }
                        }
                        Msg::Fence => ack_tx.send(()).unwrap(),
                        Msg::Quit => break,
                    }
                }
            })
            .expect("spawn freer thread");
        Freer { tx, ack, handle: Some(handle) }
    }

    /// Waits until B has freed everything sent so far.
    fn fence(&self) {
        self.tx.send(Msg::Fence).unwrap();
        self.ack.recv().unwrap();
    }
}

impl Drop for Freer {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Quit);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A allocates `n` blocks in batches and ships them to B; returns the time until
/// B has freed them all.
fn run<A: GlobalAlloc>(alloc: &A, layout: Layout, freer: &Freer, n: u64) -> Duration {
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH as u64) as usize;
        let mut ptrs = [0usize; BATCH];
        for slot in &mut ptrs[..k] {
            let p = unsafe { alloc.alloc(layout) };
            if p.is_null() {
                eprintln!("allocation of {} bytes failed", layout.size());
                std::process::abort();
            }
            unsafe { p.write_volatile(1) };
            *slot = black_box(p) as usize;
        }
        freer.tx.send(Msg::Batch { ptrs, n: k }).unwrap();
        left -= k as u64;
    }
    freer.fence();
    start.elapsed()
}

fn bench_one<A: GlobalAlloc + Sync + 'static>(c: &mut Criterion, name: &str, alloc: &'static A) {
    let mut g = c.benchmark_group("cross_thread_free");
    g.throughput(Throughput::Elements(1));
    for &size in &SIZES {
        let layout = Layout::from_size_align(size, std::mem::align_of::<usize>()).unwrap();
        let freer = Freer::spawn(alloc, layout);
        g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
            b.iter_custom(|iters| run(alloc, layout, &freer, iters))
        });
        drop(freer);
    }
    g.finish();
}

static OX: OxMalloc = OxMalloc;
static SYSTEM: System = System;

fn benches(c: &mut Criterion) {
    bench_one(c, "oxmalloc", &OX);
    bench_one(c, "system", &SYSTEM);
}

criterion_group! {
    name = cross_thread;
    config = common::config();
    targets = benches
}
criterion_main!(cross_thread);
