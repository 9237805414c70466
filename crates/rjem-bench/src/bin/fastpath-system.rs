//! `fastpath-system N [box]`: the same loop on the system allocator.
fn main() {
    rjem_bench::fastpath_main();
}
