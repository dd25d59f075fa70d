#!/usr/bin/env python3
"""Writes the seed corpus fuzz/seeds/ops/ (programs for tests/driver/mod.rs).

Each seed is a small program in the driver's byte language that reaches one area:
small classes, class and page edges, aligned allocation, realloc growth, big and
large blocks, cross-thread frees, worker exits with live blocks, trims, bad requests.
Deterministic: rerunning rewrites the same files.
"""
import os, random

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "ops")

def size(n):
    if n <= 255:
        return bytes([0, n])
    if n <= 65535:
        return bytes([160, n & 255, n >> 8])
    if n <= 4 * 65535 + 3:
        return bytes([230, (n // 4) & 255, (n // 4) >> 8, n % 4])
    k = min(n // 1024, 4095)
    return bytes([248, k & 255, k >> 8, 0])

def edge(b):  # INTERESTING[b % 40] + (b >> 6) - 2
    return bytes([210, b])

def op(kind, t=0, bit6=0):
    return bytes([kind | (t << 4) | (bit6 << 6)])

def malloc(n, t=0): return op(0, t) + size(n) + b"\x01\x00"
def calloc(n, k, t=0): return op(2, t) + size(n) + b"\x01" + bytes([k])
def posix_memalign(n, aexp, t=0): return op(3, t, 0) + size(n) + bytes([aexp << 3 | 1]) + b"\x00"
def aligned_alloc(n, aexp, t=0): return op(3, t, 1) + size(n) + bytes([aexp << 3 | 1]) + b"\x00"
def memalign(n, aexp, extra=0, t=0): return op(4, t, 0) + size(n) + bytes([aexp << 3 | 1, extra])
def big_align(n, kexp, t=0): return op(3, t, 1) + size(n) + bytes([kexp << 3]) + b"\x00"
def valloc(n, p=0, t=0): return op(4, t, 1) + size(n) + b"\x01" + bytes([p])
def realloc(slot, mode, n, t=0, rel=128): return op(5, t) + bytes([slot & 255, slot >> 8, mode]) + size(n) + bytes([rel])
def free(slot, how=0, t=0): return op(7, t) + bytes([slot & 255, slot >> 8, how])
def burst(k, slot=0, t=0): return op(10, t, 1) + bytes([k, slot & 255, slot >> 8])
def usable(slot, t=0): return op(11, t) + bytes([slot & 255, slot >> 8])
def bad(sel, small=5, slot=0, t=0): return op(12, t) + bytes([sel, small, slot & 255, slot >> 8])
def exit_worker(t): return op(13, t, 1)
def trim(t=0): return op(14, t, 1)
def verify(): return op(15, 0, 1)

def write(name, prog):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(prog)

r = random.Random(6)
write("small-classes", b"".join(malloc(n) for n in range(0, 260, 3)) + burst(31) + burst(31) + verify())
write("edges", b"".join(op(0) + edge(b) + b"\x01\x00" for b in range(256)) + trim())
write("aligned", b"".join(posix_memalign(r.randrange(4000), e) + aligned_alloc(r.randrange(300), e) + memalign(r.randrange(5000), e, 3)
                          for e in range(12)) + b"".join(big_align(r.randrange(1 << 17), k) for k in range(10)) + valloc(5000) + valloc(77, 1) + verify())
write("realloc-growth", malloc(1) + b"".join(realloc(0, 3, 0, rel=255) for _ in range(40)) + b"".join(realloc(0, 2, 0, rel=200) for _ in range(30)))
write("realloc-abs", b"".join(malloc(r.randrange(2000)) for _ in range(20)) + b"".join(realloc(r.randrange(20), r.choice([0, 4, 12]), r.choice([0, 17, 900, 5000, 70000, 140000, 300000])) for _ in range(60)))
write("large", b"".join(malloc(n) for n in (200000, 1 << 20, 3 << 20, 131072, 131071, 135168)) + b"".join(realloc(i, 0, n) for i, n in enumerate((1 << 21, 100, 150000, 4 << 20, 131073, 64))) + free(0) + free(0) + trim() + verify())
write("cross-thread", b"".join(malloc(r.randrange(1, 3000), t=r.randrange(4)) for _ in range(200)) + b"".join(free(r.randrange(200), r.randrange(3), t=r.randrange(4)) for _ in range(150)) + b"".join(realloc(r.randrange(50), 0, r.randrange(9000), t=r.randrange(4)) for _ in range(50)))
write("worker-exit", b"".join(malloc(r.randrange(1, 20000), t=1 + i % 3) for i in range(120)) + exit_worker(1) + exit_worker(2) + b"".join(free(r.randrange(80), t=r.choice((0, 3))) for _ in range(60)) + b"".join(malloc(r.randrange(1, 2000), t=1) for _ in range(50)) + exit_worker(1) + exit_worker(3) + trim(2))
write("calloc", b"".join(calloc(r.choice([0, 1, 16, 100, 4096, 70000, 200000]), r.randrange(17), t=r.randrange(4)) for _ in range(40)) + verify())
write("bad-requests", malloc(100) + malloc(5000) + b"".join(bad(s | (k << 3), small=r.randrange(256), slot=r.randrange(2), t=r.randrange(4)) for s in range(8) for k in range(5)) + usable(0) + usable(1))
write("sized-frees", b"".join(malloc(r.randrange(300)) + aligned_alloc(r.randrange(300), r.randrange(9)) for _ in range(60)) + b"".join(free(r.randrange(120), how, t=r.randrange(4)) for how in (1, 2) for _ in range(50)))
write("random-1k", bytes(r.randrange(256) for _ in range(1024)))
write("random-4k", bytes(r.randrange(256) for _ in range(4096)))
def mallopt(b): return op(13, 0, 2) + bytes([b])
# M_MMAP_THRESHOLD 512 KiB and 4 MiB (big blocks from the heap), M_MMAP_MAX 0, M_TRIM_THRESHOLD 0, M_TOP_PAD 0, M_PERTURB 0xA5
write("options", mallopt(0 | 2 << 6) + b"".join(malloc(n) for n in (140000, 300000, 500000)) + realloc(0, 0, 400000) + mallopt(0 | 3 << 6)
      + b"".join(malloc(n) for n in (1 << 20, 3 << 20)) + mallopt(1) + malloc(5 << 20) + mallopt(2) + mallopt(3) + burst(3) + trim()
      + mallopt(4 | 1 << 6) + b"".join(malloc(n) for n in (10, 100, 1000, 10000)) + free(0) + free(0) + verify())
