#!/usr/bin/env bash
# Installs librjem (shared and static), its headers, a pkg-config file and
# the `rjem` tool under PREFIX (default /usr/local), from a release build.
#
#   cargo build --release && scripts/install.sh [PREFIX]
#
# Then: cc prog.c $(pkg-config --cflags --libs rjem), or
#       rjem run -- PROGRAM (finds PREFIX/lib/librjem.so next to PREFIX/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
rel=target/release
# Cargo names the libraries after their crate (librjem_capi); they are
# installed as librjem.
for f in "$rel/librjem_capi.so" "$rel/librjem_capi.a" "$rel/rjem"; do
  [ -e "$f" ] || { echo "install.sh: $f missing: run cargo build --release first" >&2; exit 1; }
done
install -d "$prefix/lib/pkgconfig" "$prefix/include/jemalloc" "$prefix/bin"
install -m 755 "$rel/librjem_capi.so" "$prefix/lib/librjem.so"
install -m 644 "$rel/librjem_capi.a" "$prefix/lib/librjem.a"
install -m 755 "$rel/rjem" "$prefix/bin/rjem"
install -m 644 crates/rjem-capi/include/rjem.h "$prefix/include/rjem.h"
install -m 644 crates/rjem-capi/include/jemalloc/jemalloc.h "$prefix/include/jemalloc/jemalloc.h"
sed "s|@PREFIX@|$prefix|" crates/rjem-capi/rjem.pc.in > "$prefix/lib/pkgconfig/rjem.pc"
echo "installed rjem under $prefix"
