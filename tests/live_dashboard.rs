//! `run --dashboard`: the live page, opened in headless Chromium (Debian's `chromium`, driven over the
//! DevTools protocol) while the run goes, changes between two reads of its DOM and then shows the final
//! verdict and the report files; `/metrics`, scraped twice mid-run, parses with Prometheus's own Python
//! parser (`prometheus_client`, in `.venv` from scripts/install-test-deps.sh) and its counters grow; what
//! the page and `/metrics` serve holds no code, token or Session string; a port in use or an address that
//! is not allowed stops the run before it starts, with one clear error. Every server listens on 127.0.0.1.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use otp_harness::pool::{LocalPool, PoolConfig, RunningPool};
use serde_json::{Value, json};
use support::run::*;
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

/// Bounded waits: generous, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A run of `scenario` with `args`, its stderr read as it comes: the dashboard's address once printed.
struct LiveRun {
    child: tokio::process::Child,
    stderr: Arc<parking_lot::Mutex<String>>,
    base: String,
    reports: PathBuf,
    _temp: tempfile::TempDir,
}

impl LiveRun {
    async fn start(scenario: &str, args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let file = temp.path().join("scenario.toml");
        std::fs::write(&file, scenario).expect("scenario written");
        let reports = temp.path().join("reports");
        let mut child = run_command(&file, &reports)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("otp-harness starts");
        let stderr = Arc::new(parking_lot::Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
        let collected = Arc::clone(&stderr);
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("dashboard: http://")
                    && let Some(addr) = rest.split('/').next()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(format!("http://{addr}"));
                }
                let mut all = collected.lock();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let base = tokio::time::timeout(PATIENCE, rx)
            .await
            .unwrap_or_else(|_| panic!("no dashboard line:\n{}", stderr.lock()))
            .unwrap_or_else(|_| panic!("the run ended without a dashboard:\n{}", stderr.lock()));
        assert!(base.starts_with("http://127.0.0.1:"), "loopback: {base}");
        Self { child, stderr, base, reports, _temp: temp }
    }

    async fn get(&self, path: &str) -> String {
        let response = reqwest::get(format!("{}{path}", self.base)).await.expect("the dashboard answers");
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.text().await.expect("a body")
    }

    /// Waits for the run to end; its exit code.
    async fn wait(&mut self) -> i32 {
        let status =
            tokio::time::timeout(PATIENCE * 2, self.child.wait()).await.expect("the run ends").expect("status");
        status.code().unwrap_or(-1)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().clone()
    }
}

/// A closed-model load of `duration` with two virtual users and a short pause, login and retry flows.
fn load(duration: &str) -> String {
    format!(
        "[[flow]]\nkind = \"login\"\nweight = 3\n[[flow]]\nkind = \"retry\"\nweight = 1\nwrong = 1\n\
         [report]\nprogress = \"0s\"\n[load]\nusers = 2\nduration = \"{duration}\"\npause = \"20ms\"\n\
         [thresholds]\n\"login.success_rate\" = \">= 99%\"\n\"login.p99\" = \"5s\"\n"
    )
}

// ---- Chromium over the DevTools protocol -------------------------------------------------------

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chromium not found: scripts/install-test-deps.sh installs Debian's chromium")
}

/// Headless Chromium with its DevTools endpoint on a free loopback port.
struct Browser {
    child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let profile = tempfile::tempdir().expect("profile");
        let child = tokio::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium starts");
        let file = profile.path().join("DevToolsActivePort");
        let port = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(port) = std::fs::read_to_string(&file).ok().and_then(|t| t.lines().next()?.parse().ok()) {
                    return port;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("chromium writes its DevTools port");
        Self { child, port, _profile: profile }
    }

    /// Opens `url` in a new tab; the tab's DevTools connection.
    async fn open(&self, url: &str) -> Tab {
        let target: Value = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{}/json/new?{url}", self.port))
            .send()
            .await
            .expect("DevTools answers")
            .json()
            .await
            .expect("a target");
        let ws = target["webSocketDebuggerUrl"].as_str().expect("a debugger URL").to_string();
        let (socket, _) = tokio_tungstenite::connect_async(ws).await.expect("DevTools websocket");
        Tab { socket, next_id: 0 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

struct Tab {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// The value of a JavaScript expression in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({ "id": id, "method": "Runtime.evaluate", "params": { "expression": expression, "returnByValue": true } });
        self.socket.send(Message::text(call.to_string())).await.expect("sent");
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            let answer: Value = serde_json::from_str(&text).expect("JSON from DevTools");
            if answer["id"] == id {
                assert!(answer["result"]["exceptionDetails"].is_null(), "{expression}: {answer}");
                return answer["result"]["result"]["value"].clone();
            }
        }
        panic!("DevTools closed the connection");
    }

    /// A DevTools command's result.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let call = json!({ "id": id, "method": method, "params": params });
        self.socket.send(Message::text(call.to_string())).await.expect("sent");
        while let Some(message) = self.socket.next().await {
            let Ok(Message::Text(text)) = message else { continue };
            let answer: Value = serde_json::from_str(&text).expect("JSON from DevTools");
            if answer["id"] == id {
                return answer["result"].clone();
            }
        }
        panic!("DevTools closed the connection");
    }

