//! C programs against librjem: every exported function and flag (linked
//! shared, linked static, and preloaded), threads, process lifecycle edges
//! and C++.

mod common;
use common::*;

#[test]
fn api_linked_shared() {
    let exe = build("api.c", Link::Shared);
    let out = ok(&run(&exe, &[], false, &[]), "api (linked)");
    assert!(out.contains(" passed, 0 failed"), "{out}");
    // Preloaded as well: the dynamic linker resolves everything to one copy.
    let out = ok(&run(&exe, &[], true, &[]), "api (linked + preloaded)");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn api_with_unusual_options() {
    // Options that move the huge-arena and cache boundaries around must not
    // change behaviour.
    let exe = build("api.c", Link::Shared);
    for conf in [
        "oversize_threshold:1",
        "oversize_threshold:4096,tcache_max:8388608",
        "tcache:false,narenas:1",
        "dirty_decay_ms:0,muzzy_decay_ms:0",
        "dirty_decay_ms:100,muzzy_decay_ms:100,background_thread:true",
        "retain:false,dirty_decay_ms:0",
    ] {
        let out = ok(&run(&exe, &[], false, &[("MALLOC_CONF", conf)]), conf);
        assert!(out.contains(" passed, 0 failed"), "{conf}: {out}");
    }
}

#[test]
fn api_linked_static() {
    let exe = build("api.c", Link::Static);
    let out = ok(&run(&exe, &[], false, &[]), "api (static)");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn producer_consumer_preloaded() {
    let exe = build("prodcons.c", Link::None);
    let out = ok(&run(&exe, &[], true, &[]), "prodcons");
    assert!(out.contains("corrupted 0"), "{out}");
}

#[test]
fn lifecycle_edges_preloaded() {
    let exe = build("lifecycle.c", Link::None);
    let out = ok(&run(&exe, &[], true, &[]), "lifecycle");
    assert!(out.contains("lifecycle ok"), "{out}");
    // Also with the thread cache off and a single arena.
    let out = ok(
        &run(
            &exe,
            &[],
            true,
            &[("MALLOC_CONF", "tcache:false,narenas:1")],
        ),
        "lifecycle",
    );
    assert!(out.contains("lifecycle ok"), "{out}");
}

#[test]
fn racing_first_allocations_and_dlopen() {
    let plugin = build_shared_object("plugin.c");
    let exe = build("racestart.c", Link::None);
    for _ in 0..5 {
        let out = ok(
            &run(&exe, &[plugin.to_str().unwrap()], true, &[]),
            "racestart",
        );
        assert!(out.contains("racestart ok"), "{out}");
    }
}

#[test]
fn cxx_new_delete() {
    let exe = build("cxx.cpp", Link::None);
    let out = ok(&run(&exe, &[], true, &[]), "cxx (preloaded)");
    assert!(out.contains("cxx ok"), "{out}");
    let exe = build("cxx.cpp", Link::Shared);
    let out = ok(&run(&exe, &[], false, &[]), "cxx (linked)");
    assert!(out.contains("cxx ok"), "{out}");
}

#[test]
fn sized_free_mismatch_is_fatal() {
    let exe = build("sized_mismatch.c", Link::Shared);
    let o = run(&exe, &[], false, &[]);
    let err = text(&o.stderr);
    assert!(!o.status.success() && !text(&o.stdout).contains("not detected"));
    assert!(
        err.contains("<rjem>: sized free with a size that does not match"),
        "{err}"
    );
}

#[test]
fn bad_malloc_conf_is_reported_by_name() {
    let exe = build("prodcons.c", Link::None);
    let o = run(
        &exe,
        &[],
        true,
        &[("MALLOC_CONF", "narenas:zero,tcache:true")],
    );
    ok(&o, "prodcons with a bad option");
    assert!(text(&o.stderr).contains("<rjem>: Invalid conf value: narenas:zero"));
}

#[test]
fn mallctl_from_c() {
    // Linked shared, linked static, and linked and preloaded.
    for (link, preload) in [
        (Link::Shared, false),
        (Link::Static, false),
        (Link::Shared, true),
    ] {
        let exe = build("mallctl.c", link);
        let out = ok(&run(&exe, &[], preload, &[]), "mallctl");
        assert!(out.contains(" passed, 0 failed"), "{out}");
    }
}
