fn main() {
    rjem_bench::run("system");
}
