#!/usr/bin/env bash
# Installs (with apt-get) what oxmalloc's tests and benchmarks need on Debian 12.
#
#   scripts/install-deps.sh            # what `cargo test --release` needs
#   scripts/install-deps.sh --peers    # + peer allocators and benchmark tools
#
# Idempotent: every package is checked with dpkg first, so a machine that already
# has everything does no network access at all. `apt-get update` runs at most once,
# and only if something has to be installed.
#
# Exit status: non-zero only if a package the tests need (gcc, g++, libc6-dev, binutils,
# python3, perl) is still missing at the end. Missing optional packages (valgrind,
# peers, bench tools) are reported but do not fail the script.
set -uo pipefail

# Needed by `cargo test --release` (C test programs, helper scripts).
REQUIRED=(gcc g++ libc6-dev binutils python3 perl)
# Wanted by tests/scripts that count instructions; tests skip without them.
OPTIONAL=(valgrind)
# --peers: allocators to compare against and tools the benchmarks use.
PEERS=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 redis-server redis-tools hyperfine)

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

want_peers=0
for arg in "$@"; do
    case "$arg" in
        --peers) want_peers=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-deps.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "install-deps: $*"; }

is_installed() {
    # "install ok installed" only; "deinstall ok config-files" etc. count as missing.
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing_of() {
    local p
    for p in "$@"; do is_installed "$p" || echo "$p"; done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
    log "dpkg-query not found: this script only knows Debian/Ubuntu."
    # Best effort: check the commands the tests need.
    rc=0
    for c in gcc g++ ld python3 perl; do
        command -v "$c" >/dev/null 2>&1 || { log "missing required command: $c"; rc=1; }
    done
    exit $rc
fi

wanted=("${REQUIRED[@]}" "${OPTIONAL[@]}")
[ "$want_peers" = 1 ] && wanted+=("${PEERS[@]}")

mapfile -t todo < <(missing_of "${wanted[@]}")

if [ "${#todo[@]}" -eq 0 ]; then
    log "all ${#wanted[@]} packages already installed."
    exit 0
fi

log "to install: ${todo[*]}"

# Root, or sudo if we are not root and sudo exists.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        log "not root and no sudo: cannot install ${todo[*]}"
    fi
fi

apt_ok=1
if [ "$(id -u)" -eq 0 ] || [ "${#SUDO[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # One `apt-get update` first: on a fresh machine the lists may be missing or stale.
    if ! "${APT[@]}" update </dev/null; then
        log "apt-get update failed (continuing with the lists we have)"
    fi
    if ! "${APT[@]}" install --no-install-recommends "${todo[@]}" </dev/null; then
        apt_ok=0
        log "apt-get install of all at once failed; trying one package at a time"
        for p in "${todo[@]}"; do
            "${APT[@]}" install --no-install-recommends "$p" </dev/null >/dev/null 2>&1 \
                || log "  could not install $p"
        done
    fi
fi

# What is still missing decides the exit status.
mapfile -t miss_req < <(missing_of "${REQUIRED[@]}")
mapfile -t miss_opt < <(missing_of "${OPTIONAL[@]}")
miss_peer=()
[ "$want_peers" = 1 ] && mapfile -t miss_peer < <(missing_of "${PEERS[@]}")

if [ "${#miss_opt[@]}" -gt 0 ]; then
    log "WARNING: optional packages missing (instruction-count checks will be skipped): ${miss_opt[*]}"
fi
if [ "${#miss_peer[@]}" -gt 0 ]; then
    log "WARNING: peer/benchmark packages missing (those comparisons will be skipped): ${miss_peer[*]}"
fi
if [ "${#miss_req[@]}" -gt 0 ]; then
    log "ERROR: packages required by the tests are missing: ${miss_req[*]}"
    log "       install them by hand: apt-get install ${miss_req[*]}"
    exit 1
fi
[ "$apt_ok" = 1 ] && log "done." || log "done (with warnings)."
exit 0
