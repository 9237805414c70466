#!/usr/bin/env bash
# Installs what `rjem bench` compares rjem with, from Debian's packages:
# jemalloc 5.3 (libjemalloc2), mimalloc 2.0 (libmimalloc2.0), tcmalloc
# (libtcmalloc-minimal4), and valgrind for `rjem bench --instructions`.
# Same as `rjem bench --install`. Needs root.
set -euo pipefail
pkgs=(libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 valgrind)
if [ "$(id -u)" != 0 ]; then
  echo "run as root: apt-get update && apt-get install -y ${pkgs[*]}" >&2
  exit 2
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
