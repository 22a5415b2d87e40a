//! `GET|PUT /api/v1/admin/nodes` and `POST /api/v1/admin/nodes/{id}/test` over real HTTP
//! against a running daemon with a real SQLite file and the bitcoind double: passwords shown
//! only as `set`, a test of every step (a wrong password fails its step with the node's 401,
//! the answer is no 5xx), a bad list refused with nothing changed, a saved list (passwords in
//! the 0600 secrets file, the rest in `nodes.toml`) used at the next start, audit rows.

#[path = "support/admin.rs"]
mod admin_setup;
#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::os::unix::fs::PermissionsExt;

use reqwest::Client;
use serde_json::{Value, json};
use warppool_control::run::Daemon;

/// A session cookie and its CSRF token, from the first-run setup.
async fn session(http: &Client, base: &str) -> (String, String) {
    let admin = admin_setup::set_up(http, base).await;
    (admin.cookie, admin.csrf)
}

struct Admin {
    http: Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Admin {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if csrf {
            r = r.header("x-csrf-token", &self.csrf);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

async fn admin(p: &api_pool::Pool) -> Admin {
    let http = Client::new();
    let (cookie, csrf) = session(&http, &p.base).await;
    Admin {
        http,
        base: p.base.clone(),
        cookie,
        csrf,
    }
}

fn step<'a>(test: &'a Value, name: &str) -> &'a Value {
    test["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {test}"))
}

