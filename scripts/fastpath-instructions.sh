#!/usr/bin/env bash
# Instructions per malloc+free pair (16..1024 bytes, one thread), counted with
# valgrind's callgrind, for oxmalloc, glibc and each peer allocator installed.
#
#   scripts/fastpath-instructions.sh [--json] [--iters N] [--warmup N] [--sizes 16,64,...]
#
# oxmalloc is target/release/liboxmalloc.so (build it with `cargo build --release`),
# or $OXMALLOC_LIB. Peers (Debian: libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4)
# that are not installed are skipped with a note; so is oxmalloc if not built.
# --sizes replaces the default cycle (16, 32, ..., 1024) by the sizes given, cycled
# in that order. Exit status: 0 when every allocator present was measured; 2 if
# valgrind, cc or objdump is missing, or a measurement failed.
#
# Method
# ------
# A small C program (below, built with `cc -O2 -no-pie -fplt -fno-builtin`) runs
#     for i in 0..W+N:  p = malloc(size[i % K]); *(volatile char *)p = i;
#                       vsink = p; free(p);
# with size[] = 16, 32, ..., 1024 (K = 64) by default, a fixed ascending cycle.
# `vsink` is a volatile global, so the compiler can neither drop nor merge the
# malloc/free pair, and -fno-builtin keeps gcc from reasoning about malloc at all.
# The calls go through the executable's PLT (`call malloc@plt` -> `jmp *GOT`), as
# in any real dynamically linked program.
#
# It runs under `valgrind --tool=callgrind --skip-plt=no`. With --skip-plt=no,
# callgrind treats each PLT stub as a function of its own, so the call-graph edge
# main -> malloc@plt carries the *inclusive* cost of the call: the PLT jump, the
# allocator's entry point (whatever alias it is named by) and everything it calls,
# plus the number of calls. The PLT stubs are identified by address (non-PIE, so
# callgrind's "0x0000000000401050 [PLT]" is objdump's `malloc@plt`), which makes
# the method independent of how each allocator names its functions and of
# whether its library has symbols at all.
#
# The program runs twice, with W+N and W+2N pairs (W = warm-up). Subtracting the
# two edge costs cancels everything that happens a fixed number of times: lazy PLT
# binding, allocator initialisation, first refills of thread caches, the warm-up:
#     malloc part = (Incl(main->malloc@plt, W+2N) - Incl(main->malloc@plt, W+N)) / N
#     free part   = (Incl(main->free@plt,   W+2N) - Incl(main->free@plt,   W+N)) / N
# Each part includes one PLT `jmp`; the loop's own instructions (in main) are not
# counted. Periodic slow paths (cache flushes, GC tickers, page retirement) are
# included, amortised over N. N and W are rounded up to whole size cycles.
#
# Figures seen on Debian 12 (glibc 2.36, valgrind 3.19), default cycle, per pair:
# glibc 131 (42 + 89), jemalloc 5.3 74, tcmalloc 2.10 69, mimalloc 2.0.9 831.
# mimalloc's figure is real, not an artefact: with one live block, every free
# empties its page, and with more than ~8 size classes in rotation its retired
# pages expire before they are reused, so malloc keeps taking the slow path (the
# native run time shows the same). With `--sizes 64` it is 108, with
# `--sizes 16,64,256,1024` 121.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LIBDIR=/usr/lib/x86_64-linux-gnu

JSON=0
N=200000
W=4096
SIZES=""
while [ $# -gt 0 ]; do
    case "$1" in
        --json) JSON=1 ;;
        --iters) N="${2:?--iters needs a value}"; shift ;;
        --iters=*) N="${1#*=}" ;;
        --warmup) W="${2:?--warmup needs a value}"; shift ;;
        --warmup=*) W="${1#*=}" ;;
        --sizes) SIZES="${2:?--sizes needs a value}"; shift ;;
        --sizes=*) SIZES="${1#*=}" ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "fastpath-instructions.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done
case "$N$W" in *[!0-9]*) echo "--iters/--warmup take integers" >&2; exit 2 ;; esac
[ "$N" -gt 0 ] || { echo "--iters must be > 0" >&2; exit 2; }

# The sizes cycled, in this order.
if [ -n "$SIZES" ]; then
    case "$SIZES" in
        *[!0-9,]*|,*|*,|*,,*) echo "--sizes takes a comma-separated list of integers" >&2; exit 2 ;;
    esac
    IFS=, read -r -a SIZE_ARGS <<<"$SIZES"
    [ "${#SIZE_ARGS[@]}" -le 256 ] || { echo "--sizes: at most 256 sizes" >&2; exit 2; }
    SIZES_DESC="$SIZES"
