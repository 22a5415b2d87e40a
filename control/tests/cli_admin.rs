//! The admin commands of the real `warppool` binary on a real database: `admin create`,
//! `admin reset-totp`, `token create | list | revoke`, and `config check` (the old `check`).

#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::process::Command;

use temp_dir::TempDir;

fn config(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.0.join("warppool.toml");
    let text = format!(
        "version = 1\nnetwork = \"regtest\"\n[storage]\nblock_journal = \"{}\"\n\
         database = \"{}\"\n[[node]]\nname = \"a\"\nrpc_url = \"http://127.0.0.1:1\"\n\
         rpc_user = \"u\"\nrpc_password = \"p\"\n[[port]]\naddr = \"127.0.0.1:0\"\n",
        dir.0.join("blocks.journal").display(),
        dir.db().display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn warppool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(args)
        .env("WARPPOOL_ADMIN_PASSWORD", "correct horse battery staple")
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
fn admins_and_tokens_are_managed_from_the_command_line() {
    let dir = TempDir::new("cli-admin");
    let cfg = config(&dir);
    let cfg = cfg.to_str().unwrap();
    let (ok, out, err) = warppool(&["admin", "create", "-c", cfg, "--username", "op"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("totp secret"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("  ")).count(),
        10,
        "ten recovery codes"
    );
    let (ok, _, err) = warppool(&["admin", "create", "-c", cfg, "--username", "op"]);
    assert!(!ok, "the name is taken");
    assert!(err.contains("taken") || err.contains("exists"), "{err}");
    let (ok, out, err) = warppool(&["admin", "reset-totp", "-c", cfg, "--username", "op"]);
    assert!(ok && out.contains("totp secret"), "{out}{err}");
    let create = [
        "token",
        "create",
        "-c",
        cfg,
        "--username",
        "op",
        "--name",
        "grafana",
        "--scope",
        "metrics",
    ];
    let (ok, out, err) = warppool(&create);
    assert!(ok, "{out}{err}");
    let text = out
        .lines()
        .find(|l| l.starts_with("wpt_"))
        .expect("the token's text");
    let (ok, list, _) = warppool(&["token", "list", "-c", cfg]);
    assert!(
        ok && list.contains("grafana") && list.contains("metrics"),
        "{list}"
    );
    assert!(!list.contains(text), "the list never shows a secret");
    let id = list.split('\t').next().unwrap().trim().to_owned();
    let (ok, out, err) = warppool(&["token", "revoke", "-c", cfg, "--id", &id]);
    assert!(ok, "{out}{err}");
    let (ok, _, _) = warppool(&[
        "token",
        "create",
        "-c",
        cfg,
        "--username",
        "op",
        "--name",
        "x",
        "--scope",
        "root",
    ]);
    assert!(!ok, "an unknown scope is refused");
    let (ok, out, err) = warppool(&["config", "check", "-c", cfg]);
    assert!(ok && out.contains("configuration ok"), "{out}{err}");
    let (ok, out, _) = warppool(&["check", "-c", cfg]);
    assert!(
        ok && out.contains("configuration ok"),
        "the old name still works: {out}"
    );
}
