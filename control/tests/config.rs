//! Configuration: both documented examples parse, every validation error names its key, and
//! environment overrides apply before validation.

use std::path::Path;

use warppool_control::config::{Config, ConfigError, RpcAuth};

const MINIMAL: &str = r#"
version = 1
network = "regtest"
[storage]
block_journal = "/tmp/j"
database = "/tmp/db"
[[node]]
name = "a"
rpc_url = "http://127.0.0.1:18443"
rpc_user = "u"
rpc_password = "p"
[[port]]
addr = "127.0.0.1:3333"
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-examples")
}

#[test]
fn home_example_parses() {
    let c = Config::load(&examples().join("home.toml"), no_env()).unwrap();
    assert_eq!(c.network, bitcoin::Network::Regtest);
    assert_eq!(c.nodes.len(), 1);
    assert!(matches!(c.nodes[0].auth, RpcAuth::Cookie(_)));
    assert_eq!(c.ports.len(), 1);
    assert_eq!(c.shards, Some(1));
    assert_eq!(c.template.refresh.as_secs(), 30);
}

#[test]
fn farm_example_parses() {
    let c = Config::load(&examples().join("farm.toml"), no_env()).unwrap();
    assert_eq!(c.network, bitcoin::Network::Bitcoin);
    assert_eq!(c.nodes.len(), 3);
    assert_eq!(c.ports.len(), 3);
    assert!(c.ports[1].listener.tls.is_some());
    assert_eq!(c.http_listen.unwrap().port(), 8080);
    assert_eq!(c.net_config().listeners.len(), 3);
    assert_eq!(c.stratum_config().ports.len(), 3);
    assert_eq!(c.net_config().connections_per_ip_max, 4096);
}

#[test]
fn minimal_config_takes_the_defaults() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.template.refresh.as_secs(), 30);
    assert_eq!(c.template.best_block_poll.as_millis(), 1000);
    assert!(c.http_listen.is_none());
    assert_eq!(c.share_minutes_retention_days, 30);
    assert_eq!(c.events_retention_days, 90);
}

#[test]
fn admission_defaults_and_overrides_reach_the_data_plane() {
    let defaults = Config::from_toml(MINIMAL, no_env()).unwrap().net_config();
    let production = warppool_net::NetConfig::new(Vec::new());
    assert_eq!(defaults.accept_rate_per_sec, production.accept_rate_per_sec);
    assert_eq!(defaults.accept_burst, production.accept_burst);
    assert_eq!(
        defaults.connections_per_ip_max,
        production.connections_per_ip_max
    );
    assert_eq!(
        defaults.connections_per_shard_max,
        production.connections_per_shard_max
    );
    assert_eq!(defaults.subscribe_timeout, production.subscribe_timeout);
    assert_eq!(defaults.idle_timeout, production.idle_timeout);

    let text = format!(
        "{MINIMAL}\n[pool]\naccept_rate_per_sec = 20000\naccept_burst = 20000\n\
         connections_per_ip_max = 50000\nconnections_per_shard_max = 30000\n\
         subscribe_timeout_secs = 5\nidle_timeout_secs = 120\n"
    );
    let env = vec![(
        "WARPPOOL__POOL__CONNECTIONS_PER_IP_MAX".to_owned(),
        "40000".to_owned(),
    )];
    let net = Config::from_toml(&text, env).unwrap().net_config();
    assert_eq!(net.accept_rate_per_sec, 20_000);
    assert_eq!(net.accept_burst, 20_000);
    assert_eq!(net.connections_per_ip_max, 40_000);
    assert_eq!(net.connections_per_shard_max, 30_000);
    assert_eq!(net.subscribe_timeout.as_secs(), 5);
    assert_eq!(net.idle_timeout.as_secs(), 120);
}

