#[global_allocator]
static A: rjem::Rjem = rjem::Rjem;
fn main() {
    rjem_bench::run("rjem");
}
