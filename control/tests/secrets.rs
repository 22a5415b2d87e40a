//! The secrets file against the real binary and a running daemon: a file others may read
//! refuses the start (the error names the path and `chmod 600`), a node's RPC password comes
//! from it by node name (and reaches the node, and never an answer or a `Debug`), an inline
//! password still works with a warning, and a missing one is a clear error.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use temp_dir::TempDir;
use warppool_control::{
    config::{Config, RpcAuth},
    run::Daemon,
};

const SECRET: &str = "s3cret-not-in-the-config";

fn config_text(dir: &TempDir, node_url: &str, password_line: &str) -> String {
    format!(
        "version = 1\nnetwork = \"regtest\"\n[pool]\nshards = 1\n[storage]\n\
         block_journal = \"{}\"\ndatabase = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [[node]]\nname = \"fake\"\nrpc_url = \"{node_url}\"\nrpc_user = \"user\"\n\
         {password_line}\n[[port]]\naddr = \"127.0.0.1:0\"\n",
        dir.0.join("blocks.journal").display(),
        dir.db().display(),
    )
}

fn write_secrets(dir: &TempDir, mode: u32) -> std::path::PathBuf {
    let path = dir.0.join("secrets.toml");
    std::fs::write(
        &path,
        format!("[node.fake]\nrpc_password = \"{SECRET}\"\n\n[notifier]\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn warppool(args: &[&str], config: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("WARPPOOL_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_secrets_file_others_can_read_refuses_the_start_with_the_fix() {
    let dir = TempDir::new("secrets-mode");
    let secrets = write_secrets(&dir, 0o644);
    let config = dir.0.join("warppool.toml");
    std::fs::write(&config, config_text(&dir, "http://127.0.0.1:1", "")).unwrap();
    for args in [&["config", "check"][..], &["run"][..]] {
        let (ok, _, stderr) = warppool(args, &config);
        assert!(!ok, "{args:?} must refuse");
        assert!(
            stderr.contains(&secrets.display().to_string()) && stderr.contains("chmod 600"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("0644"), "{stderr}");
        assert!(!stderr.contains(SECRET), "the secret never shows: {stderr}");
    }
    // 0400 and 0600 are accepted.
    for mode in [0o400, 0o600] {
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(mode)).unwrap();
        let (ok, stdout, stderr) = warppool(&["config", "check"], &config);
        assert!(ok, "mode {mode:o}: {stderr}");
        assert!(stdout.contains("configuration ok"), "{stdout}");
        assert!(!stdout.contains("warning"), "no inline password: {stdout}");
    }
}

#[test]
fn an_inline_password_works_with_a_warning_and_a_missing_one_is_named() {
    let dir = TempDir::new("secrets-inline");
    let config = dir.0.join("warppool.toml");
    let inline = config_text(&dir, "http://127.0.0.1:1", "rpc_password = \"inline-pw\"");
    std::fs::write(&config, inline).unwrap();
    let (ok, stdout, stderr) = warppool(&["config", "check"], &config);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("warning: node[0].rpc_password is given inline")
            && stdout.contains("secrets.toml"),
        "{stdout}"
    );
    assert!(!stdout.contains("inline-pw"), "{stdout}");

    std::fs::write(&config, config_text(&dir, "http://127.0.0.1:1", "")).unwrap();
    let (ok, _, stderr) = warppool(&["config", "check"], &config);
    assert!(!ok);
    assert!(
        stderr.contains("node[0].rpc_password") && stderr.contains("[node.\"fake\"]"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_password_comes_from_the_secrets_file_and_is_never_shown() {
    let dir = TempDir::new("secrets-node");
    write_secrets(&dir, 0o600);
    let node = api_pool::node().await;
    node.set_auth(vec![fake_node::basic("user", SECRET)]);
    let config = Config::from_toml(&config_text(&dir, &node.url(), ""), Vec::new()).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    assert!(
        matches!(&config.nodes[0].auth, RpcAuth::UserPassword { password, .. }
            if password.expose() == SECRET)
    );
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    let daemon = Daemon::start(config).await.unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    // The node accepts only the secret: a template means the password reached it.
    // (It can land a moment after the daemon answers.)
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: serde_json::Value = reqwest::get(format!("{base}/api/v1/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["template"]["height"] == 102 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for path in ["/api/v1/status", "/api/v1/network", "/api/v1/connect"] {
        let text = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(SECRET), "{path}: {text}");
    }
    daemon.shutdown().await.unwrap();
}
