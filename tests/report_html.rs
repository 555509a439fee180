//! report.html opens in headless Chromium (Debian's `chromium`) with no network and renders its charts:
//! the DOM Chromium builds holds the charts with their lines — sign-ins, errors and throttling one line
//! per flow kind among them, axis ticks on round values — and the screenshot is a full page.

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
    // Sign-ins, errors and throttling per second over time, two lines per flow kind (login, retry, lockout).
    for chart in ["sign-ins-over-time", "errors-over-time"] {
        let start = dom.find(&format!("<svg id=\"{chart}\"")).unwrap_or_else(|| panic!("{chart} in the DOM"));
        let svg = &dom[start..start + dom[start..].find("</svg>").expect("closed")];
        for flow in ["login", "retry", "lockout"] {
            assert!(svg.contains(&format!("data-name=\"{flow} ")), "{chart}: a line for {flow}");
        }
        assert_eq!(svg.matches("<polyline").count(), 6, "{chart}: two lines per flow kind");
    }
    // Axis ticks fall on round values: evenly spaced by 1, 2, 2.5 or 5 times a power of ten.
    for chart in ["latency-over-time", "throughput-over-time", "sign-ins-over-time"] {
        let start = dom.find(&format!("<svg id=\"{chart}\"")).expect("chart");
        let svg = &dom[start..start + dom[start..].find("</svg>").expect("closed")];
        let ticks: Vec<(bool, f64)> = svg
            .split("<text class=\"tick\"")
            .skip(1)
            .map(|t| {
                let x_axis = t.split('>').next().is_some_and(|attrs| attrs.contains("middle"));
                let label = t.split('>').nth(1).and_then(|l| l.split('<').next()).expect("a label");
                (x_axis, label.parse::<f64>().unwrap_or_else(|_| panic!("{chart}: tick {label:?} is a number")))
            })
            .collect();
        for axis in [true, false] {
            let values: Vec<f64> = ticks.iter().filter(|t| t.0 == axis).map(|t| t.1).collect();
            assert!(values.len() >= 3, "{chart}: ticks on each axis: {values:?}");
            let step = values[1] - values[0];
            let magnitude = 10f64.powf(step.log10().floor());
            let mantissa = step / magnitude;
            assert!(
                [1.0, 2.0, 2.5, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
                "{chart}: a round step, not {step} ({values:?})"
            );
            for (k, v) in values.iter().enumerate() {
                assert!(
                    (v - (values[0] + step * k as f64)).abs() < 1e-6 && (v / step - (v / step).round()).abs() < 1e-6,
                    "{chart}: {values:?}"
                );
            }
        }
    }

    let shot = tempfile::tempdir().expect("shot");
    let png = shot.path().join("report.png");
    let out = headless(&[format!("--screenshot={}", png.display()), "--window-size=1100,1800".into(), url]).await;
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 60_000, "a rendered page, not a blank one: {size} bytes ({})", String::from_utf8_lossy(&out.stderr));
}