    /// A PNG of the page (the whole of it, 1100 pixels wide).
    async fn screenshot(&mut self) -> Vec<u8> {
        let metrics = json!({ "width": 1100, "height": 2200, "deviceScaleFactor": 1, "mobile": false });
        self.call("Emulation.setDeviceMetricsOverride", metrics).await;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let data = shot["data"].as_str().expect("PNG data");
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).expect("base64")
    }

    /// Evaluates `expression` until `done` holds for its value (bounded).
    async fn until(&mut self, expression: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.eval(expression).await;
            if done(&value) {
                return value;
            }
            assert!(tokio::time::Instant::now() < deadline, "gave up waiting on {expression}: last {value}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What a DOM read takes: the sign-ins so far, the rates chart (its lines' points) and a latency chart.
const READ: &str = r#"(() => {
  if (!document.getElementById('now-total')) return null;
  const lines = [...document.querySelectorAll('#rates-over-time polyline')];
  return {
    total: Number(document.getElementById('now-total').textContent),
    points: lines.length ? lines[0].getAttribute('points').split(' ').length : 0,
    rates: document.getElementById('chart-rates').innerHTML,
    login: (document.getElementById('latency-login') || {}).outerHTML || '',
    checks: document.querySelectorAll('#checks tr').length,
    pool: document.querySelectorAll('#pool tr').length,
    verdict: document.getElementById('verdict').textContent,
  };
})()"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_changes_while_the_run_goes_then_shows_the_verdict() {
    let scenario = format!(
        "name = \"live\"\n[target]\nkind = \"local\"\n[users]\ntest_users = true\npattern = \"live+{{n}}@mail.test\"\n\
         count = 12\n[otp]\nsource = \"outbox\"\ntimeout = \"5s\"\n{}",
        load("8s")
    );
    let mut run = LiveRun::start(&scenario, &["--dashboard", "127.0.0.1:0"]).await;
    let browser = Browser::start().await;
    let mut tab = browser.open(&format!("{}/", run.base)).await;

    let first =
        tab.until(READ, |v| v["total"].as_u64().unwrap_or(0) > 0 && v["points"].as_u64().unwrap_or(0) >= 2).await;
    assert!(first["verdict"] == "RUNNING", "no verdict yet: {first}");
    let second = tab
        .until(READ, |v| {
            v["total"].as_u64() > first["total"].as_u64() && v["points"].as_u64() > first["points"].as_u64()
        })
        .await;
    assert_ne!(first["rates"], second["rates"], "the chart was redrawn with more points");
    assert!(second["login"].as_str().is_some_and(|s| s.contains("<polyline")), "login latency charted: {second}");
    assert!(second["checks"].as_u64() > Some(1), "checks listed: {second}");
    assert!(second["pool"].as_u64() > Some(1), "the embedded pool's stats beside: {second}");
    let shot = tab.screenshot().await;
    assert!(shot.len() > 60_000, "a rendered page with its charts, not a blank one: {} bytes", shot.len());
    if let Some(path) = std::env::var_os("LIVE_DASHBOARD_SCREENSHOT") {
        std::fs::write(path, &shot).expect("screenshot written");
    }

    let verdict = tab
        .until("(document.getElementById('final') || {hidden: true}).hidden ? '' : document.getElementById('verdict').textContent", |v| {
            v.as_str().is_some_and(|s| !s.is_empty())
        })
        .await;
    assert_eq!(verdict, "PASS (exit 0)", "the final verdict on the live page");
    let links: Vec<String> = serde_json::from_value(
        tab.eval("[...document.querySelectorAll('#final a')].map(a => a.getAttribute('href'))").await,
    )
    .expect("links");
    assert!(links.contains(&"/files/report.html".to_string()), "the report files are linked: {links:?}");
    let dom = tab.eval("document.documentElement.outerHTML").await;
    let dom = dom.as_str().expect("the DOM");
    assert!(!dom.contains("http://") && !dom.contains("https://"), "nothing from the network");

    let code = run.wait().await;
    assert_eq!(code, 0, "{}", run.stderr());
    let folder = std::fs::read_dir(&run.reports).expect("reports").flatten().next().expect("a run folder").path();
    assert!(dom.contains(&folder.display().to_string()), "the run folder is named on the page");
    assert_clean([("live page DOM", dom)], &Secrets::default());
}

