//! Secrets at rest: the secrets file and the [`Secret`] type.
//!
//! # The file
//! TOML, by default `secrets.toml` next to the database (`[storage] secrets` names another
//! path). It must be a regular file owned by the pool's user with mode 0600 or 0400; anything
//! else refuses the start (the error names the path and `chmod 600`). A missing file holds no
//! secrets (it is created 0600 when the admin API first stores one). Sections:
//!
//! ```toml
//! [node.main]            # a [[node]] of the configuration, by name
//! rpc_password = "…"     # used when that node has rpc_user and no rpc_password
//!
//! [notifier]             # reserved: notifier tokens (their issue)
//! [push]                 # reserved: Web Push VAPID keys (their issue)
//! [sv2]                  # reserved: Stratum V2 keys (their issue)
//! ```
//!
//! TOTP seeds are not here: they live in the SQLite database, itself checked 0600 while it
//! holds an admin (decision 0013).
//!
//! # Never shown
//! A [`Secret`] prints as `<secret>` with `{:?}` and `{}`; it has no `Serialize`, so no JSON
//! answer can carry one. The file is written only by [`SecretsFile::save`].

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use serde::Deserialize;
use warppool_core::limits::SECRETS_FILE_BYTES_MAX;

/// A secret value: `<secret>` in every `Debug` and `Display`, never serialized.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself (to send to the node it is for).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// Why the secrets file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// Unreadable, or not writable.
    #[error("secrets file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Readable by others than the pool's user, or not a regular file of that user.
    #[error("secrets file {path}: {problem}")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Not the TOML this file holds.
    #[error("secrets file {path}: {problem}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// One node's secrets (`[node.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSecrets {
    /// Its RPC password.
    pub rpc_password: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    #[serde(default)]
    node: BTreeMap<String, NodeSecrets>,
    notifier: Option<toml::Table>,
    push: Option<toml::Table>,
    sv2: Option<toml::Table>,
}

/// The secrets file's content (see the module docs).
#[derive(Debug, Default)]
pub struct SecretsFile {
    path: PathBuf,
    /// `[node.<name>]`.
    pub nodes: BTreeMap<String, NodeSecrets>,
    /// The reserved sections, kept as read (their issues define them).
    reserved: Vec<(&'static str, toml::Table)>,
}

/// The pool's effective user id.
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Checks that `path` is a regular file of the pool's user with mode 0600 or 0400.
///
/// # Errors
/// [`SecretsError::Unsafe`] naming the path and the fix.
pub fn check_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), SecretsError> {
    let unsafe_file = |problem: String| SecretsError::Unsafe {
        path: path.to_path_buf(),
        problem,
    };
    if !meta.file_type().is_file() {
        return Err(unsafe_file(
            "not a regular file (a symbolic link or a directory is refused)".to_owned(),
        ));
    }
    let uid = effective_uid();
    if meta.uid() != uid {
        return Err(unsafe_file(format!(
            "owned by uid {}, not the pool's user (uid {uid}); fix: chown {uid} {}",
            meta.uid(),
            path.display()
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode != 0o600 && mode != 0o400 {
        return Err(unsafe_file(format!(
            "mode {mode:04o} lets others than the pool's user read or change it; fix: chmod 600 \
             {}",
            path.display()
        )));
    }
    Ok(())
}

impl SecretsFile {
    /// Reads `path` (no file: no secrets) after [`check_file`].
    ///
    /// # Errors
    /// [`SecretsError`] naming the path.
    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let io = |source| SecretsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_path_buf(),
                    ..Self::default()
                });
            }
            Err(e) => return Err(io(e)),
        };
        check_file(path, &meta)?;
        let syntax = |problem: String| SecretsError::Syntax {
            path: path.to_path_buf(),
            problem,
        };
        if meta.len() > SECRETS_FILE_BYTES_MAX {
            return Err(syntax(format!(
                "{} bytes; at most {SECRETS_FILE_BYTES_MAX}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        // toml's messages quote the offending line, which may hold a secret: keep only where.
        let raw: RawSecrets = toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            let line = text[..at.min(text.len())].lines().count().max(1);
            syntax(format!("not valid TOML of this file near line {line}"))
        })?;
        let reserved = [
            ("notifier", raw.notifier),
            ("push", raw.push),
            ("sv2", raw.sv2),
        ]
        .into_iter()
        .filter_map(|(name, table)| table.map(|t| (name, t)))
        .collect();
        Ok(Self {
            path: path.to_path_buf(),
            nodes: raw.node,
            reserved,
        })
    }

    /// Where this file lives.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The RPC password stored for node `name`.
    #[must_use]
    pub fn node_password(&self, name: &str) -> Option<&Secret> {
        self.nodes.get(name)?.rpc_password.as_ref()
    }

    /// The file's text.
    fn text(&self) -> String {
        let mut root = toml::Table::new();
        let mut nodes = toml::Table::new();
        for (name, secrets) in &self.nodes {
            let mut table = toml::Table::new();
            if let Some(p) = &secrets.rpc_password {
                table.insert("rpc_password".to_owned(), p.expose().into());
            }
            nodes.insert(name.clone(), table.into());
        }
        if !nodes.is_empty() {
            root.insert("node".to_owned(), nodes.into());
        }
        for (name, table) in &self.reserved {
            root.insert((*name).to_owned(), table.clone().into());
        }
        toml::to_string(&root).unwrap_or_default()
    }

    /// Writes the file: a new 0600 file beside it, synced, renamed over it.
    ///
    /// # Errors
    /// [`SecretsError::Io`].
    pub fn save(&self) -> Result<(), SecretsError> {
        let io = |source| SecretsError::Io {
            path: self.path.clone(),
            source,
        };
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(self.text().as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}
