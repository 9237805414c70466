#!/usr/bin/env bash
# Installs what `rjem bench` compares rjem with. Same as `rjem bench --install`
# (crates/rjem-cli/src/bench/peers.rs has the same flags; a test keeps them
# equal):
#
# 1. From Debian's packages (needs root; without it, prints the command):
#    jemalloc 5.3 (libjemalloc2), mimalloc 2.0.9 (libmimalloc2.0), tcmalloc
#    (libtcmalloc-minimal4), and valgrind for `rjem bench --instructions`.
# 2. Current mimalloc v3 (also its secure build, MI_SECURE=4) and v2 and
#    snmalloc (no root needed), built for
#    LD_PRELOAD from the sources the crates.io crates libmimalloc-sys and
#    snmalloc-sys bundle, at the versions in bench/rust-workloads/Cargo.lock:
#    `cargo metadata` fetches them, cc and c++ compile them as their CMake
#    builds do into target/bench/peers/lib{mimalloc3,mimalloc3-secure,
#    mimalloc2,snmalloc}.so,
#    each with NAME.version (what was built) and NAME.build (the command).
#
# Needs cargo, a C compiler ($CC, else cc) and a C++ compiler ($CXX, else
# c++). Exits 2 if any step could not be done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/target/bench/peers
CARGO=${CARGO:-cargo}
CC=${CC:-cc}
CXX=${CXX:-c++}
status=0

# --- 1. Debian packages -----------------------------------------------------
pkgs=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 valgrind)
missing=()
for p in "${pkgs[@]}"; do
  s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $s == *" installed" ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-peers: Debian packages already installed: ${pkgs[*]}" >&2
elif [ "$(id -u)" = 0 ]; then
  echo "install-peers: apt-get update && apt-get install -y ${missing[*]}" >&2
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }; then
    echo "install-peers: apt-get failed" >&2
    status=2
  fi
else
  echo "install-peers: the Debian packages ${missing[*]} need root; run:" >&2
  echo "  sudo sh -c 'apt-get update && apt-get install -y ${missing[*]}'" >&2
  status=2
fi

# --- 2. Current mimalloc and snmalloc from the crates' sources ---------------
# mimalloc's CMake shared library (release, default options, MI_OVERRIDE=ON)
# on Linux; src/static.c includes every source file.
MIMALLOC_FLAGS=(-O3 -DNDEBUG -fPIC -shared -DMI_BUILD_RELEASE
  -DMI_CMAKE_BUILD_TYPE=release -DMI_MALLOC_OVERRIDE -DMI_SHARED_LIB
  -DMI_SHARED_LIB_EXPORT -fvisibility=hidden -ftls-model=initial-exec
  -fno-builtin-malloc -Wno-unknown-pragmas -pthread)
# mimalloc's secure build (CMake MI_SECURE=ON, the mimalloc crate's
# `secure` feature): every mitigation.
MIMALLOC_SECURE_DEFINES=(-DMI_SECURE=4)
# snmalloc's CMake snmallocshim target (release, default options) on Linux
# with glibc, and the defines its configure checks produce there.
SNMALLOC_FLAGS=(-std=c++20 -O3 -DNDEBUG -fPIC -shared -fvisibility=hidden
  -fno-rtti -fomit-frame-pointer -ftls-model=initial-exec -ffunction-sections
  -DSNMALLOC_USE_WAIT_ON_ADDRESS=1 -DSNMALLOC_USE_CXX11_THREAD_ATEXIT_DIRECT
  '-DSNMALLOC_EXPORT=__attribute__((visibility("default")))'
  -DSNMALLOC_CHECK_LOADS=false -DSNMALLOC_PAGEID=false
  -DSNMALLOC_NO_REALLOCARRAY -DSNMALLOC_NO_REALLOCARR
  -DSNMALLOC_PLATFORM_HAS_GETENTROPY -DSNMALLOC_PTHREAD_ATFORK_WORKS
  -DSNMALLOC_HAS_LINUX_RANDOM_H -DSNMALLOC_HAS_LINUX_FUTEX_H
  -DMALLOC_USABLE_SIZE_QUALIFIER=const)
SNMALLOC_X86_64_FLAGS=(-mcx16 -mprfchw)
SNMALLOC_LINK_FLAGS=(-static-libstdc++ -Wl,--no-undefined -pthread)

fail() {
  echo "install-peers: $*" >&2
  exit 2
}
for t in "$CARGO" "$CC" "$CXX"; do
  "$t" --version >/dev/null 2>&1 || fail "cannot run '$t' (cargo, \$CC and \$CXX are needed)"
