//! fork() from a multi-threaded process: the child can allocate and free
//! (on several threads), whatever locks the parent's threads held.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

fn churn(n: usize, seed: usize) -> usize {
    let mut v: Vec<Vec<u8>> = Vec::new();
    let mut sum = 0;
    for i in 0..n {
        let size = 1 + (i * 7919 + seed) % 40_000;
        let b = vec![(i % 253) as u8; size];
        sum += b[size / 2] as usize;
        v.push(b);
        if v.len() > 64 {
            let b = v.swap_remove((i * 31) % v.len());
            assert!(b.iter().all(|&x| x == b[0]));
        }
    }
    sum
}

#[test]
fn fork_while_threads_allocate() {
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += churn(500, t);
                }
                n
            })
        })
        .collect();
    // One more thread refreshes and reads the statistics all the time, so
    // forks also land while it holds their locks.
    let s = stop.clone();
    workers.push(thread::spawn(move || {
        let mut n = 1;
        while !s.load(Ordering::Relaxed) {
            rjem::ctl::write("epoch", rjem::ctl::Value::U64(1)).unwrap();
            n += rjem::ctl::read("stats.allocated").is_ok() as usize;
            let _ = rjem::ctl::read("stats.arenas.4096.small.nmalloc");
        }
        n
    }));
    for _ in 0..20 {
        // SAFETY: the child only allocates (through rjem), spawns threads
        // and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                // The child reads fresh statistics too.
                rjem::ctl::write("epoch", rjem::ctl::Value::U64(1)).unwrap();
                assert!(rjem::ctl::read("stats.allocated").is_ok());
                let a = churn(5000, 1);
                let hs: Vec<_> = (0..2)
                    .map(|t| thread::spawn(move || churn(3000, t)))
                    .collect();
                a + hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
            });
            unsafe { libc::_exit(if ok.is_ok() { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0);
    }
}
