//! Compiles the C++ operator new/delete shim (it needs the C++ runtime for
//! std::bad_alloc and the new-handler) into librjem.
fn main() {
    println!("cargo:rerun-if-changed=src/cxx.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/cxx.cpp")
        .flag_if_supported("-fvisibility=hidden")
        .compile("rjem_cxx");
}
