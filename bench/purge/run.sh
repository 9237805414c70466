#!/usr/bin/env bash
# Runs the issue-5 memory-return workloads (bench/purge/phases.c) under
# glibc, rjem, jemalloc 5.3 and mimalloc, counting madvise/munmap calls with
# strace in a separate run (strace slows the program down).
# usage: bench/purge/run.sh [churn messages]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
cc -O2 -pthread -o target/phases bench/purge/phases.c
L=/usr/lib/x86_64-linux-gnu
for a in glibc rjem jemalloc mimalloc; do
  case $a in
    glibc) lib= ;;
    rjem) lib=$PWD/target/release/librjem_capi.so ;;
    jemalloc) lib=$L/libjemalloc.so.2 ;;
    mimalloc) lib=$L/libmimalloc.so.2 ;;
  esac
  [ -z "$lib" ] || [ -e "$lib" ] || { echo "== $a: not installed"; continue; }
  echo "== $a"
  for mode in idle grow; do LD_PRELOAD=$lib target/phases $mode | sed "s/^/$mode /"; done
  LD_PRELOAD=$lib target/phases churn16k "$N" | sed 's/^/churn16k /'
  if command -v strace >/dev/null; then
    LD_PRELOAD=$lib strace -f -c -e trace=madvise,munmap -o target/strace.txt target/phases churn16k "$N" >/dev/null
    awk '/madvise|munmap/ {print "churn16k syscalls_" $NF, $4}' target/strace.txt
    LD_PRELOAD=$lib strace -f -c -e trace=madvise,munmap -o target/strace.txt target/phases grow >/dev/null
    awk '/madvise|munmap/ {print "grow syscalls_" $NF, $4}' target/strace.txt
  fi
done