else
    SIZE_ARGS=()
    for ((s = 16; s <= 1024; s += 16)); do SIZE_ARGS+=("$s"); done
    SIZES_DESC="16..1024 step 16"
fi
K=${#SIZE_ARGS[@]}
N=$(( (N + K - 1) / K * K ))
W=$(( (W + K - 1) / K * K ))

note() { echo "note: $*" >&2; }

for tool in valgrind cc objdump; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "fastpath-instructions.sh: '$tool' not found (scripts/install-deps.sh installs it)" >&2
        exit 2
    }
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/oxfastpath.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

cat >"$TMP/loop.c" <<'CEOF'
#include <stdlib.h>

void *volatile vsink;

/* loop ITERATIONS SIZE...: ITERATIONS malloc/touch/free pairs, cycling SIZE... */
int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], 0, 10) : 0;
    size_t sizes[256];
    int k = 0;
    for (int a = 2; a < argc && k < 256; a++)
        sizes[k++] = (size_t)strtoul(argv[a], 0, 10);
    if (k == 0)
        for (k = 0; k < 64; k++)
            sizes[k] = 16 * (size_t)(k + 1);   /* 16, 32, ..., 1024 */
    int j = 0;
    for (long i = 0; i < n; i++) {
        char *p = malloc(sizes[j]);
        *(volatile char *)p = (char)i;         /* touch the block */
        vsink = p;                             /* p escapes: the pair stays */
        free(p);
        if (++j == k)
            j = 0;
    }
    return 0;
}
CEOF
cc -O2 -no-pie -fno-pie -fplt -fno-builtin -o "$TMP/loop" "$TMP/loop.c"

# PLT stub addresses, named by callgrind "0x%016x [PLT]".
plt_addr() {
    objdump -d "$TMP/loop" | awk -v s="<$1@plt>:" '$2 == s && !done { print $1; done = 1 }'
}
MALLOC_PLT="$(plt_addr malloc)"
FREE_PLT="$(plt_addr free)"
if [ -z "$MALLOC_PLT" ] || [ -z "$FREE_PLT" ]; then
    echo "fastpath-instructions.sh: no malloc@plt/free@plt in the test program" >&2
    exit 2
fi
MALLOC_FN="$(printf '0x%016x [PLT]' "0x$MALLOC_PLT")"
FREE_FN="$(printf '0x%016x [PLT]' "0x$FREE_PLT")"

# Prints "malloc_incl malloc_calls free_incl free_calls libc_self" for one callgrind
# run; libc_self is the self cost (Ir) of all the code in object $4 (libc.so.6),
# which tells whether glibc's malloc did the work instead of the preloaded one.
measure() { # $1 = LD_PRELOAD value ("" for glibc), $2 = iterations, $3 = tag, $4 = object
    local out="$TMP/cg.$3.$2.out" log="$TMP/vg.$3.$2.log"
    if ! LD_PRELOAD="$1" valgrind --tool=callgrind --skip-plt=no \
            --compress-strings=no --compress-pos=no --dump-line=no \
            --callgrind-out-file="$out" "$TMP/loop" "$2" "${SIZE_ARGS[@]}" \
            >"$log" 2>&1 </dev/null; then
        echo "valgrind failed for $3:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
    # ld.so only warns when a preload fails, and the run goes on with glibc.
    if grep -q 'from LD_PRELOAD cannot be preloaded' "$log"; then
        grep 'from LD_PRELOAD cannot be preloaded' "$log" | head -n 1 >&2
        return 1
    fi
    # Call edges: "cfn=<callee>", "calls=<count> <target pos>", then the
    # inclusive cost line "<pos> <Ir>"; only edges out of main are summed.
    # Other cost lines "<pos> <Ir>" are self costs of the current ob=/fn=.
    awk -v mfn="$MALLOC_FN" -v ffn="$FREE_FN" -v obj="$4" '
        /^ob=/  { ob = substr($0, 4); next }
        /^fn=/  { fn = substr($0, 4); next }
        /^cfn=/ { cfn = substr($0, 5); next }
        /^calls=/ {
            split(substr($0, 7), c, " ")
            callee = (fn == "main") ? cfn : ""
            if ((getline) <= 0) exit
            if (callee == mfn) { mi += $2; mc += c[1] }
            if (callee == ffn) { fi += $2; fc += c[1] }
            next
        }
        /^[0-9+*-]/ { if (ob == obj) self += $2 }
        END { printf "%d %d %d %d %d\n", mi, mc, fi, fc, self }
    ' "$out"
}

