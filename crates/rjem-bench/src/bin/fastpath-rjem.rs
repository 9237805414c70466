//! `fastpath-rjem N [box]`: N small alloc+dealloc pairs on rjem, for
//! instruction counting under callgrind (run with N and with 0).
#[global_allocator]
static A: rjem::Rjem = rjem::Rjem;
fn main() {
    rjem_bench::fastpath_main();
}
