//! Redis, a real client of jemalloc's control interface, on rjem: Debian's
//! redis-server links libjemalloc and reads it through `mallctl`,
//! `malloc_stats_print` and `nallocx`. Preloaded with librjem, `INFO
//! memory`, `MEMORY MALLOC-STATS` and `MEMORY PURGE` must report and steer
//! rjem. The server listens on 127.0.0.1 only and is shut down at the end.

mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn cli(&self, args: &[&str]) -> String {
        let o = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.1.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        ok(&o, &format!("redis-cli {args:?}"))
    }

    /// A field of `INFO memory` once `ok(value)` holds: Redis refreshes
    /// its allocator figures in its timer (every 100 ms), so wait for them
    /// (at most 10 s).
    fn info_when(&self, field: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let t0 = Instant::now();
        loop {
            let v = self.info(field);
            if ok(v) || t0.elapsed() > Duration::from_secs(10) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A field of `INFO memory`.
    fn info(&self, field: &str) -> u64 {
        let info = self.cli(&["INFO", "memory"]);
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in INFO memory:\n{info}"));
        line.trim().parse().unwrap()
    }
}

fn start() -> Option<Server> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install redis-server and redis-tools"
        );
        eprintln!("skipped: redis-server not installed");
        return None;
    }
    // A free port on the loopback interface.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .env("LD_PRELOAD", lib())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let s = Server(child, port);
    let t0 = Instant::now();
    let ping = || {
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
    };
    while !ping() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "redis did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(s)
}

#[test]
fn redis_reports_and_steers_rjem() {
    let Some(s) = start() else { return };
    // The report Redis prints is rjem's own.
    let stats = s.cli(&["MEMORY", "MALLOC-STATS"]);
    assert!(
        stats.contains("___ Begin jemalloc statistics ___"),
        "{stats}"
    );
    assert!(stats.contains("Version: \"5.3.0-0-rjem\""), "{stats}");
    assert!(stats.contains("--- End jemalloc statistics ---"), "{stats}");

    // INFO memory reads rjem's statistics through mallctl, and they move
    // with the data set.
    let before = s.info("allocator_allocated");
    assert!(before > 0);
    s.cli(&[
        "EVAL",
        "for i=1,100000 do redis.call('SET','k'..i,string.rep('x',100)) end return 1",
        "0",
    ]);
    let allocated = s.info_when("allocator_allocated", |a| a > before + 10_000_000);
    let used = s.info("used_memory");
    let active = s.info("allocator_active");
    let resident = s.info("allocator_resident");
    assert!(allocated > before + 10_000_000, "{before} -> {allocated}");
    // Redis's own count of its blocks' usable sizes is within what the
    // allocator says is allocated, and jemalloc's relations hold.
    assert!(used <= allocated, "used {used} > allocated {allocated}");
    assert!(
        allocated <= active && active <= resident,
        "{allocated} {active} {resident}"
    );

    // Dropping the data returns the blocks; MEMORY PURGE purges through
    // arena.<narenas>.purge and succeeds.
    s.cli(&["FLUSHALL"]);
    let after = s.info_when("allocator_allocated", |a| a < allocated / 4);
    assert!(after < allocated / 4, "{allocated} -> {after}");
    assert_eq!(s.cli(&["MEMORY", "PURGE"]).trim(), "OK");
    let stats = s.cli(&["MEMORY", "MALLOC-STATS"]);
    let dirty = stats
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("dirty:"))
        .expect("a dirty decay line");
    let npages: u64 = dirty.split_whitespace().nth(1).unwrap().parse().unwrap();
    // The server keeps running (its cron and background threads free
    // blocks), so a slab or two may have turned dirty since the purge.
    assert!(
        npages <= 256,
        "dirty pages left after MEMORY PURGE: {dirty}"
    );
}