NAMES=(); LIBS=()
add() { NAMES+=("$1"); LIBS+=("$2"); }

OX="${OXMALLOC_LIB:-$ROOT/target/release/liboxmalloc.so}"
if [ -f "$OX" ]; then add oxmalloc "$(realpath "$OX")"; else note "oxmalloc skipped: $OX not found (cargo build --release)"; fi
add glibc ""
for peer in "jemalloc:libjemalloc.so.2" "mimalloc:libmimalloc.so.2" "tcmalloc:libtcmalloc_minimal.so.4"; do
    name="${peer%%:*}"; so="$LIBDIR/${peer#*:}"
    if [ -f "$so" ]; then add "$name" "$so"; else note "$name skipped: $so not installed (scripts/install-deps.sh --peers)"; fi
done

rows=()
failed=0
for i in "${!NAMES[@]}"; do
    name="${NAMES[$i]}"; lib="${LIBS[$i]}"
    libc="$(realpath "$LIBDIR/libc.so.6")"
    if ! r1="$(measure "$lib" $((W + N)) "$name" "$libc")" ||
       ! r2="$(measure "$lib" $((W + 2 * N)) "$name" "$libc")"; then
        note "$name: measurement failed"; failed=1; continue
    fi
    read -r a0 a1 a2 a3 a4 <<<"$r1"
    read -r b0 b1 b2 b3 b4 <<<"$r2"
    if [ "$((b1 - a1))" -ne "$N" ] || [ "$((b3 - a3))" -ne "$N" ]; then
        note "$name: expected $N more calls, callgrind saw malloc +$((b1 - a1)), free +$((b3 - a3))"
        failed=1; continue
    fi
    # Did the allocator measured do the work? For glibc, most of the extra
    # instructions run in libc.so.6; for a preloaded allocator, most must not (a
    # library that loads but does not interpose malloc leaves glibc doing it). The
    # code's object cannot be required instead: tcmalloc's malloc, in a section of
    # its own, shows up in callgrind as object "???".
    in_libc=$(( 2 * (b4 - a4) >= (b0 - a0 + b2 - a2) ))
    if [ -z "$lib" ] && [ "$in_libc" = 0 ]; then
        note "$name: malloc/free did not run in $libc (is something preloaded?)"
        failed=1; continue
    fi
    if [ -n "$lib" ] && [ "$in_libc" = 1 ]; then
        note "$name: malloc/free ran in glibc, not in $lib (does it export malloc/free?)"
        failed=1; continue
    fi
    rows+=("$name $((b0 - a0)) $((b2 - a2)) $N ${lib:--}")
done

if [ "$JSON" = 1 ]; then
    printf '%s\n' "${rows[@]}" | awk -v n="$N" -v w="$W" -v sz="$SIZES_DESC" '
        BEGIN {
            printf "{\"method\":\"callgrind inclusive Ir of main->malloc@plt and main->free@plt, (run(W+2N)-run(W+N))/N, PLT jump included\","
            printf "\"sizes\":\"%s\",\"iters\":%d,\"warmup\":%d,\"results\":[", sz, n, w
        }
        NF {
            printf "%s{\"allocator\":\"%s\",\"lib\":\"%s\",\"malloc\":%.2f,\"free\":%.2f,\"total\":%.2f}",
                (k++ ? "," : ""), $1, ($5 == "-" ? "" : $5), $2 / $4, $3 / $4, ($2 + $3) / $4
        }
        END { print "]}" }'
else
    echo "instructions per malloc+free pair; sizes $SIZES_DESC, cycled; 1 thread; callgrind; N=$N"
    printf '%s\n' "${rows[@]}" | awk '
        BEGIN { printf "%-10s %9s %9s %9s\n", "allocator", "malloc", "free", "total" }
        NF    { printf "%-10s %9.1f %9.1f %9.1f\n", $1, $2 / $4, $3 / $4, ($2 + $3) / $4 }'
    echo "(each part includes its PLT jump; the loop's own instructions are excluded)"
fi

[ "$failed" = 0 ] || exit 2
exit 0
