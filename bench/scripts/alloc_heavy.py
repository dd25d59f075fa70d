"""Allocation-heavy Python: dicts, lists, strings and JSON, for `oxmalloc bench`.

usage: python3 alloc_heavy.py SCALE

The driver runs it with PYTHONMALLOC=malloc (so that every object, not only the
ones above pymalloc's 512-byte limit, goes through the allocator under test) and
PYTHONHASHSEED=0. Prints `checksum=` (a CRC of the results: independent of the
allocator) like the C workloads.
"""
import json
import sys
import zlib


def records(n, seed):
    """A list of n small records (dicts of strings, ints, lists)."""
    out = []
    x = seed
    for i in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append({
            "id": i,
            "name": "user-%d-%x" % (i, x & 0xFFFF),
            "tags": ["t%d" % ((x >> s) & 63) for s in range(0, 40, 8)],
            "score": (x >> 20) % 10007,
            "bio": "lorem ipsum " * ((x >> 40) % 12),
        })
    return out


def round_trip(recs):
    """Serialize and parse again, in chunks: many short-lived strings and dicts."""
    back = []
    for k in range(0, len(recs), 500):
        text = json.dumps(recs[k:k + 500], sort_keys=True)
        back.extend(json.loads(text))
    return back


def index(recs):
    """Group, count and join: dict of lists, string building."""
    by_tag = {}
    for r in recs:
        for t in r["tags"]:
            by_tag.setdefault(t, []).append(r["id"])
    words = {}
    for r in recs:
        for w in (r["name"] + " " + r["bio"]).split():
            words[w] = words.get(w, 0) + 1
    lines = []
    for t in sorted(by_tag):
        ids = by_tag[t]
        lines.append("%s:%d:%s" % (t, len(ids), ",".join(str(i) for i in ids[:50])))
    return "\n".join(lines), len(words)


def churn(recs):
    """Replace half of the records by new ones of other shapes, repeatedly."""
    live = list(recs)
    acc = 0
    for step in range(4):
        fresh = [{"k": str(i * step), "v": [i] * (i % 17), "s": "x" * (i % 300)}
                 for i in range(len(live) // 2)]
        live = live[::2] + fresh
        live.sort(key=lambda d: json.dumps(d, sort_keys=True)[:24])
        acc = zlib.crc32(json.dumps(live[:200], sort_keys=True).encode(), acc)
    return acc


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    crc = 0
    for rnd in range(scale):
        recs = records(8000, rnd + 1)
        back = round_trip(recs)
        assert back == recs
        text, nwords = index(back)
        crc = zlib.crc32(text.encode(), crc)
        crc = zlib.crc32(str(nwords).encode(), crc)
        crc = churn(back) ^ crc
    print("checksum=%08x" % crc)
    print("ops=%d" % (scale * 8000))


if __name__ == "__main__":
    main()
