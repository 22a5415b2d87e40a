//! `GET /metrics` over real HTTP against a running daemon (data plane, block path, SQLite) on
//! a bitcoind double serving regtest templates, with a real Stratum miner: the text parses
//! as OpenMetrics (and as Prometheus text 0.0.4), every family has help and a type, shares
//! move when the miner submits, per-worker series appear and stay under their cap, and a
//! peer outside loopback is refused by the real router.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use api_pool::Pool;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, extract::ConnectInfo, http::Request};
use raw_miner::Miner;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use warppool_control::stats::Recorder;
use warppool_core::{limits::METRICS_WORKER_SERIES_MAX, plane::ShareEvent};

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const DEADLINE: Duration = Duration::from_secs(30);
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5";

/// A daemon whose first template has been published and fanned out to the shards: the
/// template families (height, age, difficulty, transactions, fan-out) exist only from then on,
/// so two scrapes compared later see the same families.
async fn pool(name: &str) -> Pool {
    let p = api_pool::start(name).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (_, _, text) = scrape(p.http, None).await;
        let ready = ["warppool_template_height", "warppool_job_fanout_seconds"]
            .iter()
            .all(|f| text.contains(&format!("# TYPE {f} ")));
        if ready {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no template in time: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One scrape: status, content type, body.
async fn scrape(http: SocketAddr, accept: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("http://{http}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let r = request.send().await.expect("GET /metrics");
    let status = r.status().as_u16();
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, r.text().await.unwrap())
}

/// A parsed exposition: family → (type, help), and every sample `name{labels}` → value.
#[derive(Debug, Default)]
struct Exposition {
    families: BTreeMap<String, (String, String)>,
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    fn get(&self, sample: &str) -> Option<f64> {
        self.samples.get(sample).copied()
    }

    fn count(&self, prefix: &str) -> usize {
        self.samples
            .keys()
            .filter(|k| k.starts_with(prefix))
            .count()
    }
}

/// The sample suffixes each type allows (`_total` for counters, as OpenMetrics requires).
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "gauge" | "info" | "unknown" => &[""],
        other => panic!("unexpected metric type {other}"),
    }
}

/// Parses the text strictly: HELP then TYPE for each family before its samples, samples that
/// belong to the family above them, label syntax, numeric values, and (OpenMetrics) `# EOF`
/// as the last line.
fn parse(text: &str, openmetrics: bool) -> Exposition {
    let mut out = Exposition::default();
    let mut lines: Vec<&str> = text.lines().collect();
    if openmetrics {
        assert_eq!(lines.pop(), Some("# EOF"), "OpenMetrics ends with # EOF");
    }
    let mut family: Option<(String, String)> = None;
    let mut help: Option<(String, String)> = None;
    for line in lines {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP name text");
            assert!(!text.trim().is_empty(), "empty help: {line}");
            help = Some((name.to_owned(), text.to_owned()));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            let (help_name, text) = help.take().expect("HELP before TYPE");
            assert_eq!(help_name, name, "HELP and TYPE of one family");
            assert!(name.starts_with("warppool_"), "{name}");
            let fresh = out
                .families
                .insert(name.to_owned(), (kind.to_owned(), text));
            assert!(fresh.is_none(), "family {name} declared twice");
            family = Some((name.to_owned(), kind.to_owned()));
        } else {
            assert!(!line.starts_with('#'), "unexpected comment: {line}");
            let (name, kind) = family.as_ref().expect("a sample after its TYPE");
            let (key, value) = line.rsplit_once(' ').expect("sample value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value: {line}"));
            let sample = key.split('{').next().unwrap();
            // Prometheus text 0.0.4 names a counter family with its `_total`.
            let plain_counter = !openmetrics && kind == "counter" && sample == name;
            let fits = plain_counter
                || suffixes(kind)
                    .iter()
                    .any(|s| sample.strip_suffix(s) == Some(name.as_str()));
            assert!(fits, "{sample} is not a sample of {kind} {name}");
            if let Some(labels) = key.strip_prefix(sample) {
                check_labels(labels, line);
            }
            out.samples.insert(key.to_owned(), value);
        }
    }
    out
}

fn check_labels(labels: &str, line: &str) {
    if labels.is_empty() {
        return;
    }
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels: {line}"));
    for pair in inner.split("\",").filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label: {line}"));
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {name}: {line}"
        );
        assert!(!value.contains('\n'), "{line}");
    }
}