#[test]
fn retention_is_configurable() {
    let text = MINIMAL.replace(
        "database = \"/tmp/db\"",
        "database = \"/tmp/db\"\nshare_minutes_retention_days = 7\nevents_retention_days = 365",
    );
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.share_minutes_retention_days, 7);
    assert_eq!(c.events_retention_days, 365);
    let env = vec![(
        "WARPPOOL__STORAGE__EVENTS_RETENTION_DAYS".to_owned(),
        "14".to_owned(),
    )];
    assert_eq!(
        Config::from_toml(&text, env).unwrap().events_retention_days,
        14
    );
}

/// Replaces `from` by `to` in MINIMAL and returns the error message.
fn error_of(from: &str, to: &str) -> String {
    // A new section goes at the end, where it cannot capture the top-level keys.
    let text = match to.strip_prefix("version = 1\n[") {
        Some(section) if from == "version = 1" => format!("{MINIMAL}\n[{section}\n"),
        _ => MINIMAL.replace(from, to),
    };
    assert_ne!(text, MINIMAL, "{from:?} not in MINIMAL");
    Config::from_toml(&text, no_env()).unwrap_err().to_string()
}

#[test]
fn every_validation_error_names_the_key_and_what_is_allowed() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("version = 1", "version = 2", &["`version`", "allowed: 1"]),
        (
            "\"regtest\"",
            "\"moon\"",
            &["`network`", "\"moon\"", "regtest"],
        ),
        (
            "http://127.0.0.1:18443",
            "https://x:1",
            &["`node[0].rpc_url`", "http://"],
        ),
        (
            "http://127.0.0.1:18443",
            "http://",
            &["`node[0].rpc_url`", "no host"],
        ),
        (
            "http://127.0.0.1:18443",
            "http://[::1",
            &["`node[0].rpc_url`", "no host"],
        ),
        (
            "rpc_password = \"p\"",
            "",
            &["`node[0].rpc_password`", "[node.\"a\"]", "rpc_cookie"],
        ),
        (
            "rpc_password = \"p\"",
            "rpc_password = \"p\"\nrpc_cookie = \"/c\"",
            &["node[0].rpc_user", "either"],
        ),
        ("name = \"a\"", "name = \"\"", &["`node[0].name`", "empty"]),
        (
            "rpc_password = \"p\"",
            "rpc_password = \"p\"\nzmq_hashblock = \"ipc:///x\"",
            &["node[0].zmq_hashblock", "tcp://"],
        ),
        (
            "rpc_password = \"p\"",
            "rpc_password = \"p\"\nrpc_timeout_ms = 0",
            &["node[0].rpc_timeout_ms", "1..="],
        ),
        (
            "addr = \"127.0.0.1:3333\"",
            "addr = \"nowhere\"",
            &["`port[0].addr`", "ip:port"],
        ),
        (
            "addr = \"127.0.0.1:3333\"",
            "addr = \"127.0.0.1:3333\"\ntls_cert = \"/c\"",
            &["port[0].tls_cert", "both"],
        ),
        (
            "addr = \"127.0.0.1:3333\"",
            "addr = \"127.0.0.1:3333\"\ndifficulty_min = 100\ndifficulty_max = 10",
            &["port[0].difficulty_min", "difficulty_max"],
        ),
        (
            "addr = \"127.0.0.1:3333\"",
            "addr = \"127.0.0.1:3333\"\ndifficulty_start = -1",
            &["port[0].difficulty_start", "positive"],
        ),
        (
            "addr = \"127.0.0.1:3333\"",
            "addr = \"127.0.0.1:3333\"\nfractional = \"sometimes\"",
            &["port[0].fractional", "on_request"],
        ),
        (
            "version = 1",
            "version = 1\n[pool]\nshards = 0",
            &["`pool.shards`", "1..="],
        ),
        (
            "version = 1",
            "version = 1\n[pool]\naccept_rate_per_sec = 0",
            &["`pool.accept_rate_per_sec`", "1..=1000000"],
        ),
        (
            "version = 1",
            "version = 1\n[pool]\nconnections_per_shard_max = 70000",
            &["`pool.connections_per_shard_max`", "1..=65536"],
        ),
        (
            "version = 1",
            "version = 1\n[pool]\nidle_timeout_secs = 100000",
            &["`pool.idle_timeout_secs`", "1..=86400"],
        ),
        (
            "version = 1",
            "version = 1\n[pool]\ncoinbase_tag = \"0123456789012345678901234567890123456789X\"",
            &["pool.coinbase_tag"],
        ),
        (
            "version = 1",
            "version = 1\n[[pool.split]]\naddress = \"nope\"\nvalue_sats = 1",
            &["pool.split[0].address"],
        ),
        (
            "version = 1",
            "version = 1\n[template]\nrefresh_secs = 0",
            &["template.refresh_secs", "positive"],
        ),
        (
            "version = 1",
            "version = 1\n[template]\nbest_block_poll_ms = 0",
            &["template.best_block_poll_ms"],
        ),
        (
            "version = 1",
            "version = 1\n[template]\nage_secs_max = 10",
            &["template.age_secs_max", "refresh_secs"],
        ),
        (
            "version = 1",
            "version = 1\n[http]\nlisten = \"localhost\"",
            &["http.listen", "ip:port"],
        ),
        (
            "database = \"/tmp/db\"",
            "database = \"/tmp/j\"",
            &["storage.database", "different"],
        ),
        (
            "database = \"/tmp/db\"",
            "database = \"\"",
            &["storage.database", "empty"],
        ),
        (
            "database = \"/tmp/db\"",
            "database = \"/tmp/db\"\nevents_retention_days = 0",
            &["storage.events_retention_days", "1..=3650"],
        ),
        (
            "database = \"/tmp/db\"",
            "database = \"/tmp/db\"\nshare_minutes_retention_days = 86400",
            &["storage.share_minutes_retention_days", "86400 days"],
        ),
    ];
    for (from, to, needles) in cases {
        let message = error_of(from, to);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{to:?}: {message:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn missing_sections_and_unknown_keys_are_refused() {
    let without_nodes: String = MINIMAL.split("[[node]]").next().unwrap().to_owned()
        + "[[port]]\naddr = \"127.0.0.1:3333\"\n";
    let message = Config::from_toml(&without_nodes, no_env())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`node`") && message.contains("no [[node]]"),
        "{message}"
    );

    let unknown = MINIMAL.replace("version = 1", "version = 1\ncolour = \"blue\"");
    let err = Config::from_toml(&unknown, no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
    assert!(err.to_string().contains("colour"), "{err}");

    let typo = MINIMAL.replace("rpc_user", "rpc_usr");
    assert!(
        Config::from_toml(&typo, no_env())
            .unwrap_err()
            .to_string()
            .contains("rpc_usr")
    );

    let missing = std::path::Path::new("/nonexistent/warppool.toml");
    let err = Config::load(missing, no_env()).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/warppool.toml"),
        "{err}"
    );
}

#[test]
fn environment_overrides_apply_before_validation() {
    let env = vec![
        ("WARPPOOL__NETWORK".to_owned(), "signet".to_owned()),
        (
            "WARPPOOL__TEMPLATE__REFRESH_SECS".to_owned(),
            "20".to_owned(),
        ),
        (
            "WARPPOOL__NODE__0__RPC_PASSWORD".to_owned(),
            "from-env".to_owned(),
        ),
        ("WARPPOOL__NODE__1__NAME".to_owned(), "b".to_owned()),
        (
            "WARPPOOL__NODE__1__RPC_URL".to_owned(),
            "http://10.0.0.9:8332".to_owned(),
        ),
        (
            "WARPPOOL__NODE__1__RPC_COOKIE".to_owned(),
            "/b/.cookie".to_owned(),
        ),
        (
            "WARPPOOL__HTTP__LISTEN".to_owned(),
            "127.0.0.1:9090".to_owned(),
        ),
        ("UNRELATED".to_owned(), "x".to_owned()),
    ];
    let c = Config::from_toml(MINIMAL, env).unwrap();
    assert_eq!(c.network, bitcoin::Network::Signet);
    assert_eq!(c.template.refresh.as_secs(), 20);
    assert!(
        matches!(&c.nodes[0].auth, RpcAuth::UserPassword { password, .. } if password == "from-env")
    );
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes[1].name, "b");
    assert_eq!(c.http_listen.unwrap().port(), 9090);

    // An override is validated like the file.
    let bad = vec![(
        "WARPPOOL__TEMPLATE__REFRESH_SECS".to_owned(),
        "0".to_owned(),
    )];
    assert!(
        Config::from_toml(MINIMAL, bad)
            .unwrap_err()
            .to_string()
            .contains("template.refresh_secs")
    );
    let wrong_type = vec![(
        "WARPPOOL__TEMPLATE__REFRESH_SECS".to_owned(),
        "soon".to_owned(),
    )];
    assert!(matches!(
        Config::from_toml(MINIMAL, wrong_type),
        Err(ConfigError::Syntax(_))
    ));
    let gap = vec![("WARPPOOL__NODE__5__NAME".to_owned(), "x".to_owned())];
    let err = Config::from_toml(MINIMAL, gap).unwrap_err();
    assert!(matches!(err, ConfigError::Env { .. }), "{err}");
    assert!(err.to_string().contains("WARPPOOL__NODE__5__NAME"), "{err}");
}

