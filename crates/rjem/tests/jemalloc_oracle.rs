//! rjem's usable sizes equal jemalloc 5.3's `nallocx` for every size up to
//! 64 KiB and every class boundary above, at every alignment from 1 to
//! 2^24: Debian's libjemalloc2 is asked directly by a small C program.
//! In CI (`CI` set) the library must be present; elsewhere the test is
//! skipped with a message when it is not installed.

use std::path::Path;
use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const LIBJEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// Sizes to compare: all up to 64 KiB, then each class size and its
/// neighbours up to 2^44.
fn sizes() -> Vec<usize> {
    let mut v: Vec<usize> = (0..=65536).collect();
    // Each class above 64 KiB is the usable size of one past the previous.
    let mut s = rjem::nallocx(65537, 0);
    while s < (1 << 44) {
        v.extend([s - 1, s, s + 1]);
        s = rjem::nallocx(s + 1, 0);
    }
    v
}

#[test]
fn nallocx_matches_jemalloc() {
    if !Path::new(LIBJEMALLOC).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install libjemalloc2"
        );
        eprintln!("skipped: {LIBJEMALLOC} not installed (apt-get install libjemalloc2)");
        return;
    }
    if rjem::ctl::read("arenas.page") != Ok(rjem::ctl::Value::Usize(4096)) {
        eprintln!("skipped: jemalloc's classes are compared with 4 KiB pages");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rjem-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("oracle.c");
    let exe = dir.join("oracle");
    // Reads "size lg_align" lines, prints jemalloc's nallocx for each.
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <stddef.h>
size_t nallocx(size_t size, int flags);
int main(void) {
    unsigned long long s; int lg;
    while (scanf("%llu %d", &s, &lg) == 2)
        printf("%zu\n", nallocx((size_t)s, lg));
    return 0;
}
"#,
    )
    .unwrap();
    let ok = Command::new("cc")
        .arg("-O1")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(LIBJEMALLOC)
        .status()
        .expect("a C compiler (cc) is needed");
    assert!(ok.success());

    let mut input = String::new();
    let mut queries = Vec::new();
    for lg in 0..=24u32 {
        for &s in &sizes() {
            // jemalloc's nallocx is undefined for size 0; skip it.
            if s == 0 || (lg > 0 && s > (1 << 30)) {
                continue;
            }
            input.push_str(&format!("{s} {lg}\n"));
            queries.push((s, lg));
        }
    }
    let mut child = Command::new(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(input.as_bytes()).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let answers: Vec<usize> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(answers.len(), queries.len());
    let mut mismatches = 0;
    for (&(s, lg), &want) in queries.iter().zip(&answers) {
        let align = if lg == 0 { 0 } else { 1usize << lg };
        let got = rjem::nallocx(s, align);
        if got != want {
            mismatches += 1;
            if mismatches < 10 {
                eprintln!("size {s} align 2^{lg}: rjem {got}, jemalloc {want}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        mismatches,
        0,
        "{} of {} queries differ",
        mismatches,
        queries.len()
    );
    eprintln!(
        "{} (size, alignment) queries agree with jemalloc 5.3",
        queries.len()
    );
}
