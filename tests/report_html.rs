//! report.html opens in headless Chromium (Debian's `chromium`) with no network and renders its charts:
//! the DOM Chromium builds holds the three charts with their lines, and the screenshot is a full page.

mod support;

use std::path::PathBuf;

use support::run::*;

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("chromium not found: scripts/install-test-deps.sh installs Debian's chromium")
}

/// Chromium as the machine's probes run it: headless, no sandbox (root), no background network.
async fn headless(args: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().expect("profile");
    tokio::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .await
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_its_charts_offline() {
    let scenario = local_scenario("", 3, 6, "[report]\nprogress = \"0s\"\nhlog_interval = \"200ms\"");
    let outcome = run_scenario(&scenario).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    let page = outcome.dir.clone().expect("run folder").join("report.html");
    let html = std::fs::read_to_string(&page).expect("report.html");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "self-contained, no script"
    );

    let url = format!("file://{}", page.display());
    let dom = headless(&["--dump-dom".into(), url.clone()]).await;
    let dom = String::from_utf8_lossy(&dom.stdout);
    for chart in ["latency-over-time", "throughput-over-time", "percentile-spectrum"] {
        let start = dom.find(&format!("<svg id=\"{chart}\"")).unwrap_or_else(|| panic!("{chart} in the DOM"));
        let svg = &dom[start..start + dom[start..].find("</svg>").expect("closed")];
        let lines = svg.matches("<polyline").count();
        assert!(lines >= 4, "{chart}: a line per step at least, got {lines}");
        assert!(svg.contains("points=\"") && !svg.contains("points=\"\""), "{chart}: lines have points");
    }
    assert!(dom.contains("id=\"verdict\"") && dom.contains("PASS"), "the verdict is on the page");

    let shot = tempfile::tempdir().expect("shot");
    let png = shot.path().join("report.png");
    let out = headless(&[format!("--screenshot={}", png.display()), "--window-size=1100,1800".into(), url]).await;
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 60_000, "a rendered page, not a blank one: {size} bytes ({})", String::from_utf8_lossy(&out.stderr));
}
