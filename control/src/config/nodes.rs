//! The nodes' tables: `[[node]]` as written, the list the admin API saves next to the
//! database (it replaces the configuration's when present), and the secrets they read.

use super::*;

/// One `[[node]]` table as written (in the configuration, or in the node list the admin API
/// saves): validated by [`validate_node_entries`].
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Its name (the API's node id).
    pub name: String,
    /// `http://host:port`.
    pub rpc_url: String,
    /// With `rpc_password` (inline, deprecated) or the secrets file's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_user: Option<String>,
    /// Inline password (deprecated: the secrets file holds it); never written back.
    #[serde(skip_serializing)]
    pub rpc_password: Option<String>,
    /// The node's `.cookie` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_cookie: Option<PathBuf>,
    /// `tcp://host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zmq_hashblock: Option<String>,
    /// Per-request timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rpc_timeout_ms: Option<u64>,
}

/// Validates `entries` as `[[node]]` tables (failover order), passwords missing inline taken
/// from `secrets`; the warnings of inline passwords go to `warnings`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `node[i].<key>`.
pub fn validate_node_entries(
    entries: Vec<NodeEntry>,
    secrets: &crate::secrets::SecretsFile,
    warnings: &mut Vec<String>,
) -> Result<Vec<NodeConfig>, ConfigError> {
    validate_nodes(entries, secrets, warnings)
}

/// The node list the admin API saved (`PUT /api/v1/admin/nodes`), next to the database: when
/// it exists it replaces the configuration's `[[node]]` tables.
#[must_use]
pub fn saved_nodes_path(database: &Path) -> PathBuf {
    data_dir(database).join(SAVED_NODES_FILE)
}

/// The saved node list's file name.
pub const SAVED_NODES_FILE: &str = "nodes.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedNodes {
    #[serde(default)]
    node: Vec<NodeEntry>,
}

/// The saved node list at `path`, if the file exists.
fn read_saved_nodes(path: &Path) -> Result<Option<Vec<NodeEntry>>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let saved: SavedNodes = toml::from_str(&text).map_err(|e| {
        invalid(
            "node",
            format!("{}: {e}", path.display()),
            "the [[node]] list the admin API saves (delete the file to use the config's)",
        )
    })?;
    Ok(Some(saved.node))
}

/// The nodes (the saved list if the admin API saved one, else the `[[node]]` tables), the
/// secrets file they take passwords from, and the warnings.
pub(super) fn node_tables(
    storage: &RawStorage,
    node: Vec<NodeEntry>,
) -> Result<(Vec<NodeConfig>, PathBuf, Vec<String>), ConfigError> {
    if storage.database.as_os_str().is_empty() {
        return Err(invalid("storage.database", "empty path", "a file path"));
    }
    let secrets_path = storage
        .secrets
        .clone()
        .unwrap_or_else(|| data_dir(&storage.database).join("secrets.toml"));
    let secrets = crate::secrets::SecretsFile::load(&secrets_path).map_err(|e| {
        invalid(
            "storage.secrets",
            e.to_string(),
            "see the secrets file's docs",
        )
    })?;
    let mut warnings = Vec::new();
    let saved_path = saved_nodes_path(&storage.database);
    let entries = match read_saved_nodes(&saved_path)? {
        Some(saved) => {
            warnings.push(format!(
                "the nodes saved by the admin API in {} replace the config's [[node]] tables",
                saved_path.display()
            ));
            saved
        }
        None => node,
    };
    let nodes = validate_nodes(entries, &secrets, &mut warnings)?;
    Ok((nodes, secrets_path, warnings))
}