#[test]
fn environment_overrides_of_string_keys_stay_strings() {
    // Before, `123456` was read as a TOML integer and the config refused to load.
    let env = vec![
        (
            "WARPPOOL__NODE__0__RPC_PASSWORD".to_owned(),
            "123456".to_owned(),
        ),
        ("WARPPOOL__NODE__0__RPC_USER".to_owned(), "true".to_owned()),
        ("WARPPOOL__POOL__COINBASE_TAG".to_owned(), "2026".to_owned()),
    ];
    let c = Config::from_toml(MINIMAL, env).unwrap();
    assert!(
        matches!(&c.nodes[0].auth, RpcAuth::UserPassword { user, password }
            if password == "123456" && user == "true"),
        "{:?}",
        c.nodes[0].auth
    );
    // Numeric keys still read as numbers.
    let numeric = vec![(
        "WARPPOOL__TEMPLATE__REFRESH_SECS".to_owned(),
        "20".to_owned(),
    )];
    assert_eq!(
        Config::from_toml(MINIMAL, numeric)
            .unwrap()
            .template
            .refresh
            .as_secs(),
        20
    );
}

#[test]
fn check_warns_when_splits_approach_the_subsidy_or_exceed_it_after_the_next_halving() {
    let with_split = |sats: u64| {
        format!(
            "{MINIMAL}[[pool.split]]\naddress = \"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\"\n\
             value_sats = {sats}\n"
        )
    };
    // Regtest: 50 BTC until height 150, then 25 BTC.
    let c = Config::from_toml(&with_split(1_000_000_000), no_env()).unwrap();
    assert!(
        c.split_warnings(10).is_empty(),
        "{:?}",
        c.split_warnings(10)
    );
    let c = Config::from_toml(&with_split(3_000_000_000), no_env()).unwrap();
    let w = c.split_warnings(100);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("after the halving at height 150"), "{w:?}");
    let c = Config::from_toml(&with_split(4_600_000_000), no_env()).unwrap();
    let w = c.split_warnings(100);
    assert!(w.iter().any(|x| x.contains("at least 90 %")), "{w:?}");
    let w = c.split_warnings(160);
    assert!(
        w[0].contains("more than the subsidy of 2500000000"),
        "{w:?}"
    );
}

