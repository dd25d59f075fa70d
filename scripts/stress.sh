#!/usr/bin/env bash
# Long stress of oxmalloc under LD_PRELOAD: many threads doing random malloc / calloc /
# realloc / aligned allocation / free with sizes up to 4 MiB, blocks handed between
# threads and freed there, threads exiting and replaced, and fork() every ~20 ms (the
# child checks and frees inherited blocks, allocates, starts a thread, exits 0). Every
# block's contents are checked. The program is tests/c/stress.c (see its header).
#
#   scripts/stress.sh [--seconds N] [--threads T] [--seed S] [--lib PATH]
#
# Defaults: 60 s, 8 threads, a seed from the clock (printed; pass it back to replay the
# same random choices, though thread timing differs). The library is --lib, else
# $OXMALLOC_LIB, else target/release/liboxmalloc.so (built with `cargo build --release`
# if missing); `--lib none` runs on glibc's malloc (a control of the program itself).
# The run is killed if it takes 60 s longer than asked (a hang).
#
# Prints the program's progress and its summary line
#   SUMMARY stress seconds=S threads=T seed=X ops=N forks=F exchanged=E thread_exits=R failures=K
# Exit status: 0 if the program exited 0 with failures=0, forks>0 and ops>0; 1 on any
# failure, crash or hang; 2 for a usage or build error.
set -u
cd "$(dirname "$0")/.."

seconds=60
threads=8
seed=$(date +%s)
lib=${OXMALLOC_LIB:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --lib) lib=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stress.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
case "$seconds$threads$seed" in *[!0-9]*) echo "stress.sh: --seconds, --threads and --seed take integers" >&2; exit 2 ;; esac

if [ -z "$lib" ]; then
  lib=$PWD/target/release/liboxmalloc.so
  if [ ! -f "$lib" ]; then
    echo "stress.sh: building $lib" >&2
    cargo build --release --lib >&2 || exit 2
  fi
fi
if [ "$lib" != none ] && [ ! -f "$lib" ]; then
  echo "stress.sh: no library at $lib" >&2
  exit 2
fi

out=target/oxmalloc-stress
mkdir -p "$out"
exe=$out/stress
if [ ! -x "$exe" ] || [ tests/c/stress.c -nt "$exe" ]; then
  ${CC:-cc} -O2 -g -Wall -pthread -o "$exe.tmp.$$" tests/c/stress.c && mv "$exe.tmp.$$" "$exe" || exit 2
fi

log=$out/stress-$seed.log
echo "stress: $seconds s, $threads threads, seed $seed, library ${lib} (log: $log)"
if [ "$lib" = none ]; then
  timeout -k 10 $((seconds + 60)) "$exe" "$seconds" "$threads" "$seed" 2>&1 | tee "$log"
else
  LD_PRELOAD=$lib timeout -k 10 $((seconds + 60)) "$exe" "$seconds" "$threads" "$seed" 2>&1 | tee "$log"
fi
status=${PIPESTATUS[0]}

summary=$(grep '^SUMMARY stress' "$log" | tail -1)
field() { printf '%s\n' "$summary" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "stress: FAILED: hung (killed after $((seconds + 60)) s)"
  exit 1
fi
if [ "$status" != 0 ] || [ -z "$summary" ] || [ "$(field failures)" != 0 ] || [ "$(field forks)" -le 0 ] || [ "$(field ops)" -le 0 ]; then
  echo "stress: FAILED (exit status $status${summary:+; $summary})"
  exit 1
fi
echo "stress: passed: ops=$(field ops) forks=$(field forks) exchanged=$(field exchanged) thread_exits=$(field thread_exits)"
