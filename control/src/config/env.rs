//! Environment overrides: `WARPPOOL__SECTION__KEY=value` (arrays by index,
//! `WARPPOOL__NODE__0__RPC_URL`), applied to the parsed TOML table before validation.

use super::{ConfigError, ENV_PREFIX};

/// The configuration keys whose values are text (file paths included): an environment
/// override of one of them is never read as a number or a boolean.
const STRING_KEYS: [&str; 18] = [
    "network",
    "coinbase_tag",
    "address",
    "block_journal",
    "database",
    "listen",
    "tls_listen",
    "secrets",
    "name",
    "rpc_url",
    "rpc_user",
    "rpc_password",
    "rpc_cookie",
    "zmq_hashblock",
    "addr",
    "tls_cert",
    "tls_key",
    "fractional",
];

/// The TOML value of an override of `key`: a key whose type is text stays text whatever it
/// looks like (a password `123456`, a coinbase tag `true`); other keys take TOML's reading of
/// the value (numbers, booleans, arrays), and text when it is not TOML.
fn override_value(key: &str, value: &str) -> toml::Value {
    if STRING_KEYS.contains(&key) {
        return toml::Value::String(value.to_owned());
    }
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

/// Sets one override `WARPPOOL__A__B__C=value` in `table`.
pub(super) fn apply_override(
    table: &mut toml::Table,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let env_err = |problem: &str| ConfigError::Env {
        var: var.to_owned(),
        problem: problem.to_owned(),
    };
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(env_err("empty key segment (use WARPPOOL__SECTION__KEY)"));
    }
    let parsed = override_value(path.last().map_or("", String::as_str), value);
    let mut cursor = table;
    let mut i = 0;
    while i + 1 < path.len() {
        let segment = &path[i];
        if segment.parse::<usize>().is_ok() {
            return Err(env_err(&format!(
                "index `{segment}` must follow an array name"
            )));
        }
        let index = path[i + 1].parse::<usize>().ok();
        let entry = cursor
            .entry(segment.clone())
            .or_insert_with(|| match index {
                Some(_) => toml::Value::Array(Vec::new()),
                None => toml::Value::Table(toml::Table::new()),
            });
        cursor = match (entry, index) {
            (toml::Value::Table(t), None) => t,
            (toml::Value::Array(items), Some(index)) => {
                if index > items.len() {
                    return Err(env_err(&format!(
                        "index {index} is past the end of `{segment}` ({} entries)",
                        items.len()
                    )));
                }
                if index == items.len() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                i += 1;
                match &mut items[index] {
                    toml::Value::Table(t) => t,
                    _ => return Err(env_err(&format!("`{segment}[{index}]` is not a table"))),
                }
            }
            (toml::Value::Array(_), None) => {
                return Err(env_err(&format!("`{segment}` is an array: give an index")));
            }
            _ => return Err(env_err(&format!("`{segment}` is not a table"))),
        };
        i += 1;
    }
    let last = &path[path.len() - 1];
    if i != path.len() - 1 || last.parse::<usize>().is_ok() {
        return Err(env_err("the last segment must be a key, not an index"));
    }
    cursor.insert(last.clone(), parsed);
    Ok(())
}
