//! Repository-wide checks that no compiler lint covers (after TigerBeetle's `tidy.zig`).
//!
//! - crate layering: `warppool-hash`, `warppool-core` and `warppool-net` never depend on tokio;
//! - no unbounded channel anywhere in the workspace;
//! - lines of at most 100 columns in `hash/` and `core/`;
//! - no `unsafe` in `core/`, and no printing or `dbg!` in library code of `hash/` and `core/`;
//! - shape rules for every file (800 lines, 70-line functions, 100 columns) are in `shape.rs`.

use std::fs;
use std::path::Path;
use std::process::Command;

use warppool_tidy::{root, rust_files};

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[test]
fn hash_core_and_net_never_depend_on_tokio() {
    for krate in ["warppool-hash", "warppool-core", "warppool-net"] {
        let out = Command::new(env!("CARGO"))
            .current_dir(root())
            .args([
                "tree",
                "-p",
                krate,
                "-e",
                "normal,build",
                "--prefix",
                "none",
                "--offline",
            ])
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(
            tree.lines().any(|l| l.starts_with(krate)),
            "cargo tree did not list {krate}"
        );
        let bad: Vec<&str> = tree
            .lines()
            .filter(|l| l.starts_with("tokio ") || l.starts_with("tokio-") || l.starts_with("mio "))
            .collect();
        assert!(
            bad.is_empty(),
            "{krate} depends on an async runtime: {bad:?}"
        );
    }
}

#[test]
fn no_unbounded_channels() {
    let banned = [
        "unbounded(",         // crossbeam-channel, flume
        "unbounded_channel(", // tokio
        "mpsc::channel(",     // std: unbounded
        "unbounded_async(",
    ];
    let mut hits = Vec::new();
    for file in rust_files(&root()) {
        if file.starts_with(root().join("tidy")) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if banned.iter().any(|b| line.contains(b)) {
                hits.push(format!("{}:{}: {}", rel(&file), i + 1, line.trim()));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "unbounded channels are banned (STYLE rule 5):\n{}",
        hits.join("\n")
    );
}

#[test]
fn lines_at_most_100_columns_in_hash_and_core() {
    let mut hits = Vec::new();
    for dir in ["hash", "core"] {
        for file in rust_files(&root().join(dir)) {
            let text = fs::read_to_string(&file).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                let cols = line.chars().count();
                if cols > 100 {
                    hits.push(format!("{}:{} has {cols} columns", rel(&file), i + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "lines over 100 columns:\n{}",
        hits.join("\n")
    );
}

#[test]
fn library_code_of_hash_and_core_is_quiet_and_core_is_safe() {
    let mut hits = Vec::new();
    for dir in ["hash/src", "core/src"] {
        for file in rust_files(&root().join(dir)) {
            let text = fs::read_to_string(&file).unwrap_or_default();
            // Only library code: stop at the first test module.
            let lib = text.split("#[cfg(test)]").next().unwrap_or_default();
            for (i, line) in lib.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for banned in ["println!", "eprintln!", "print!(", "dbg!"] {
                    if code.contains(banned) {
                        hits.push(format!("{}:{}: {banned}", rel(&file), i + 1));
                    }
                }
                if dir == "core/src" && code.contains("unsafe") {
                    hits.push(format!("{}:{}: unsafe in core", rel(&file), i + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "banned in library code:\n{}",
        hits.join("\n")
    );
}

#[test]
fn every_limit_is_documented() {
    // limits.rs and the files of limits/ it re-exports (admin auth's).
    let mut limits = fs::read_to_string(root().join("core/src/limits.rs")).expect("limits.rs");
    for file in rust_files(&root().join("core/src/limits")) {
        limits.push_str(&fs::read_to_string(&file).expect("a limits/ file"));
    }
    let doc = fs::read_to_string(root().join("docs/limits.md")).expect("docs/limits.md");
    let names: Vec<&str> = limits
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(names.len() > 10, "limits.rs was read: {names:?}");
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "limits missing from docs/limits.md (run python3 tidy/gen-limits-doc.py): {missing:?}"
    );
}

#[test]
fn every_allowed_lint_carries_its_reason() {
    let mut hits = Vec::new();
    for file in rust_files(&root()) {
        if file.starts_with(root().join("tidy")) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        let mut rest = text.as_str();
        let next = |s: &str| {
            let outer = s.find("#[allow(");
            let inner = s.find("#![allow(");
            outer.into_iter().chain(inner).min()
        };
        while let Some(at) = next(rest) {
            let attr = &rest[at..];
            let end = attr.find(")]").map_or(attr.len(), |e| e + 2);
            if !attr[..end].contains("reason") {
                let line = text.len() - rest.len() + at;
                let line = text[..line].lines().count();
                hits.push(format!("{}:{line}", rel(&file)));
            }
            rest = &attr[end..];
        }
    }
    assert!(
        hits.is_empty(),
        "#[allow] without `reason = \"...\"`:\n{}",
        hits.join("\n")
    );
}
