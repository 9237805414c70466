#!/usr/bin/env python3
"""Whole-program time and peak RSS of real programs on each allocator.

Runs python3, perl, gcc and git workloads (the ones the test suite checks
for identical output) under glibc, rjem, jemalloc 5.3, mimalloc and
tcmalloc (those installed), interleaved A B C D E, A B C D E, ... so machine
drift hits all alike, and prints the median wall time, CPU time and peak
RSS per workload and allocator, with ratios to jemalloc.

usage: bench/real_programs.py [--runs N] [--lib PATH_TO_librjem_capi.so]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [
    ("jemalloc", f"{LIBDIR}/libjemalloc.so.2"),
    ("mimalloc", f"{LIBDIR}/libmimalloc.so.2"),
    ("tcmalloc", f"{LIBDIR}/libtcmalloc_minimal.so.4"),
]

def workloads(tmp):
    scripts = os.path.join(ROOT, "crates/rjem-capi/tests/scripts")
    csrc = os.path.join(ROOT, "crates/rjem-capi/tests/c/api.c")
    inc = os.path.join(ROOT, "crates/rjem-capi/include")
    gitdir = os.path.join(tmp, "git")
    def git_setup():
        shutil.rmtree(gitdir, ignore_errors=True)
        os.makedirs(os.path.join(gitdir, "src"))
        for i in range(1000):
            with open(os.path.join(gitdir, "src", f"f{i:04}.txt"), "w") as f:
                f.write(f"file {i}\n" + "line\n" * (i % 50))
    git = ("sh", "-c", "git init -q -b main && git add . && git -c user.name=b -c user.email=b@x "
           "commit -q -m m && git log --stat >/dev/null && git gc -q")
    return [
        ("python-heavy", ["python3", os.path.join(scripts, "heavy.py")], None, None),
        ("perl-heavy", ["perl", os.path.join(scripts, "heavy.pl")], None, None),
        ("gcc-O2", ["gcc", "-O2", "-I", inc, "-c", csrc, "-o", os.path.join(tmp, "api.o")], None, None),
        ("git-1000-files", list(git), gitdir, git_setup),
    ]

def run_once(cmd, cwd, preload):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{cmd} failed with status {status} (preload {preload})")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--lib", default=os.path.join(ROOT, "target/release/librjem_capi.so"))
    a = ap.parse_args()
    allocs = [("glibc", None), ("rjem", a.lib)] + [(n, p) for n, p in PEERS if os.path.exists(p)]
    if not os.path.exists(a.lib):
        raise SystemExit(f"{a.lib} missing: cargo build --release -p rjem-capi")
    tmp = tempfile.mkdtemp(prefix="rjem-bench-")
    results = {}
    for name, cmd, cwd, setup in workloads(tmp):
        for r in range(a.runs):
            for alloc, lib in allocs:
                if setup:
                    setup()
                results.setdefault((name, alloc), []).append(run_once(cmd, cwd, lib))
            print(f"\r{name}: run {r + 1}/{a.runs}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    names = [n for n, _ in allocs]
    print("| workload | " + " | ".join(f"{n} wall s (x jemalloc)" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for w in dict.fromkeys(k[0] for k in results):
        med = {n: statistics.median(x[0] for x in results[(w, n)]) for n in names}
        base = med.get("jemalloc", med["glibc"])
        print(f"| {w} | " + " | ".join(f"{med[n]:.3f} ({med[n] / base:.2f})" for n in names) + " |")
    print()
    print("| workload | " + " | ".join(f"{n} peak RSS MiB" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for w in dict.fromkeys(k[0] for k in results):
        rss = {n: statistics.median(x[2] for x in results[(w, n)]) / 1024 for n in names}
        print(f"| {w} | " + " | ".join(f"{rss[n]:.1f}" for n in names) + " |")

if __name__ == "__main__":
    main()