done
manifest=$root/bench/rust-workloads/Cargo.toml
echo "install-peers: fetching libmimalloc-sys and snmalloc-sys (cargo metadata --locked --manifest-path $manifest)" >&2
meta=$("$CARGO" metadata --format-version 1 --all-features --locked --manifest-path "$manifest") ||
  fail "cargo metadata failed (it fetches the crates from crates.io)"

# The one registry directory NAME-VERSION of a crate in cargo metadata's output.
crate_dir() {
  local dirs
  dirs=$(grep -o "\"manifest_path\":\"[^\"]*/$1-[0-9][^\"/]*/Cargo.toml\"" <<<"$meta" |
    sed -e 's/^"manifest_path":"//' -e 's|/Cargo.toml"$||' | sort -u)
  [ -n "$dirs" ] || fail "cargo metadata lists no $1 package"
  [ "$(wc -l <<<"$dirs")" = 1 ] || fail "cargo metadata lists several $1 packages"
  echo "$dirs"
}
mkdir -p "$out"

# build NAME COMMAND...: runs the compiler writing a temporary file, keeps
# the command and its output in NAME.build, then moves the library in place.
build() {
  local name=$1
  shift
  local tmp=$out/.lib$name.so.$$
  echo "install-peers: building $name ($(cat "$out/.$name.version.new"))..." >&2
  if ! "$@" -o "$tmp" >"$out/.$name.log" 2>&1; then
    { echo "$* -o $out/lib$name.so"; cat "$out/.$name.log"; } >"$out/$name.build"
    rm -f "$tmp" "$out/.$name.log" "$out/.$name.version.new"
    fail "building $name failed (see $out/$name.build)"
  fi
  { echo "$* -o $out/lib$name.so"; cat "$out/.$name.log"; } >"$out/$name.build"
  rm -f "$out/.$name.log"
  mv "$tmp" "$out/lib$name.so"
  mv "$out/.$name.version.new" "$out/$name.version"
  echo "$name $out/lib$name.so: $(cat "$out/$name.version")"
}

mi=$(crate_dir libmimalloc-sys)
mi_crate=${mi##*/libmimalloc-sys-}
for v in 3 2; do
  src=$mi/c_src/mimalloc/v$v
  n=$(awk '$1 == "#define" && $2 == "MI_MALLOC_VERSION" { print $3 }' "$src/include/mimalloc.h")
  [ -n "$n" ] || fail "no MI_MALLOC_VERSION in $src"
  echo "mimalloc $((n / 10000)).$((n / 100 % 100)).$((n % 100)) (sources of libmimalloc-sys $mi_crate)" >"$out/.mimalloc$v.version.new"
  build "mimalloc$v" "$CC" "${MIMALLOC_FLAGS[@]}" -I "$src/include" "$src/src/static.c"
  if [ "$v" = 3 ]; then
    echo "mimalloc $((n / 10000)).$((n / 100 % 100)).$((n % 100)) (sources of libmimalloc-sys $mi_crate, MI_SECURE=4)" >"$out/.mimalloc3-secure.version.new"
    build mimalloc3-secure "$CC" "${MIMALLOC_FLAGS[@]}" "${MIMALLOC_SECURE_DEFINES[@]}" \
      -I "$src/include" "$src/src/static.c"
  fi
done

sn=$(crate_dir snmalloc-sys)
sn_crate=${sn##*/snmalloc-sys-}
commit=$(sed -n 's/.*"sha1": *"\([0-9a-f]\{12\}\).*/\1/p' "$sn/.cargo_vcs_info.json" 2>/dev/null || true)
if [ -n "$commit" ]; then
  echo "snmalloc from snmalloc-sys $sn_crate (microsoft/snmalloc commit $commit)" >"$out/.snmalloc.version.new"
else
  echo "snmalloc from snmalloc-sys $sn_crate" >"$out/.snmalloc.version.new"
fi
flags=("${SNMALLOC_FLAGS[@]}")
if [ "$(uname -m)" = x86_64 ]; then
  flags+=("${SNMALLOC_X86_64_FLAGS[@]}")
fi
build snmalloc "$CXX" "${flags[@]}" -I "$sn/upstream/src" \
  "$sn/upstream/src/snmalloc/override/malloc.cc" "$sn/upstream/src/snmalloc/override/new.cc" \
  "${SNMALLOC_LINK_FLAGS[@]}"
exit $status
