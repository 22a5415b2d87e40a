//! Shared helpers of the repository checks (`tests/tidy.rs`, `tests/shape.rs`).

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
#[must_use]
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tidy/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, sorted, skipping build output and fuzz corpora.
#[must_use]
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                let skip = [
                    "target",
                    "corpus",
                    "artifacts",
                    "coverage",
                    "node_modules",
                    ".git",
                ];
                if !skip.contains(&name.as_ref()) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