#[test]
fn profiles_set_defaults_that_explicit_keys_override() {
    let medium = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(medium.profile.name, "medium");
    let small_text = MINIMAL.replace(
        "network = \"regtest\"",
        "network = \"regtest\"\nprofile = \"small\"",
    );
    let small = Config::from_toml(&small_text, no_env()).unwrap();
    assert_eq!(small.shards, Some(1));
    assert_eq!(small.admission.connections_per_ip_max, 64);
    assert_eq!(small.admission.connections_per_shard_max, 4_096);
    assert_eq!(small.ports[0].policy.vardiff.shares_per_min_target, 30);
    assert_eq!(small.share_minutes_retention_days, 90);
    assert_ne!(small.admission, medium.admission);
    let large = Config::from_toml(&small_text.replace("\"small\"", "\"large\""), no_env()).unwrap();
    assert_eq!(large.shards, None);
    assert_eq!(large.admission.connections_per_ip_max, 4_096);
    // An explicit key wins over the profile; the environment counts as explicit.
    let explicit = small_text.replace("[storage]", "[pool]\nshards = 2\n[storage]");
    let c = Config::from_toml(&explicit, no_env()).unwrap();
    assert_eq!(c.shards, Some(2));
    let env = vec![(
        "WARPPOOL__POOL__CONNECTIONS_PER_IP_MAX".to_owned(),
        "7".to_owned(),
    )];
    assert_eq!(
        Config::from_toml(&small_text, env)
            .unwrap()
            .admission
            .connections_per_ip_max,
        7
    );
    // An unknown profile names the key and the choices.
    let e = Config::from_toml(&small_text.replace("\"small\"", "\"huge\""), no_env()).unwrap_err();
    assert!(
        matches!(&e, ConfigError::Invalid { key, allowed, .. }
        if key == "profile" && allowed.contains("enterprise")),
        "{e}"
    );
}

