"""Compares the keys of two malloc_stats_print JSON reports.

usage: json_keys.py JEMALLOC.json RJEM.json NOT_APPLICABLE...
Every key path jemalloc emits must be in rjem's report, unless it starts
with one of the NOT_APPLICABLE prefixes. Array elements share the path
`key[]`, arena numbers `stats.arenas.<i>`. Prints what is missing; exit 1
if anything is.
"""
import json
import sys


def paths(x, p, out):
    if isinstance(x, dict):
        for k, v in x.items():
            if p.endswith("stats.arenas") and (k.isdigit() or k == "merged"):
                k = "<i>"
            paths(v, f"{p}.{k}" if p else k, out)
    elif isinstance(x, list):
        for v in x:
            paths(v, p + "[]", out)
    else:
        out.add(p)
    return out


je = paths(json.load(open(sys.argv[1])), "", set())
rj = paths(json.load(open(sys.argv[2])), "", set())
skip = tuple(sys.argv[3:])
missing = sorted(k for k in je - rj if not k.startswith(skip))
for k in missing:
    print("missing:", k)
print(f"{len(je)} jemalloc keys, {len(rj)} rjem keys, {len(missing)} missing")
sys.exit(1 if missing else 0)
