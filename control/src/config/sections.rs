//! Validation of the `[[node]]` and `[[port]]` sections.

use super::*;

/// How node `i` (`name`) authenticates: `credentials` are its `rpc_user`, `rpc_password` and
/// `rpc_cookie`; a missing password comes from `secrets`.
fn node_auth(
    i: usize,
    name: &str,
    credentials: (Option<String>, Option<String>, Option<PathBuf>),
    secrets: &crate::secrets::SecretsFile,
    warnings: &mut Vec<String>,
) -> Result<RpcAuth, ConfigError> {
    let key = |k: &str| format!("node[{i}].{k}");
    let auth = match credentials {
        (Some(user), Some(password), None) => {
            warnings.push(format!(
                "{} is given inline (config file or environment): move it to \
                 [node.\"{}\"] rpc_password in the secrets file {} (mode 0600) and remove \
                 it from the config",
                key("rpc_password"),
                name,
                secrets.path().display()
            ));
            RpcAuth::UserPassword {
                user,
                password: password.into(),
            }
        }
        (Some(user), None, None) => match secrets.node_password(name) {
            Some(password) => RpcAuth::UserPassword {
                user,
                password: password.clone(),
            },
            None => {
                return Err(invalid(
                    key("rpc_password"),
                    format!(
                        "not given, and the secrets file {} has no [node.{:?}] rpc_password",
                        secrets.path().display(),
                        name
                    ),
                    "rpc_password in the secrets file (or inline, deprecated), or \
                     rpc_cookie",
                ));
            }
        },
        (None, None, Some(path)) => RpcAuth::Cookie(path),
        _ => {
            return Err(invalid(
                key("rpc_user"),
                "incomplete or conflicting credentials",
                "either rpc_user and rpc_password, or rpc_cookie (the node's .cookie file)",
            ));
        }
    };
    Ok(auth)
}

pub(super) fn validate_nodes(
    raw: Vec<NodeEntry>,
    secrets: &crate::secrets::SecretsFile,
    warnings: &mut Vec<String>,
) -> Result<Vec<NodeConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "node",
            "no [[node]] configured",
            "1 to NODES_MAX [[node]] tables",
        ));
    }
    if raw.len() > NODES_MAX {
        return Err(invalid(
            "node",
            format!("{} nodes", raw.len()),
            &format!("at most {NODES_MAX}"),
        ));
    }
    let mut nodes: Vec<NodeConfig> = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("node[{i}].{k}");
        if n.name.is_empty() {
            return Err(invalid(key("name"), "empty", "a short name"));
        }
        if nodes.iter().any(|o| o.name == n.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} is used twice", n.name),
                "a unique name per node",
            ));
        }
        let rest = n.rpc_url.strip_prefix("http://").ok_or_else(|| {
            invalid(
                key("rpc_url"),
                format!("{:?} is not an http:// URL", n.rpc_url),
                "http://host:port (plain HTTP to a local or trusted node)",
            )
        })?;
        if rest.is_empty() || rest.starts_with('/') || reqwest::Url::parse(&n.rpc_url).is_err() {
            return Err(invalid(key("rpc_url"), "no host", "http://host:port"));
        }
        let auth = node_auth(
            i,
            &n.name,
            (n.rpc_user, n.rpc_password, n.rpc_cookie),
            secrets,
            warnings,
        )?;
        if let Some(z) = &n.zmq_hashblock
            && !z.starts_with("tcp://")
        {
            return Err(invalid(
                key("zmq_hashblock"),
                format!("{z:?} is not a tcp:// endpoint"),
                "tcp://host:port as given to -zmqpubhashblock",
            ));
        }
        let rpc_timeout = match n.rpc_timeout_ms {
            None => Duration::from_millis(RPC_TIMEOUT_MS_DEFAULT),
            Some(ms) if ms == 0 || ms > RPC_TIMEOUT_MS_MAX => {
                return Err(invalid(
                    key("rpc_timeout_ms"),
                    format!("{ms} ms"),
                    &format!("1..={RPC_TIMEOUT_MS_MAX}"),
                ));
            }
            Some(ms) => Duration::from_millis(ms),
        };
        nodes.push(NodeConfig {
            name: n.name,
            rpc_url: n.rpc_url,
            auth,
            zmq_hashblock: n.zmq_hashblock,
            rpc_timeout,
        });
    }
    Ok(nodes)
}

fn difficulty(
    key: String,
    value: Option<f64>,
    default: Difficulty,
) -> Result<Difficulty, ConfigError> {
    match value {
        None => Ok(default),
        Some(d) => Difficulty::from_f64_lossy(d).map_err(|e| {
            invalid(
                key,
                format!("{d}: {e}"),
                "a positive difficulty, e.g. 1024 or 0.001",
            )
        }),
    }
}

