//! The core's modules form layers: every `crate::` import points to a
//! module of a lower layer, so there is no import cycle and a lower module
//! never calls up. A new module gets a place in `LAYERS`; an import that
//! points up fails here with the offending pair.

use std::collections::BTreeMap;
use std::path::Path;

/// Top to bottom; a module may import only modules of later rows.
const LAYERS: &[&[&str]] = &[
    &["lib", "ffi"],
    &["report"],
    &["ctl"],
    &["stats"],
    &["api"],
    &["init"],
    &["conf"],
    &["profiler"],
    &["tsd"],
    &["background", "tcache"],
    &["arena"],
    &["bin"],
    &["slab", "pages"],
    &["decay", "emap", "ehooks"],
    &["extent"],
    &["base"],
    &["size_class", "sync"],
    &["os"],
];

/// Module name -> source text of its files (tests excluded, as they may
/// reach anywhere).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap();
            let top = rel.iter().next().unwrap().to_string_lossy();
            let name = top.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            mods.entry(name).or_insert_with(String::new).push_str(&text);
        }
    }
    mods
}

/// The modules `text` names through `crate::` (paths and `use` groups).
fn imports(text: &str, known: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|g| g.trim().split("::").next().unwrap_or(""))
                .collect()
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            vec![&rest[..end]]
        };
        for n in names {
            if known.contains_key(n) && !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    out
}

#[test]
fn imports_point_down_only() {
    let mods = modules();
    let layer = |m: &str| LAYERS.iter().position(|row| row.contains(&m));
    let mut wrong = Vec::new();
    for (m, text) in &mods {
        let Some(lm) = layer(m) else {
            wrong.push(format!("module `{m}` has no place in LAYERS"));
            continue;
        };
        for dep in imports(text, &mods) {
            if dep == *m {
                continue;
            }
            match layer(&dep) {
                Some(ld) if ld > lm => {}
                _ => wrong.push(format!("`{m}` imports `{dep}`, which is not below it")),
            }
        }
    }
    for row in LAYERS {
        for m in *row {
            if !mods.contains_key(*m) {
                wrong.push(format!("LAYERS names `{m}`, which is not a module"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_imports() {
    let mut known = BTreeMap::new();
    for m in ["arena", "os", "tsd"] {
        known.insert(m.to_string(), String::new());
    }
    let got = imports(
        "use crate::arena::{self, Arena};\nuse crate::{os, tsd::get};\nfn f() { crate::os::x() }",
        &known,
    );
    assert_eq!(got, ["arena", "os", "tsd"]);
}
