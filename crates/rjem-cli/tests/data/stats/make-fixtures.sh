#!/usr/bin/env bash
# Regenerates the statistics fixtures: builds each program in programs/,
# runs it on Debian's jemalloc 5.3 and on rjem with MALLOC_CONF set to
# provoke its condition plus stats_print:true, and keeps the report printed
# at exit as NAME.ALLOCATOR.txt and (stats_print_opts:J) NAME.ALLOCATOR.json.
# Usage: make-fixtures.sh [--only jemalloc|rjem] [--lib LIBRJEM] [NAME...]
#   --only  one allocator's fixtures (e.g. rjem's after a change to rjem)
#   --lib   rjem's library (default target/release/librjem_capi.so; build
#           it with `cargo build --release -p rjem-capi`)
#   NAME    only these programs (default: all of programs/*.c)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../../.." && pwd)"
allocs="jemalloc rjem"
rjem="$root/target/release/librjem_capi.so"
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
usage() { echo "make-fixtures.sh: $1" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --only)
      case "${2:-}" in
        jemalloc | rjem) allocs="$2" ;;
        *) usage "--only takes jemalloc or rjem" ;;
      esac
      shift 2 ;;
    --lib) [ -n "${2:-}" ] || usage "--lib takes a path"; rjem="$2"; shift 2 ;;
    -*) usage "unknown option $1" ;;
    *) break ;;
  esac
done
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for src in "$here"/programs/*.c; do names+=("$(basename "$src" .c)"); done
fi
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
# stats_print_opts letters a program's reports leave out: the programs with
# many arenas skip mutex (x) and large-class (l) tables, which no rule
# reads, to keep the files small (the others keep the full report).
omit_of() {
  case "$1" in
    arenas | tcache) echo "xl" ;;
    *) echo "" ;;
  esac
}
for name in "${names[@]}"; do
  src="$here/programs/$name.c"
  [ -f "$src" ] || usage "no program $src"
  cc -O2 -pthread -o "$tmp/$name" "$src"
  conf="$(conf_of "$name")"
  for alloc in $allocs; do
    lib="$jemalloc"
    [ "$alloc" = rjem ] && lib="$rjem"
    for form in txt json; do
      letters="$(omit_of "$name")"
      [ "$form" = json ] && letters="J$letters"
      opts="stats_print:true"
      [ -n "$letters" ] && opts="$opts,stats_print_opts:$letters"
      [ -n "$conf" ] && opts="$conf,$opts"
      LD_PRELOAD="$lib" MALLOC_CONF="$opts" "$tmp/$name" \
        >/dev/null 2>"$here/$name.$alloc.$form"
      echo "$name.$alloc.$form ($opts): $(wc -c <"$here/$name.$alloc.$form") bytes"
    done
  done
done
