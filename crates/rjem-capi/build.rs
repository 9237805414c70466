//! Compiles the C half of C++ operator new (`src/cxx.c`) into librjem,
//! with unwind tables so that `std::bad_alloc` thrown by the C++ runtime
//! on its behalf passes through it.
fn main() {
    println!("cargo:rerun-if-changed=src/cxx.c");
    cc::Build::new()
        .file("src/cxx.c")
        .flag("-fexceptions")
        .flag_if_supported("-fvisibility=hidden")
        .compile("rjem_cxx");
}
