#!/usr/bin/env bash
# Runs issue 4's RSS scenarios under glibc, oxmalloc and each peer allocator installed,
# and prints a table of RSS (MiB) per scenario and allocator.
#
#   scripts/rss-scenarios.sh            # builds liboxmalloc.so (cargo build --release)
#   OXMALLOC_LIB=path/to/lib.so scripts/rss-scenarios.sh   # another build, no cargo
#   STEADY_MS=8000 BURST_MIB=256 scripts/rss-scenarios.sh  # the bursty scenario's shape
#
# Scenarios (the C programs are tests/c/memory_return.c and tests/c/bursty.c, the same
# that tests/memory_return.rs runs; each figure is the program's own /proc/self/statm):
#   reverse  1 Mi blocks of 256 B freed in reverse order, no trim call: RSS after.
#   sparse   the same blocks, 63 of every 64 freed, then malloc_trim(0): RSS after.
#            (The peers do not define malloc_trim: glibc's runs, and does nothing for them.)
#   bursty   two threads allocate BURST_MIB MiB of mixed blocks, free them in random
#            order (half cross-thread), then churn a ~3.5 MiB live set for STEADY_MS;
#            no trim call: the highest RSS over the last 2 s of the steady phase.
#   idle     as bursty, but the second thread sleeps through the steady phase (~2.8
#            MiB live, all in the main thread).
#   large    64 x 1 MiB freed twice (the second time from the heap under glibc's
#            dynamic mmap threshold, with a small block pinning the top of the heap),
#            then 2.5 s of a small churning working set: RSS at the end.
# Each cell also gives, in brackets, the program's RSS before its allocations (start).
# reverse and sparse include their 8 MiB array of 1 Mi pointers (touched after start);
# bursty's start includes its own arrays (~10 MiB, touched before).
# Takes about 2 minutes with three peers installed.
set -euo pipefail

cd "$(dirname "$0")/.."
STEADY_MS=${STEADY_MS:-8000}
BURST_MIB=${BURST_MIB:-256}
LIBDIR=/usr/lib/x86_64-linux-gnu

if [ -z "${OXMALLOC_LIB:-}" ]; then
    cargo build --release --quiet
    OXMALLOC_LIB=$PWD/target/release/liboxmalloc.so
fi
[ -f "$OXMALLOC_LIB" ] || { echo "rss-scenarios: no $OXMALLOC_LIB" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -g -Wall -pthread -o "$tmp/memory_return" tests/c/memory_return.c
cc -O2 -g -Wall -pthread -o "$tmp/bursty" tests/c/bursty.c

names=(glibc oxmalloc)
libs=("" "$OXMALLOC_LIB")
for peer in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    if [ -f "$LIBDIR/${peer#*:}" ]; then
        names+=("${peer%%:*}")
        libs+=("$LIBDIR/${peer#*:}")
    else
        echo "rss-scenarios: ${peer%%:*} not installed (scripts/install-deps.sh --peers), skipped" >&2
    fi
done

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
field() { sed -n "s/^$2=\([0-9]*\).*/\1/p" "$1" | tail -1; }
# The highest rss_kib among the samples of the last 2 s, and the live_kib beside it.
steady() {
    awk '/^sample /{ for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                     t[n] = f["t_ms"]; r[n] = f["rss_kib"]; l[n] = f["live_kib"]; n++ }
         END { last = t[n - 1]; best = -1
               for (i = 0; i < n; i++) if (t[i] >= last - 2000 && r[i] > best) { best = r[i]; live = l[i] }
               print best, live }' "$1"
}

declare -A cell start
for i in "${!names[@]}"; do
    a=${names[$i]}
    pre=${libs[$i]}
    echo "rss-scenarios: $a" >&2
    for mode in reverse sparse large; do
        out=$tmp/$a-$mode
        LD_PRELOAD=$pre "$tmp/memory_return" "$mode" > "$out"
        grep -q "failed=0" "$out" || { echo "rss-scenarios: $mode failed under $a" >&2; cat "$out" >&2; exit 1; }
        case $mode in
            reverse) kib=$(field "$out" rss_after_kib) ;;
            sparse) kib=$(field "$out" rss_after_trim_kib) ;;
            large) kib=$(field "$out" rss_after_kib) ;;
        esac
        cell[$a,$mode]=$(mib "$kib")
        start[$a,$mode]=$(mib "$(field "$out" rss_start_kib)")
    done
    for mode in bursty idle; do
        out=$tmp/$a-$mode
        worker=churn
        [ "$mode" = idle ] && worker=idle
        LD_PRELOAD=$pre "$tmp/bursty" "$BURST_MIB" 4096 "$STEADY_MS" "$worker" > "$out"
        grep -q "failed=0" "$out" || { echo "rss-scenarios: $mode failed under $a" >&2; cat "$out" >&2; exit 1; }
        read -r kib live < <(steady "$out")
        cell[$a,$mode]="$(mib "$kib") ($(mib "$live") live)"
        start[$a,$mode]=$(mib "$(field "$out" rss_start_kib)")
    done
done

labels=(
    "reverse: 1 Mi x 256 B freed in reverse, no trim: RSS after"
    "sparse: 63 of 64 freed, malloc_trim(0): RSS after"
    "bursty: ${BURST_MIB} MiB burst, then steady: RSS in the last 2 s"
    "idle: bursty, second thread idle after the burst: RSS in the last 2 s"
    "large: 2 x 64 x 1 MiB freed, top pinned, 2.5 s of small churn: RSS after"
)
modes=(reverse sparse bursty idle large)
printf '| scenario (RSS, MiB; start in brackets) |'
for a in "${names[@]}"; do printf ' %s |' "$a"; done
printf '\n|---|'
for _ in "${names[@]}"; do printf -- '---:|'; done
printf '\n'
for j in "${!modes[@]}"; do
    m=${modes[$j]}
    printf '| %s |' "${labels[$j]}"
    for a in "${names[@]}"; do printf ' %s [%s] |' "${cell[$a,$m]}" "${start[$a,$m]}"; done
    printf '\n'
done
