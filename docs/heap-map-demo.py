# A service-like heap: records of mixed sizes, most of a cache evicted, a few big buffers.
import ctypes, json, random, sys
random.seed(7)
records = [{"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 13)] * (i % 5),
            "blob": "x" * random.randint(8, 900)} for i in range(60000)]
cache = {i: json.dumps(records[i]) for i in range(0, 60000, 3)}
for k in list(cache):
    if k % 5:
        del cache[k]
del records[::2]
buffers = [bytearray(300_000) for _ in range(4)]
print(len(records), len(cache), sum(len(b) for b in buffers))
sys.stdout.flush()
ctypes.CDLL(None).exit(0)  # C exit(): the heap map is drawn before Python tears its heap down