// ---- /metrics ------------------------------------------------------------------------------------

/// Prometheus's Python parser (prometheus_client), from `.venv`.
fn prometheus_parser() -> PathBuf {
    let python = repo_file(".venv/bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{} lacks prometheus_client: run scripts/install-test-deps.sh", python.display());
    python
}

/// One sample as the parser read it.
#[derive(Debug, Clone, serde::Deserialize)]
struct Parsed {
    family: String,
    kind: String,
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// An exposition as the parser read it: every family (name → type, samples or not) and every sample.
#[derive(Debug, Clone, serde::Deserialize)]
struct Exposition {
    families: BTreeMap<String, String>,
    samples: Vec<Parsed>,
}

/// Parses an exposition with `prometheus_client.parser.text_string_to_metric_families` (it raises on
/// anything malformed).
async fn parse(python: &PathBuf, text: &str) -> Exposition {
    const SCRIPT: &str = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families\n\
        families, samples = {}, []\nfor f in text_string_to_metric_families(sys.stdin.read()):\n    \
        families[f.name] = f.type\n    for s in f.samples:\n        \
        samples.append({'family': f.name, 'kind': f.type, 'name': s.name, 'labels': s.labels, 'value': s.value})\n\
        print(json.dumps({'families': families, 'samples': samples}))\n";
    let mut child = tokio::process::Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes()).await.expect("written");
    drop(stdin);
    let output = child.wait_with_output().await.expect("parsed");
    assert!(
        output.status.success(),
        "the parser refused /metrics:\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}

fn sum(samples: &[Parsed], name: &str) -> f64 {
    samples.iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

/// A pool on a free port with `{pattern}` users 1..=count (the test's own, so every code it mails is known).
async fn own_pool(pattern: &str, count: u32) -> RunningPool {
    let mut config = PoolConfig::default();
    config.users.pattern = Some(pattern.into());
    config.users.count = count;
    LocalPool::start(config, "127.0.0.1:0".parse().expect("addr")).await.expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scraped_twice_mid_run_parse_and_grow() {
    let python = prometheus_parser();
    let pool = own_pool("prom+{n}@mail.test", 16).await;
    let scenario = external_scenario(
        &pool,
        pool.endpoint(),
        "prom+{n}@mail.test",
        16,
        &format!("{}\n{}", outbox_otp(&pool), load("8s")),
    );
    let mut run = LiveRun::start(&scenario, &["--worker", "1/2", "--dashboard", ":0"]).await;

    let started = "otp_harness_flows_started_total";
    let (first_text, first) = loop {
        let text = run.get("/metrics").await;
        let parsed = parse(&python, &text).await;
        if sum(&parsed.samples, started) > 0.0 {
            break (text, parsed);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (second_text, second) = loop {
        let text = run.get("/metrics").await;
        let parsed = parse(&python, &text).await;
        if sum(&parsed.samples, started) > sum(&first.samples, started) {
            break (text, parsed);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let page = run.get("/").await;
    let state = run.get("/api/state").await;
    assert_eq!(run.wait().await, 0, "{}", run.stderr());
    let families = second.families.clone();
    let (first, second) = (first.samples, second.samples);

    for sample in first.iter().chain(&second) {
        assert_eq!(
            sample.labels.get("worker").map(String::as_str),
            Some("1"),
            "every series names the worker: {sample:?}"
        );
        assert!(sample.name.starts_with("otp_harness_"), "{sample:?}");
    }
    let kind = |family: &str| second.iter().find(|s| s.family == family).map(|s| s.kind.clone());
    assert_eq!(kind("otp_harness_flows_started").as_deref(), Some("counter"));
    assert_eq!(kind("otp_harness_step_duration_seconds").as_deref(), Some("histogram"));
    assert_eq!(kind("otp_harness_flows_in_flight").as_deref(), Some("gauge"));
    assert!(second.iter().any(|s| s.name == "otp_harness_info" && s.labels["workers"] == "2"));

    // Counters never go down between the scrapes, and the sign-ins and their latency samples grew.
    for before in first.iter().filter(|s| s.kind == "counter" || s.name.ends_with("_count")) {
        let after = second.iter().find(|s| s.name == before.name && s.labels == before.labels);
        let after = after.unwrap_or_else(|| panic!("{} {:?} is still there", before.name, before.labels));
        assert!(after.value >= before.value, "{} {:?}: {} → {}", before.name, before.labels, before.value, after.value);
    }
    let login = |samples: &[Parsed]| {
        samples
            .iter()
            .find(|s| s.name == "otp_harness_step_duration_seconds_count" && s.labels["step"] == "login")
            .map(|s| s.value)
            .unwrap_or(0.0)
    };
    assert!(login(&second) > login(&first), "login latencies were added");
    assert!(sum(&second, "otp_harness_flows_ended_total") > sum(&first, "otp_harness_flows_ended_total"));

    // Each step's buckets are cumulative up to +Inf, which is its count.
    for step in ["initiate", "otp_delivery", "respond", "login"] {
        let buckets: Vec<&Parsed> = second
            .iter()
            .filter(|s| s.name == "otp_harness_step_duration_seconds_bucket" && s.labels["step"] == step)
            .collect();
        assert!(buckets.len() > 2, "{step} has buckets");
        assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value), "{step}: cumulative");
        let count =
            second.iter().find(|s| s.name == "otp_harness_step_duration_seconds_count" && s.labels["step"] == step);
        assert_eq!(buckets.last().map(|b| (b.labels["le"].as_str(), b.value)), count.map(|c| ("+Inf", c.value)));
    }
    assert!(
        second
            .iter()
            .any(|s| s.name == "otp_harness_threshold_limit" && s.labels["threshold"] == "login.p99" && s.value == 5.0)
    );
    assert!(
        second.iter().any(|s| s.name == "otp_harness_check_observations_total"
            && s.labels["result"] == "passed"
            && s.value > 0.0)
    );

    // What docs/prometheus.md lists and the Grafana dashboard queries is what /metrics serves, and back.
    let served: std::collections::BTreeSet<&str> = families.keys().map(String::as_str).collect();
    let named = |text: &str| -> std::collections::BTreeSet<String> {
        let re = regex::Regex::new(r"otp_harness_[a-z_]+").expect("regex");
        re.find_iter(text)
            .map(|m| {
                let name = m.as_str();
                let base = ["_bucket", "_total"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
                base.to_string()
            })
            .collect()
    };
    let doc = std::fs::read_to_string(repo_file("docs/prometheus.md")).expect("docs/prometheus.md");
    let grafana = std::fs::read_to_string(repo_file("docs/grafana/otp-harness.json")).expect("the Grafana dashboard");
    let dashboard: Value = serde_json::from_str(&grafana).expect("the dashboard is JSON");
    assert!(dashboard["panels"].as_array().is_some_and(|p| p.len() > 5), "panels");
    for name in named(&doc).iter().chain(&named(&grafana)) {
        assert!(served.contains(name.as_str()), "{name} is documented or queried but not served: {served:?}");
    }
    for family in &served {
        assert!(named(&doc).contains(*family), "{family} is served but not in docs/prometheus.md");
    }

    let codes: Vec<String> = pool
        .state()
        .mail
        .outbox()
        .expect("outbox")
        .list(&Default::default())
        .into_iter()
        .map(|m| support::code_in(&m.body.text_part.unwrap_or_default()))
        .collect();
    assert!(codes.len() > 5, "codes were mailed: {}", codes.len());
    assert_clean(
        [
            ("/metrics (first)", first_text.as_str()),
            ("/metrics (second)", &second_text),
            ("/", &page),
            ("/api/state", &state),
        ],
        &Secrets::codes(codes),
    );
}

// ---- Errors before the run -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_or_a_bad_address_stops_the_run_before_it_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().expect("addr").port();
    let scenario = format!(
        "name = \"busy\"\n[target]\nkind = \"local\"\n[users]\ntest_users = true\npattern = \"b+{{n}}@mail.test\"\n\
         count = 12\n[otp]\nsource = \"outbox\"\n{}",
        load("1s")
    );
    let in_use = run_with_args(&scenario, &["--dashboard", &format!("127.0.0.1:{port}")]).await;
    assert_eq!(in_use.code, 2, "{}", in_use.explain());
    assert!(in_use.stderr.contains(&format!("port {port} is already in use")), "{}", in_use.stderr);
    assert_eq!(in_use.stderr.lines().count(), 1, "one clear error: {}", in_use.stderr);
    assert!(in_use.dir.is_none(), "nothing ran: no run folder");

    for (addr, says) in
        [("mail.example.test:80", "is not an address"), ("224.0.0.1:9470", "not an address a server can listen on")]
    {
        let bad = run_with_args(&scenario, &["--dashboard", addr]).await;
        assert_eq!(bad.code, 2, "{addr}: {}", bad.explain());
        assert!(bad.stderr.contains(says) && bad.stderr.lines().count() == 1, "{addr}: {}", bad.stderr);
        assert!(bad.dir.is_none(), "{addr}: nothing ran");
    }
    drop(taken);
}