#[test]
fn admin_changes_validate_like_the_file_and_show_their_source() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    let change = |k: &str, v: serde_json::Value| {
        c.with_changes(&std::iter::once((k.to_owned(), v)).collect())
    };
    let changed = change("pool.idle_timeout_secs", serde_json::json!(60)).unwrap();
    assert_eq!(changed.admission.idle_timeout.as_secs(), 60);
    let field = |c: &Config, k: &str| c.fields().into_iter().find(|f| f.key == k).unwrap();
    assert_eq!(field(&changed, "pool.idle_timeout_secs").value, 60);
    assert_eq!(
        serde_json::to_value(field(&changed, "pool.idle_timeout_secs").source).unwrap(),
        "override"
    );
    assert_eq!(
        serde_json::to_value(field(&c, "network").source).unwrap(),
        "file"
    );
    assert_eq!(
        serde_json::to_value(field(&c, "pool.accept_burst").source).unwrap(),
        "profile"
    );
    // Unsetting an override goes back to the default.
    let unset = changed
        .with_changes(
            &std::iter::once(("pool.idle_timeout_secs".to_owned(), serde_json::Value::Null))
                .collect(),
        )
        .unwrap();
    assert_eq!(unset.admission.idle_timeout.as_secs(), 600);
    // Out of range, unknown, or a port that does not exist: refused by name.
    for (key, value) in [
        ("pool.idle_timeout_secs", serde_json::json!(0)),
        ("pool.nope", serde_json::json!(1)),
        ("port[1].difficulty_start", serde_json::json!(1)),
        ("port[0].difficulty_start", serde_json::json!("high")),
    ] {
        let e = change(key, value).unwrap_err();
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
    // Changing the shards is a restart key; the idle timeout a live one.
    let shards = change("pool.shards", serde_json::json!(3)).unwrap();
    assert_eq!(
        c.changed_keys(&shards),
        (vec![], vec!["pool.shards".to_owned()])
    );
    assert_eq!(
        c.changed_keys(&changed),
        (vec!["pool.idle_timeout_secs".to_owned()], vec![])
    );
}