fn fractional(key: String, value: Option<&str>) -> Result<Fractional, ConfigError> {
    match value {
        None | Some("on_request") => Ok(Fractional::OnRequest),
        Some("never") => Ok(Fractional::Never),
        Some("always") => Ok(Fractional::Always),
        Some(other) => Err(invalid(
            key,
            format!("{other:?}"),
            "\"never\", \"on_request\", \"always\"",
        )),
    }
}

pub(super) fn validate_ports(
    raw: Vec<RawPort>,
    spm: u32,
) -> Result<Vec<PortSettings>, ConfigError> {
    if raw.is_empty() {
        return Err(invalid(
            "port",
            "no [[port]] configured",
            "1 to LISTENERS_MAX [[port]] tables",
        ));
    }
    if raw.len() > LISTENERS_MAX {
        return Err(invalid(
            "port",
            format!("{} ports", raw.len()),
            &format!("at most {LISTENERS_MAX}"),
        ));
    }
    let mut ports: Vec<PortSettings> = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("port[{i}].{k}");
        let addr: SocketAddr = p.addr.parse().map_err(|_| {
            invalid(
                key("addr"),
                format!("{:?} is not an address", p.addr),
                "ip:port, e.g. \"0.0.0.0:3333\"",
            )
        })?;
        if ports
            .iter()
            .any(|o| o.listener.addr == addr && addr.port() != 0)
        {
            return Err(invalid(
                key("addr"),
                format!("{addr} is used twice"),
                "a distinct address per port",
            ));
        }
        let tls = match (p.tls_cert, p.tls_key) {
            (None, None) => None,
            (Some(cert_path), Some(key_path)) => Some(TlsFiles {
                cert_path,
                key_path,
            }),
            _ => {
                return Err(invalid(
                    key("tls_cert"),
                    "only one of tls_cert and tls_key given",
                    "both (a TLS port) or neither (plain text)",
                ));
            }
        };
        let defaults = VardiffConfig::default();
        let fractional = fractional(key("fractional"), p.fractional.as_deref())?;
        let mut vardiff = VardiffConfig {
            difficulty_start: difficulty(
                key("difficulty_start"),
                p.difficulty_start,
                defaults.difficulty_start,
            )?,
            difficulty_min: difficulty(
                key("difficulty_min"),
                p.difficulty_min,
                defaults.difficulty_min,
            )?,
            difficulty_max: difficulty(
                key("difficulty_max"),
                p.difficulty_max,
                defaults.difficulty_max,
            )?,
            shares_per_min_target: p.shares_per_min_target.unwrap_or(spm),
            ..defaults
        };
        vardiff.fractional = fractional != Fractional::Never;
        if vardiff.difficulty_min > vardiff.difficulty_max {
            return Err(invalid(
                key("difficulty_min"),
                "above difficulty_max",
                "difficulty_min ≤ difficulty_start ≤ difficulty_max",
            ));
        }
        if vardiff.difficulty_start < vardiff.difficulty_min
            || vardiff.difficulty_start > vardiff.difficulty_max
        {
            return Err(invalid(
                key("difficulty_start"),
                "outside difficulty_min..=difficulty_max",
                "difficulty_min ≤ difficulty_start ≤ difficulty_max",
            ));
        }
        if let Err(e) = vardiff.validate() {
            return Err(invalid(
                key("shares_per_min_target"),
                format!("vardiff settings refused: {e}"),
                "a target of 1..=600 shares a minute and difficulties ≥ 1 unless fractional",
            ));
        }
        ports.push(PortSettings {
            listener: ListenerConfig { addr, tls },
            policy: PortConfig {
                vardiff,
                fractional,
            },
        });
    }
    Ok(ports)
}

pub(super) fn validate_https(
    listen: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<HttpsSettings>, ConfigError> {
    let listen = validate_http_listen("http.tls_listen", listen)?;
    let files = match (cert, key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some((c, k)),
        _ => {
            return Err(invalid(
                "http.tls_cert",
                "only one of tls_cert and tls_key given",
                "both (a given certificate) or neither (a generated self-signed one)",
            ));
        }
    };
    match listen {
        Some(listen) => Ok(Some(HttpsSettings { listen, files })),
        None if files.is_some() => Err(invalid(
            "http.tls_listen",
            "tls_cert and tls_key given without tls_listen",
            "an address for the HTTPS listener, e.g. \"0.0.0.0:8443\"",
        )),
        None => Ok(None),
    }
}

/// `[http] allowed_hosts`: DNS names (at most `ALLOWED_HOSTS_MAX`), normalised.
pub(super) fn validate_allowed_hosts(
    names: Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let names = names.unwrap_or_default();
    crate::auth::AllowedHosts::new(std::net::IpAddr::from([127, 0, 0, 1]), &names)
        .map(|hosts| hosts.names().to_vec())
        .map_err(|e| {
            invalid(
                "http.allowed_hosts",
                e.to_string(),
                "up to ALLOWED_HOSTS_MAX (32) DNS names such as \"pool.lan\"",
            )
        })
}
