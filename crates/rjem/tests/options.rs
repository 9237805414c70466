//! Options as users see them: the README's option list is generated from
//! the option table (`rjem::ctl::options()`), and `opt.<name>` reads every
//! implemented option with its jemalloc type.
//!
//! After changing the table, `RJEM_BLESS=1 cargo test -p rjem --test
//! options` rewrites the README's list.

use rjem::ctl::{self, OptionValue, Type, Value};
use std::path::Path;
use std::process::Command;

#[global_allocator]
static GLOBAL: rjem::Rjem = rjem::Rjem;

const BEGIN: &str =
    "<!-- options: generated from the option table by crates/rjem/tests/options.rs -->\n";
const END: &str = "<!-- end of options -->\n";

/// The README section for the table as it is now.
fn generated() -> String {
    let mut s = String::from(BEGIN);
    s.push_str("| option | default | what it does | changed at run time by |\n|---|---|---|---|\n");
    let mut ignored = Vec::new();
    for o in ctl::options() {
        if !o.implemented {
            ignored.push(format!("`{}`", o.name));
            continue;
        }
        let d = o
            .default
            .map_or("(sets another)".to_string(), |d| d.to_string());
        let rt = o.runtime.map_or(String::new(), |r| format!("`{r}`"));
        s.push_str(&format!("| `{}` | {d} | {} | {rt} |\n", o.name, o.doc));
    }
    s.push_str(&format!(
        "\nAccepted for compatibility and ignored, with a warning: {}.\n",
        ignored.join(", ")
    ));
    s.push_str(END);
    s
}

#[test]
fn readme_lists_the_option_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no generated option list (markers missing)");
    };
    let want = generated();
    let have = &readme[b..e + END.len()];
    if have != want {
        if std::env::var_os("RJEM_BLESS").is_some() {
            let new = format!("{}{}{}", &readme[..b], want, &readme[e + END.len()..]);
            std::fs::write(&path, new).unwrap();
            return;
        }
        panic!("README.md's option list is stale; run with RJEM_BLESS=1 to rewrite it:\n{want}");
    }
}

#[test]
fn every_implemented_option_reads_as_opt() {
    let mut n = 0;
    for o in ctl::options() {
        let name = format!("opt.{}", o.name);
        let Some(value) = o.value else {
            // Ignored options and aliases have no opt.* name.
            assert_eq!(ctl::read(&name), Err(ctl::Error::NotFound), "{name}");
            continue;
        };
        n += 1;
        let v = ctl::read(&name).unwrap();
        assert_eq!(v, Value::from(value), "{name}");
        // jemalloc's C types: narenas and the cache sizes are unsigned,
        // decay times ssize_t, stats_interval int64_t.
        let want = match o.name {
            "narenas"
            | "tcache_nslots_small_min"
            | "tcache_nslots_small_max"
            | "tcache_nslots_large"
            | "lg_tcache_flush_small_div"
            | "lg_tcache_flush_large_div" => Type::U32,
            _ if matches!(value, OptionValue::Ms(_) | OptionValue::I64(_)) => Type::Isize,
            _ if matches!(value, OptionValue::Bool(_) | OptionValue::Unset) => Type::Bool,
            _ if matches!(value, OptionValue::Str(_)) => Type::Str,
            _ => Type::Usize,
        };
        assert_eq!(v.ty(), want, "{name}");
        // Options are read-only; run-time changes go through other names.
        assert_eq!(ctl::write(&name, v), Err(ctl::Error::Permission), "{name}");
        if let Some(rt) = o.runtime {
            assert_eq!(ctl::read(rt).map(|v| v.ty()), Ok(want), "{rt}");
        }
    }
    assert!(n >= 12, "{n} options");
    // narenas is resolved at start-up, as jemalloc does.
    assert!(matches!(ctl::read("opt.narenas"), Ok(Value::U32(n)) if n >= 1));
}

#[test]
fn confirm_conf_prints_the_settings_in_force() {
    if std::env::var_os("RJEM_CONFIRM_CHILD").is_some() {
        // The child: rjem started with the test harness; just leave.
        drop(std::hint::black_box(vec![1u8; 100]));
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "confirm_conf_prints_the_settings_in_force",
            "--test-threads=1",
        ])
        .env("RJEM_CONFIRM_CHILD", "1")
        .env(
            "MALLOC_CONF",
            "confirm_conf:true,narenas:3,tcache_max:0x1000",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "<rjem>: MALLOC_CONF: \"confirm_conf:true,narenas:3,tcache_max:0x1000\"",
        "<rjem>: -- narenas:3\n",
        "<rjem>: -- tcache_max:4096\n",
        "<rjem>: -- tcache:true (default)",
        "<rjem>: -- dirty_decay_ms:10000 (default)",
        "<rjem>: -- background_thread:unset (default)",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // Every implemented option is printed, nothing else.
    let lines = err.lines().filter(|l| l.starts_with("<rjem>: -- ")).count();
    assert_eq!(
        lines,
        ctl::options().filter(|o| o.default.is_some()).count()
    );
}

#[test]
fn stats_options_print_from_rust_programs() {
    if std::env::var_os("RJEM_STATS_CHILD").is_some() {
        assert_eq!(ctl::read("opt.stats_print"), Ok(Value::Bool(true)));
        assert_eq!(ctl::read("opt.stats_print_opts"), Ok(Value::Str(c"Jg")));
        assert_eq!(ctl::read("opt.stats_interval"), Ok(Value::Isize(1 << 20)));
        assert_eq!(
            ctl::read("opt.stats_interval_opts"),
            Ok(Value::Str(c"gmal"))
        );
        // About 4 MiB in large blocks: the Rust front's slow path polls.
        for _ in 0..64 {
            drop(std::hint::black_box(vec![1u8; 64 << 10]));
        }
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "stats_options_print_from_rust_programs",
            "--test-threads=1",
        ])
        .env("RJEM_STATS_CHILD", "1")
        .env(
            "MALLOC_CONF",
            "stats_print:true,stats_print_opts:Jg,stats_interval:1048576,stats_interval_opts:gmal",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // The interval reports (text, general section left out), then the
    // exit report (JSON) last.
    let n = err.matches("___ Begin jemalloc statistics ___").count();
    assert!((3..=8).contains(&n), "{n} interval reports:\n{err}");
    assert!(!err.contains("Version:"), "{err}");
    let json = err
        .rfind("{\"jemalloc\":{")
        .expect("an exit report in JSON");
    assert!(err[json..].trim_end().ends_with('}'), "{err}");
    assert_eq!(err.matches("{\"jemalloc\":{").count(), 1);
}