/// Scrapes until `ok` holds.
async fn until(http: SocketAddr, ok: impl Fn(&Exposition) -> bool) -> Exposition {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, _, text) = scrape(http, Some(OPENMETRICS)).await;
        assert_eq!(status, 200, "{text}");
        let parsed = parse(&text, true);
        if ok(&parsed) {
            return parsed;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ACCEPTED: &str = "warppool_shares_total{result=\"accepted\",reason=\"\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_parses_every_family_has_help_and_shares_move_with_a_miner() {
    let p = pool("metrics-miner").await;
    let (status, content_type, text) = scrape(p.http, Some(OPENMETRICS)).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("application/openmetrics-text; version=1.0.0"));
    let before = parse(&text, true);
    assert_eq!(before.get(ACCEPTED), Some(0.0), "{text}");
    for family in [
        "warppool_connections",
        "warppool_connections_refused",
        "warppool_shares",
        "warppool_pool_hashrate_low_hashes_per_second",
        "warppool_workers",
        "warppool_rpc_latency_seconds",
        "warppool_storage_queue_messages",
        "warppool_block_submissions",
    ] {
        assert!(before.families.contains_key(family), "{family}: {text}");
    }
    for name in before.families.keys() {
        assert!(!name.ends_with("_total"), "{name}: the encoder adds _total");
    }
    let (status, content_type, plain) = scrape(p.http, None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(parse(&plain, false).families.len(), before.families.len());

    let stratum = p.daemon.pool().local_addrs()[0];
    let worker = format!("{ADDRESS}.axe1");
    let mut miner = Miner::connect(stratum, &worker, "bitaxe/BM1370/v2.4.0").await;
    for _ in 0..3 {
        let line = miner.block_share();
        miner.write.write_all(line.as_bytes()).await.unwrap();
    }
    let port = stratum.port();
    // A worker's rate needs a window longer than zero seconds: the first second has none.
    let id = warppool_control::api::v1::worker_id(&worker);
    let masked = warppool_control::api::v1::mask_name(&worker);
    let series = format!(
        "warppool_worker_hashrate_hashes_per_second{{worker_id=\"{id}\",worker=\"{masked}\"}}"
    );
    let after = until(p.http, |m| {
        m.get(ACCEPTED) == Some(3.0)
            && m.get("warppool_block_submissions_total{node=\"fake\",result=\"accepted\"}")
                == Some(3.0)
            && m.get(&series).is_some_and(|h| h > 0.0)
    })
    .await;
    let open =
        format!("warppool_connections{{protocol=\"stratum_v1\",port=\"{port}\",shard=\"0\"}}");
    assert_eq!(after.get(&open), Some(1.0));
    assert_eq!(after.get("warppool_block_shares_total"), Some(3.0));
    assert_eq!(after.get("warppool_workers{status=\"online\"}"), Some(1.0));
    let m10 = "warppool_pool_hashrate_hashes_per_second{window=\"10m\"}";
    let low = "warppool_pool_hashrate_low_hashes_per_second{window=\"10m\"}";
    assert!(after.get(low).unwrap() < after.get(m10).unwrap());
    // The first template's publication reached the shard (a fan-out with no miner yet).
    let fanouts = after.get("warppool_job_fanout_seconds_count{shard=\"0\"}");
    assert!(fanouts.is_some_and(|n| n >= 1.0), "{after:?}");
    let rpc = "warppool_rpc_latency_seconds_count{node=\"fake\",method=\"submitblock\"}";
    assert!(after.get(rpc).is_some_and(|n| n >= 3.0), "{after:?}");
    p.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_worker_series_stay_under_their_cap_and_the_rest_are_counted() {
    let p = pool("metrics-cap").await;
    let extra = 25;
    let events: Vec<ShareEvent> = (0..(METRICS_WORKER_SERIES_MAX + extra) as u64)
        .map(|i| ShareEvent::Authorized {
            connection: 1_000_000 + i,
            username: format!("{ADDRESS}.w{i:05}"),
            user_agent: Some("bitaxe/BM1370/v2.4.0".to_owned()),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
            local_port: 3333,
            tls: false,
        })
        .collect();
    p.daemon.recorder().on_shares(&events);
    let (status, _, text) = scrape(p.http, Some(OPENMETRICS)).await;
    assert_eq!(status, 200);
    let m = parse(&text, true);
    let series = m.count("warppool_worker_hashrate_hashes_per_second{");
    assert_eq!(series, METRICS_WORKER_SERIES_MAX);
    assert_eq!(m.get("warppool_worker_series_over_cap"), Some(extra as f64));
    assert_eq!(
        m.get("warppool_workers{status=\"online\"}"),
        Some((METRICS_WORKER_SERIES_MAX + extra) as f64)
    );
    // No shares: equal rates, so the names decide, first ones first; addresses are masked.
    let first = format!("{ADDRESS}.w00000");
    let first = format!(
        "warppool_worker_hashrate_hashes_per_second{{worker_id=\"{}\",worker=\"{}\"}}",
        warppool_control::api::v1::worker_id(&first),
        warppool_control::api::v1::mask_name(&first),
    );
    assert_eq!(m.get(&first), Some(0.0), "{text}");
    assert!(
        !text.contains(ADDRESS),
        "no full payout address in the metrics"
    );
    p.daemon.shutdown().await.unwrap();
}

/// The daemon's real router over a state of its own, with admin auth on the daemon's database
/// and a `metrics` token made the way the CLI makes one (its text).
fn real_router(p: &Pool) -> (axum::Router, String) {
    let pool = p.daemon.pool();
    let metrics = warppool_control::metrics::Metrics::new(warppool_control::metrics::Sources {
        recorder: Arc::clone(p.daemon.recorder()),
        status: pool.template_loop().status(),
        pool: pool.metrics_sources().clone(),
        version: "test",
        network: bitcoin::Network::Regtest,
        started_at: 0,
        min_difficulty: 1.0,
        https: None,
    });
    // A metrics token, made the way the CLI makes one.
    let auth = Arc::new(
        warppool_control::auth::Auth::open(warppool_control::auth::AuthConfig::new(p.dir.db()))
            .unwrap(),
    );
    auth.cli_create_admin("op", "correct horse battery staple", 0)
        .unwrap();
    let scope = warppool_control::auth::Scope::Metrics;
    let grafana = auth.cli_create_token("op", "grafana", scope, 0).unwrap();
    let grafana = grafana.text.expose().to_owned();
    let state = warppool_control::api::ApiState {
        recorder: Arc::clone(p.daemon.recorder()),
        status: pool.template_loop().status(),
        template_seen: Arc::new(std::sync::Mutex::new((0, std::time::Instant::now()))),
        queries: warppool_control::api::QueryPool::start().unwrap(),
        info: Arc::new(warppool_control::api::PoolInfo {
            version: "test",
            network: bitcoin::Network::Regtest,
            started_at: 0,
            demo: false,
            endpoints: Vec::new(),
            min_difficulty: 1.0,
            ui: warppool_control::api::UiPolicy::default(),
            config: Default::default(),
        }),
        health: Arc::default(),
        metrics: Arc::new(metrics),
        network: pool.network(),
        jobs: Arc::clone(pool.jobs()),
        auth: Some(Arc::clone(&auth)),
        plane: None,
        pages: std::sync::Arc::default(),
        allowed_hosts: Arc::new(
            warppool_control::auth::AllowedHosts::new::<&str>([127, 0, 0, 1].into(), &[]).unwrap(),
        ),
        config: None,
        https: None,
        nodes: None,
    };
    let router = warppool_control::api::router(Arc::new(state));
    (router, grafana)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_loopback_is_refused_by_the_real_router() {
    let p = pool("metrics-auth").await;
    let (router, grafana) = real_router(&p);
    let ask = |peer: Option<&str>, token: bool| {
        let mut request = Request::get("/metrics").header("host", "127.0.0.1");
        if token {
            request = request.header("authorization", "Bearer wp_0123456789");
        }
        if peer == Some("127.0.0.1:40001") {
            // A reverse proxy on the pool's host: loopback peer, a client behind it.
            request = request.header("x-forwarded-for", "203.0.113.9");
        }
        let mut request = request.body(Body::empty()).unwrap();
        if let Some(peer) = peer {
            let peer: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        router.clone().oneshot(request)
    };
    let refused = [
        (Some("192.0.2.7:40000"), false),
        (Some("[2001:db8::1]:1"), true),
        (Some("127.0.0.1:40001"), false),
    ];
    for (peer, token) in refused {
        let response = ask(peer, token).await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{peer:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
    assert_eq!(
        ask(None, false).await.unwrap().status().as_u16(),
        401,
        "no peer, no scrape"
    );
    let response = ask(Some("127.0.0.1:40000"), false).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // From afar with a metrics token: served.
    let mut request = Request::get("/metrics")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {grafana}"))
        .body(Body::empty())
        .unwrap();
    let far: SocketAddr = "192.0.2.7:40000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(far));
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "a metrics token scrapes from anywhere"
    );
    p.daemon.shutdown().await.unwrap();
}
