#!/usr/bin/env bash
# Regenerates the statistics fixtures: builds each program in programs/,
# runs it on Debian's jemalloc 5.3 and on rjem with MALLOC_CONF set to
# provoke its condition plus stats_print:true, and keeps the report printed
# at exit as NAME.ALLOCATOR.txt and (stats_print_opts:J) NAME.ALLOCATOR.json.
# Usage: make-fixtures.sh [--only jemalloc|rjem] [LIBRJEM]
# (default LIBRJEM: target/release/librjem_capi.so; build it with
# `cargo build --release -p rjem-capi`). --only regenerates one allocator's
# fixtures, e.g. rjem's after a change to rjem's statistics.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../../.." && pwd)"
allocs="jemalloc rjem"
if [ "${1:-}" = --only ]; then
  case "${2:-}" in
    jemalloc | rjem) allocs="$2" ;;
    *) echo "make-fixtures.sh: --only takes jemalloc or rjem" >&2; exit 2 ;;
  esac
  shift 2
fi
rjem="${1:-$root/target/release/librjem_capi.so}"
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# name and the MALLOC_CONF that provokes its condition
conf_of() {
  case "$1" in
    dirty) echo "dirty_decay_ms:-1,muzzy_decay_ms:-1" ;;
    arenas) echo "narenas:16" ;;
    tcache) echo "tcache_max:1048576" ;;
    madvise) echo "dirty_decay_ms:0,muzzy_decay_ms:0" ;;
    *) echo "" ;;
  esac
}
for src in "$here"/programs/*.c; do
  name="$(basename "$src" .c)"
  cc -O2 -pthread -o "$tmp/$name" "$src"
  conf="$(conf_of "$name")"
  for alloc in $allocs; do
    lib="$jemalloc"
    [ "$alloc" = rjem ] && lib="$rjem"
    for form in txt json; do
      opts="stats_print:true"
      [ "$form" = json ] && opts="$opts,stats_print_opts:J"
      [ -n "$conf" ] && opts="$conf,$opts"
      LD_PRELOAD="$lib" MALLOC_CONF="$opts" "$tmp/$name" \
        >/dev/null 2>"$here/$name.$alloc.$form"
      echo "$name.$alloc.$form ($opts): $(wc -c <"$here/$name.$alloc.$form") bytes"
    done
  done
done