/// A wrong password: the rpc step fails with the node's 401, the answer is a 200; both tests
/// are audited.
async fn a_wrong_password_fails_the_rpc_step(p: &api_pool::Pool, a: &Admin) {
    p.node.set_auth(vec![fake_node::basic("user", "another")]);
    let (status, test) = a
        .send("POST", "/api/v1/admin/nodes/fake/test", None, true)
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["ok"], false);
    let rpc = step(&test, "rpc");
    assert_eq!(rpc["ok"], false);
    assert!(rpc["detail"].as_str().unwrap().contains("401"), "{rpc}");
    assert!(
        step(&test, "getblocktemplate")["detail"]
            .as_str()
            .unwrap()
            .contains("skipped")
    );

    let (_, audit) = a.get("/api/v1/admin/audit").await;
    let tests: Vec<&Value> = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "node.test" && r["target"] == "node:fake")
        .collect();
    assert_eq!(tests.len(), 2, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_the_nodes_without_passwords_and_test_them() {
    let p = api_pool::start("nodes-list").await;
    let r = reqwest::get(format!("{}/api/v1/admin/nodes", p.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "admins only");
    let a = admin(&p).await;
    let (status, body) = a.get("/api/v1/admin/nodes").await;
    assert_eq!(status, 200, "{body}");
    let node = &body["nodes"][0];
    assert_eq!(node["id"], "fake");
    assert_eq!(node["priority"], 0);
    assert_eq!(node["auth"], "user_password");
    assert_eq!(node["rpc_user"], "user");
    assert_eq!(node["password"], "set");
    assert_eq!(node["rpc_url"], p.node.url().as_str());
    assert_eq!(node["live"]["zmq"], "not_configured");
    assert_eq!(body["restart_required"], false);
    assert!(!body.to_string().contains("\"pass\""), "{body}");

    let (status, _) = a
        .send("POST", "/api/v1/admin/nodes/fake/test", None, false)
        .await;
    assert_eq!(status, 403, "a session needs its CSRF header");
    let (status, _) = a
        .send("POST", "/api/v1/admin/nodes/nope/test", None, true)
        .await;
    assert_eq!(status, 404);
    let (status, test) = a
        .send("POST", "/api/v1/admin/nodes/fake/test", None, true)
        .await;
    assert_eq!(status, 200, "{test}");
    assert_eq!(test["ok"], true, "{test}");
    let rpc = step(&test, "rpc");
    assert!(
        rpc["detail"]
            .as_str()
            .unwrap()
            .contains("chain regtest, 101 blocks"),
        "{rpc}"
    );
    assert!(rpc["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        step(&test, "network")["detail"]
            .as_str()
            .unwrap()
            .contains("/Satoshi:29.0.0/")
    );
    let gbt = step(&test, "getblocktemplate");
    assert!(
        gbt["detail"].as_str().unwrap().contains("height 102"),
        "{gbt}"
    );
    assert_eq!(step(&test, "zmq")["ok"], true);

    a_wrong_password_fails_the_rpc_step(&p, &a).await;
    p.daemon.shutdown().await.unwrap();
}

/// A list the validation refuses, or one without the CSRF header: 4xx, nothing written.
async fn a_bad_list_changes_nothing(p: &api_pool::Pool, a: &Admin) {
    let bad = json!({"nodes": [{"id": "fake", "rpc_url": "ftp://nowhere", "rpc_user": "user"}]});
    let (status, body) = a.send("PUT", "/api/v1/admin/nodes", Some(bad), true).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("node[0].rpc_url"),
        "{body}"
    );
    let (_, body) = a.get("/api/v1/admin/nodes").await;
    assert_eq!(body["restart_required"], false, "nothing changed");
    assert!(!p.dir.0.join("nodes.toml").exists());
    let (status, _) = a
        .send(
            "PUT",
            "/api/v1/admin/nodes",
            Some(json!({"nodes": []})),
            false,
        )
        .await;
    assert_eq!(status, 403, "no CSRF header");
}

/// The next start runs the saved list (the config still names one inline node).
async fn the_next_start_runs_the_saved_list(node: &fake_node::FakeNode, dir: &temp_dir::TempDir) {
    let config = api_pool::config(node, dir);
    let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["backup", "fake"]);
    let daemon = Daemon::start(config).await.unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    // The first template can land a moment after the daemon answers.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status: Value = reqwest::get(format!("{base}/api/v1/status"))
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
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_node_list_keeps_passwords_in_the_secrets_file_and_runs_after_a_restart() {
    let p = api_pool::start("nodes-put").await;
    let a = admin(&p).await;
    let url = p.node.url();
    a_bad_list_changes_nothing(&p, &a).await;
    let list = json!({"nodes": [
        {"id": "backup", "rpc_url": url, "rpc_user": "user", "rpc_password": "new-secret",
         "zmq_hashblock": "tcp://127.0.0.1:1", "rpc_timeout_ms": 2000},
        {"id": "fake", "rpc_url": url, "rpc_user": "user"},
    ]});
    let (status, body) = a.send("PUT", "/api/v1/admin/nodes", Some(list), true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_required"], true);
    assert_eq!(body["nodes"][0]["id"], "backup");
    assert_eq!(body["nodes"][0]["password"], "set");
    assert_eq!(body["nodes"][1]["id"], "fake");
    assert_eq!(
        body["nodes"][1]["password"], "set",
        "the omitted password is kept"
    );
    assert!(!body.to_string().contains("new-secret"));

    let secrets_path = p.dir.0.join("secrets.toml");
    let secrets = std::fs::read_to_string(&secrets_path).unwrap();
    assert!(
        secrets.contains("new-secret") && secrets.contains("\"pass\""),
        "{secrets}"
    );
    let mode = std::fs::metadata(&secrets_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved = std::fs::read_to_string(p.dir.0.join("nodes.toml")).unwrap();
    assert!(
        saved.contains("backup") && !saved.contains("new-secret"),
        "{saved}"
    );
    assert!(!saved.contains("rpc_password"), "{saved}");

    // The saved backup node's ZMQ endpoint is down: its test says so.
    let (_, test) = a
        .send("POST", "/api/v1/admin/nodes/backup/test", None, true)
        .await;
    assert_eq!(step(&test, "rpc")["ok"], true, "{test}");
    assert_eq!(step(&test, "zmq")["ok"], false, "{test}");

    let (_, audit) = a.get("/api/v1/admin/audit").await;
    let rows = audit["rows"].as_array().unwrap();
    let updates: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"] == "node.update")
        .collect();
    assert_eq!(
        updates.len(),
        2,
        "the refused one and the saved one: {audit}"
    );
    assert!(!audit.to_string().contains("new-secret"), "{audit}");

    let (node, dir) = (p.node.clone(), p.dir);
    p.daemon.shutdown().await.unwrap();
    the_next_start_runs_the_saved_list(&node, &dir).await;
}
