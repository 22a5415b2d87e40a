//! The API/UI over HTTPS against a running daemon with a real SQLite file: a generated
//! self-signed certificate (kept across restarts, key 0600) and a given one (re-read when its
//! files change, a bad new one refused), HTTP/2 and HTTP/1.1 as ALPN chooses, the event
//! stream over HTTP/2 beside other requests on the same connection, the fingerprint equal in
//! the certificate file, the handshake, `GET /api/v1/connect`, `warppool tls fingerprint` and
//! the start log, and `Secure` session cookies over HTTPS only.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/https_client.rs"]
mod https_client;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use http_body_util::BodyExt;
use serde_json::{Value, json};
use temp_dir::TempDir;
use warppool_control::{
    auth::TotpSecret,
    config::{Config, HttpsSettings},
    run::Daemon,
};

fn with_https(mut config: Config, files: Option<(&Path, &Path)>) -> Config {
    config.https = Some(HttpsSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        files: files.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
    });
    config
}

fn cert_fingerprint(pem: &Path) -> String {
    warppool_control::api::v1::connect::fingerprint(pem).unwrap()
}

async fn connect_fingerprint(conn: &mut https_client::Conn) -> Value {
    let (status, _, body) = conn.json("GET", "/api/v1/connect", &[], None).await;
    assert_eq!(status, 200, "{body}");
    let https: Vec<&Value> = body["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["proto"] == "https")
        .collect();
    assert_eq!(https.len(), 1, "one https endpoint: {body}");
    assert!(
        body["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["proto"] == "stratum+tcp"),
        "the Stratum endpoint stays: {body}"
    );
    https[0].clone()
}

fn cli_fingerprint(dir: &TempDir) -> String {
    let path = dir.0.join("warppool.toml");
    let text = format!(
        "version = 1\nnetwork = \"regtest\"\n[storage]\nblock_journal = \"{}\"\n\
         database = \"{}\"\n[http]\ntls_listen = \"127.0.0.1:0\"\n[[node]]\nname = \"a\"\n\
         rpc_url = \"http://127.0.0.1:1\"\nrpc_cookie = \"/nonexistent\"\n[[port]]\n\
         addr = \"127.0.0.1:0\"\n",
        dir.0.join("blocks.journal").display(),
        dir.db().display(),
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["tls", "fingerprint", "--config"])
        .arg(&path)
        .env("WARPPOOL_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_serves_h2_and_http1_with_one_fingerprint() {
    let dir = TempDir::new("https-self-signed");
    let node = api_pool::node().await;
    let daemon = Daemon::start(with_https(api_pool::config(&node, &dir), None))
        .await
        .unwrap();
    let addr = daemon.https_addr().expect("https listener");
    let cert = dir.0.join("https-cert.pem");
    let key_mode = std::fs::metadata(dir.0.join("https-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        key_mode & 0o777,
        0o600,
        "the generated key is the pool's only"
    );
    let fingerprint = cert_fingerprint(&cert);

    let mut h2 = https_client::connect(addr, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.peer_fingerprint, fingerprint);
    let (status, _, body) = h2.json("GET", "/api/v1/status", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["network"], "regtest");
    let endpoint = connect_fingerprint(&mut h2).await;
    assert_eq!(endpoint["tls_fingerprint_sha256"], fingerprint.as_str());
    assert_eq!(endpoint["port"], addr.port());
    assert_eq!(
        endpoint["url"],
        format!("https://127.0.0.1:{}", addr.port()).as_str()
    );

    let mut h1 = https_client::connect(addr, &cert, &[b"http/1.1"]).await;
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (status, _, body) = h1.json("GET", "/health", &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(cli_fingerprint(&dir), fingerprint);

    daemon.shutdown().await.unwrap();
    let again = Daemon::start(with_https(api_pool::config(&node, &dir), None))
        .await
        .unwrap();
    let addr = again.https_addr().unwrap();
    let conn = https_client::connect(addr, &cert, &[b"h2"]).await;
    assert_eq!(
        conn.peer_fingerprint, fingerprint,
        "the same certificate after a restart"
    );
    again.shutdown().await.unwrap();
}

/// `[http] allowed_hosts = ["Pool.LAN."]` (normalised) and the machine's host name: a browser
/// that typed `https://pool.lan:<port>` gets a certificate valid for that name and passes the
/// `Host` check; any other name is still refused (421).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_in_allowed_hosts_is_in_the_certificate_and_passes_the_host_check() {
    let dir = TempDir::new("https-hosts");
    let node = api_pool::node().await;
    let text = api_pool::config_toml(&node, &dir, "", "")
        .replace("[http]\n", "[http]\nallowed_hosts = [\"Pool.LAN.\"]\n");
    let config = Config::from_toml(&text, Vec::new()).unwrap();
    assert_eq!(config.http_allowed_hosts, ["pool.lan"]);
    let bad = text.replace("Pool.LAN.", "not a name!");
    let refused = Config::from_toml(&bad, Vec::new()).unwrap_err().to_string();
    assert!(refused.contains("http.allowed_hosts"), "{refused}");
    let daemon = Daemon::start(with_https(config, None)).await.unwrap();
    let addr = daemon.https_addr().expect("https listener");
    let cert = dir.0.join("https-cert.pem");
    let trust = https_client::client_config(&cert, &[b"h2"]);
    let name = rustls::pki_types::ServerName::try_from("pool.lan").unwrap();
    let mut conn = https_client::try_connect_as(addr, trust, name)
        .await
        .expect("the certificate names pool.lan");
    let status_as = async |conn: &mut https_client::Conn, host: &str| {
        conn.json("GET", "/api/v1/status", &[("host", host)], None)
            .await
            .0
    };
    let pool_lan = format!("pool.lan:{}", addr.port());
    assert_eq!(status_as(&mut conn, &pool_lan).await, 200);
    assert_eq!(status_as(&mut conn, "evil.example").await, 421);
    if let Some(host) = warppool_control::api::tls::host_name() {
        assert_eq!(
            status_as(&mut conn, &host).await,
            200,
            "the machine's name {host}"
        );
    }
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_runs_over_h2_beside_other_requests() {
    let dir = TempDir::new("https-sse");
    let node = api_pool::node().await;
    let daemon = Daemon::start(with_https(api_pool::config(&node, &dir), None))
        .await
        .unwrap();
    let addr = daemon.https_addr().unwrap();
    let cert = dir.0.join("https-cert.pem");
    let mut conn = https_client::connect(addr, &cert, &[b"h2"]).await;
    let streams: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| conn_clone_send(&conn, "/api/v1/events")))
            .await;
    for stream in streams {
        assert_eq!(stream.status(), 200);
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let mut body = stream.into_body();
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a first event within 10 s")
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(first.data_ref().unwrap()).into_owned();
        assert!(text.contains("retry:") || text.contains("data:"), "{text}");
    }
    // Three streams open on this one connection, and it still answers.
    let (status, _, body) = conn.json("GET", "/api/v1/pool", &[], None).await;
    assert_eq!(status, 200, "{body}");
    daemon.shutdown().await.unwrap();
}

/// Sends `GET path` on a clone of the HTTP/2 sender (one more stream on the connection).
async fn conn_clone_send(
    conn: &https_client::Conn,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    let https_client::Sender::H2(sender) = &conn.sender else {
        panic!("h2 expected");
    };
    let mut clone = https_client::Conn {
        sender: https_client::Sender::H2(sender.clone()),
        alpn: conn.alpn.clone(),
        peer_fingerprint: conn.peer_fingerprint.clone(),
        addr: conn.addr,
    };
    clone.send("GET", path, &[], None).await
}

fn write_pair(cert_path: &Path, key_path: &Path, name: &str) -> String {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), name.to_owned()]).unwrap();
    // The key first: a poll between the two writes sees the old certificate with a new key,
    // refuses it and takes the pair at the next poll.
    std::fs::write(key_path, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(cert_path, made.cert.pem()).unwrap();
    warppool_control::api::tls::sha256_colon_hex(made.cert.der())
}

async fn served_fingerprint(addr: std::net::SocketAddr, trust: &Path) -> Option<String> {
    let config = https_client::client_config(trust, &[b"h2"]);
    https_client::try_connect(addr, config)
        .await
        .ok()
        .map(|c| c.peer_fingerprint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_certificate_is_reloaded_and_a_bad_one_keeps_the_old() {
    let dir = TempDir::new("https-given");
    let (cert, key) = (dir.0.join("given.pem"), dir.0.join("given-key.pem"));
    let first = write_pair(&cert, &key, "first.example");
    let node = api_pool::node().await;
    let config = with_https(api_pool::config(&node, &dir), Some((&cert, &key)));
    let daemon = Daemon::start(config).await.unwrap();
    let addr = daemon.https_addr().unwrap();
    let trusted_first = dir.0.join("trust-first.pem");
    std::fs::copy(&cert, &trusted_first).unwrap();
    assert_eq!(
        served_fingerprint(addr, &trusted_first).await,
        Some(first.clone())
    );
    assert!(!dir.0.join("https-cert.pem").exists(), "nothing generated");

    let second = write_pair(&cert, &key, "second.example");
    let trusted_second = dir.0.join("trust-second.pem");
    std::fs::copy(&cert, &trusted_second).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while served_fingerprint(addr, &trusted_second).await.as_ref() != Some(&second) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate is served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut conn = https_client::connect(addr, &trusted_second, &[b"h2"]).await;
    let endpoint = connect_fingerprint(&mut conn).await;
    assert_eq!(endpoint["tls_fingerprint_sha256"], second.as_str());

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    // Three polls later the broken file was read and refused: the second pair stays.
    tokio::time::sleep(Duration::from_secs(3 * 2 + 1)).await;
    assert_eq!(
        served_fingerprint(addr, &trusted_second).await,
        Some(second.clone())
    );
    let (status, _, metrics) = conn.json("GET", "/api/v1/connect", &[], None).await;
    assert_eq!(status, 200);
    assert!(metrics.to_string().contains(&second));
    let text = plain_metrics(&daemon).await;
    assert!(
        text.lines().any(
            |l| l.starts_with("warppool_https_cert_reload_failures_total ") && !l.ends_with(" 0")
        ),
        "the refusal is counted:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "warppool_https_cert_reloads_total 1"),
        "one reload taken:\n{text}"
    );
    daemon.shutdown().await.unwrap();
}

async fn plain_metrics(daemon: &Daemon) -> String {
    let base = format!("http://{}", daemon.http_addr().unwrap());
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cookies_are_secure_over_https_only() {
    let dir = TempDir::new("https-cookie");
    let node = api_pool::node().await;
    let daemon = Daemon::start(with_https(api_pool::config(&node, &dir), None))
        .await
        .unwrap();
    let addr = daemon.https_addr().unwrap();
    let cert = dir.0.join("https-cert.pem");
    let mut conn = https_client::connect(addr, &cert, &[b"h2"]).await;
    let creds = json!({"username": "op", "password": "correct horse battery staple"});
    let (status, _, started) = conn.json("POST", "/api/v1/setup", &[], Some(&creds)).await;
    assert_eq!(status, 200, "{started}");
    let secret = TotpSecret::from_base32(started["secret_base32"].as_str().unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let confirm = json!({"ticket": started["ticket"], "code": secret.code_at(now)});
    let (status, head, opened) = conn
        .json("POST", "/api/v1/setup/confirm", &[], Some(&confirm))
        .await;
    assert_eq!(status, 200);
    let cookie = head["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    // The same session signs out over plain HTTP (loopback): no `Secure` there.
    let session = cookie.split(';').next().unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/logout"))
        .header("cookie", session)
        .header("x-csrf-token", opened["csrf_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(!cleared.contains("Secure"), "{cleared}");
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_log_shows_the_served_fingerprint() {
    use tokio::io::AsyncBufReadExt;
    let dir = TempDir::new("https-log");
    let node = api_pool::node().await;
    let path = dir.0.join("warppool.toml");
    let text = format!(
        "version = 1\nnetwork = \"regtest\"\n[pool]\nshards = 1\n[storage]\n\
         block_journal = \"{}\"\ndatabase = \"{}\"\n[http]\ntls_listen = \"127.0.0.1:0\"\n\
         [[node]]\nname = \"fake\"\nrpc_url = \"{}\"\nrpc_user = \"user\"\n\
         rpc_password = \"pass\"\n[[port]]\naddr = \"127.0.0.1:0\"\n",
        dir.0.join("blocks.journal").display(),
        dir.db().display(),
        node.url(),
    );
    std::fs::write(&path, text).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["run", "--config"])
        .arg(&path)
        .env("WARPPOOL_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("https api listening") {
                return line;
            }
        }
        panic!("the pool exited without listening");
    })
    .await
    .expect("the https listener within 30 s");
    let fingerprint = cert_fingerprint(&dir.0.join("https-cert.pem"));
    assert!(
        line.contains(&format!("fingerprint_sha256={fingerprint}")),
        "{line}"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
