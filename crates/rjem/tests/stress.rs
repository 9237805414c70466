//! Multi-threaded stress on rjem as the global allocator: 8 threads, sizes
//! from 1 byte to 4 MiB with assorted alignments, blocks handed to other
//! threads and freed there. Every block is filled with a pattern derived from
//! its address and size and checked before it is freed.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const THREADS: usize = 8;
const OPS: usize = 30_000;

mod common;
use common::Rng;

/// A block and its layout, movable between threads.
struct Block {
    ptr: *mut u8,
    layout: Layout,
}
unsafe impl Send for Block {}

fn pattern(addr: usize, size: usize, i: usize) -> u8 {
    let x = (addr as u64) ^ ((size as u64) << 17) ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ (x >> 29) ^ (x >> 47)) as u8
}

/// Fills the block; big blocks get the pattern on a sparse set of bytes
/// (every 61st plus both ends) to keep the test fast while still catching
/// overlap anywhere a page could be shared.
fn positions(size: usize) -> impl Iterator<Item = usize> {
    let step = if size > 65536 { 61 } else { 1 };
    (0..size).step_by(step).chain(size.saturating_sub(8)..size)
}

fn fill(b: &Block) {
    let (a, s) = (b.ptr as usize, b.layout.size());
    for i in positions(s) {
        unsafe { *b.ptr.add(i) = pattern(a, s, i) };
    }
}

fn check(b: &Block) {
    let (a, s) = (b.ptr as usize, b.layout.size());
    for i in positions(s) {
        let got = unsafe { *b.ptr.add(i) };
        assert_eq!(
            got,
            pattern(a, s, i),
            "corruption in block {a:#x} size {s} at {i}"
        );
    }
}

fn random_layout(r: &mut Rng) -> Layout {
    // Log-uniform sizes: most small, some large, a few up to 4 MiB.
    let lg = if r.below(50) == 0 {
        16 + r.below(7)
    } else {
        r.below(16)
    } as u32;
    let size = (1usize << lg) + r.below(1 << lg) as usize;
    let size = size.clamp(1, 4 << 20);
    let align = match r.below(10) {
        0..=5 => 8,
        6 => 1,
        7 => 16 << r.below(4), // 16..128
        8 => 4096,
        _ => 1 << (12 + r.below(5)), // 4 KiB .. 64 KiB
    };
    Layout::from_size_align(size, align).unwrap()
}

fn free_checked(b: Block) {
    check(&b);
    unsafe { dealloc(b.ptr, b.layout) };
}

#[test]
fn eight_threads_cross_thread_frees_with_content_checks() {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Block>()).unzip();
    let mut handles = Vec::new();
    for (t, rx) in rxs.into_iter().enumerate() {
        let next = txs[(t + 1) % THREADS].clone();
        handles.push(thread::spawn(move || {
            let mut r = Rng(0x1234_5678 + t as u64 * 7919);
            let mut live: Vec<Block> = Vec::new();
            for op in 0..OPS {
                // Free what other threads sent us.
                while let Ok(b) = rx.try_recv() {
                    free_checked(b);
                }
                match r.below(10) {
                    0..=4 => {
                        let layout = random_layout(&mut r);
                        let ptr = unsafe { alloc(layout) };
                        assert!(!ptr.is_null(), "allocation of {layout:?} failed");
                        assert_eq!(ptr as usize % layout.align(), 0);
                        let b = Block { ptr, layout };
                        fill(&b);
                        live.push(b);
                    }
                    5..=6 if !live.is_empty() => {
                        let i = r.below(live.len() as u64) as usize;
                        free_checked(live.swap_remove(i));
                    }
                    7 if !live.is_empty() => {
                        let i = r.below(live.len() as u64) as usize;
                        let b = live.swap_remove(i);
                        check(&b);
                        next.send(b).unwrap();
                    }
                    8 if !live.is_empty() => {
                        // Realloc keeps the common prefix.
                        let i = r.below(live.len() as u64) as usize;
                        let b = &mut live[i];
                        check(b);
                        let old = b.layout.size();
                        let new_size = random_layout(&mut r).size();
                        let p = unsafe { realloc(b.ptr, b.layout, new_size) };
                        assert!(!p.is_null());
                        for j in positions(old.min(new_size)).filter(|&j| j < old.min(new_size)) {
                            // The old pattern was keyed by the old address.
                            if positions(old).any(|k| k == j) {
                                assert_eq!(unsafe { *p.add(j) }, pattern(b.ptr as usize, old, j));
                            }
                            if j > 256 {
                                break;
                            }
                        }
                        b.ptr = p;
                        b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
                        fill(b);
                    }
                    _ => {}
                }
                if op % 1000 == 0 && live.len() > 1000 {
                    for b in live.drain(..500) {
                        free_checked(b);
                    }
                }
            }
            drop(next);
            // Drain: the ring of senders closes only when every thread ends,
            // so free what arrived and keep going until our sender side is
            // gone.
            for b in live {
                free_checked(b);
            }
            rx
        }));
    }
    drop(txs);
    let rxs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for rx in rxs {
        while let Ok(b) = rx.try_recv() {
            free_checked(b);
        }
    }
}
