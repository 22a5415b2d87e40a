//! Shape rules for every Rust file of the workspace: no file over 800 lines, no function over
//! 70 lines, no line over 100 columns.
//!
//! What exceeds them today is listed in `tidy/shape-allowlist.txt`, each entry with its size
//! when it was listed. The list only shrinks: an entry whose code grew past its recorded size
//! fails, and so does an entry that now obeys the rule (remove it). A new file or function
//! over a limit fails outright. Set `TIDY_SHAPE_PRINT=1` to print what exceeds the rules now,
//! in the allowlist's format.

use std::{collections::BTreeMap, fs};

use warppool_tidy::{root, rust_files};

/// Lines per file at most.
const FILE_LINES_MAX: usize = 800;
/// Lines per function at most, from its `fn` line to its closing brace.
const FN_LINES_MAX: usize = 70;
/// Columns per line at most.
const LINE_COLUMNS_MAX: usize = 100;

/// Removes string and char literals and comments, keeping line breaks, so braces can be
/// counted. Lifetimes (`'a`) are kept as they are.
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                if b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && raw_start(&b, i) {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            j += 1; // the opening quote
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if b.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < b.len() && b[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether `r` at `i` starts a raw string (not the end of an identifier such as `for`).
fn raw_start(b: &[char], i: usize) -> bool {
    let before = if i == 0 { ' ' } else { b[i - 1] };
    if before.is_alphanumeric() || before == '_' {
        return false;
    }
    let mut j = i + 1;
    while b.get(j) == Some(&'#') {
        j += 1;
    }
    b.get(j) == Some(&'"')
}

/// The name of the function an (already stripped) line declares, if any.
fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let qualifiers = ["pub", "const", "async", "unsafe", "extern", "default"];
    if !words[..at]
        .iter()
        .all(|w| qualifiers.contains(w) || w.starts_with("pub(") || w.starts_with("\"C\""))
    {
        return None;
    }
    let name: String = words
        .get(at + 1)?
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every function with a body: (name, lines from its `fn` line to its closing brace).
fn functions(stripped: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = stripped.lines().collect();
    let mut out = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else {
            continue;
        };
        let mut depth = 0i64;
        let mut opened = false;
        let mut end = None;
        'scan: for (k, l) in lines.iter().enumerate().skip(start) {
            for ch in l.chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break 'scan, // no body
                    _ => {}
                }
                if opened && depth == 0 {
                    end = Some(k);
                    break 'scan;
                }
            }
        }
        if let Some(end) = end {
            out.push((name, end - start + 1));
        }
    }
    out
}

/// What exceeds the rules now: `(kind, file, item)` → size.
fn measure() -> BTreeMap<(String, String, String), usize> {
    let root = root();
    let files = rust_files(&root);
    let mut out = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let text = fs::read_to_string(&file).unwrap_or_default();
        let lines = text.lines().count();
        if lines > FILE_LINES_MAX {
            out.insert(("file".into(), rel.clone(), "-".into()), lines);
        }
        let long = text
            .lines()
            .filter(|l| l.chars().count() > LINE_COLUMNS_MAX)
            .count();
        if long > 0 {
            out.insert(("columns".into(), rel.clone(), "-".into()), long);
        }
        for (name, len) in functions(&strip(&text)) {
            if len > FN_LINES_MAX {
                let key = ("fn".to_owned(), rel.clone(), name);
                let e = out.entry(key).or_insert(0);
                *e = (*e).max(len);
            }
        }
    }
    out
}

fn allowlist() -> BTreeMap<(String, String, String), usize> {
    let text = fs::read_to_string(root().join("tidy/shape-allowlist.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 4, "allowlist line `{l}`: kind file item size");
            let size = w[3].parse().unwrap_or_else(|_| panic!("size in `{l}`"));
            ((w[0].to_owned(), w[1].to_owned(), w[2].to_owned()), size)
        })
        .collect()
}

#[test]
fn files_functions_and_lines_keep_their_shape() {
    let now = measure();
    if std::env::var_os("TIDY_SHAPE_PRINT").is_some() {
        for ((kind, file, item), size) in &now {
            println!("{kind} {file} {item} {size}");
        }
    }
    let allowed = allowlist();
    let mut problems = Vec::new();
    for ((kind, file, item), size) in &now {
        let what = format!("{kind} {file} {item}");
        match allowed.get(&(kind.clone(), file.clone(), item.clone())) {
            None => problems.push(format!(
                "{what}: {size} is over the limit (file {FILE_LINES_MAX} lines, fn \
                 {FN_LINES_MAX} lines, {LINE_COLUMNS_MAX} columns)"
            )),
            Some(max) if size > max => {
                problems.push(format!("{what}: grew to {size}, the allowlist has {max}"));
            }
            Some(_) => {}
        }
    }
    for (key, size) in &allowed {
        if !now.contains_key(key) {
            let (kind, file, item) = key;
            problems.push(format!(
                "{kind} {file} {item} ({size}) obeys the rule now: remove it from \
                 tidy/shape-allowlist.txt"
            ));
        }
    }
    assert!(problems.is_empty(), "shape rules:\n{}", problems.join("\n"));
}

#[test]
fn the_function_scanner_sees_bodies_strings_and_lifetimes_right() {
    let src = r##"
pub(crate) async fn outer<'a>(x: &'a str) -> char {
    let s = "}{ not braces";
    let r = r#"} still not"#;
    let c = '}';
    // } nor here
    if x.is_empty() { '{' } else { c }
}
trait T { fn no_body(&self); }
fn two() {}
"##;
    let f = functions(&strip(src));
    assert_eq!(f, vec![("outer".to_owned(), 7), ("two".to_owned(), 1)]);
}
