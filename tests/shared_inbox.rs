//! A shared inbox stays shared: two runs (two workers of one scenario) read codes from one Dovecot
//! inbox at once, each deleting the code mail it read; both pass, and each leaves mail to users that
//! are not its own exactly as it was — another run's code mail is neither deleted nor marked seen.

mod support;

use std::time::Duration;

use futures::TryStreamExt;
use otp_harness::testkit::dovecot::Dovecot;
use support::run::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_on_one_inbox_both_pass_and_leave_each_others_mail_alone() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot");
    let scenario = imap_scenario(
        "shared",
        &dovecot,
        16,
        "from = \"no-reply@auth.otp-harness.test\"\ntimeout = \"10s\"",
        &format!("{}\nmode = \"poll\"\npoll_interval = \"20ms\"", plain_imap(&dovecot)),
        "[[flow]]\nkind = \"login\"\nweight = 3\n[[flow]]\nkind = \"retry\"\n[probes]\ncode_randomness = false\nunknown_user = false\n[load]\nusers = 4\nduration = \"3s\"",
    );
    // A code mail for a user of neither run (another team's run, say), arriving while both read.
    let foreign = "From: no-reply@auth.otp-harness.test\r\nTo: loadtest+999@mail.test\r\nSubject: Your sign-in code\r\n\r\nYour sign-in code is 246813\r\n";
    let plant = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        dovecot.deliver("no-reply@auth.otp-harness.test", "loadtest+999@mail.test", foreign.as_bytes()).await
    };
    let (w0, w1, planted) = tokio::join!(
        run_with_args(&scenario.text, &["--worker", "0/2"]),
        run_with_args(&scenario.text, &["--worker", "1/2"]),
        plant
    );
    planted.expect("foreign mail delivered");
    for (name, w) in [("worker 0", &w0), ("worker 1", &w1)] {
        assert_eq!(w.code, 0, "{name}: {}", w.explain());
        assert_eq!(w.check("sign_in").as_deref(), Some("pass"), "{name}");
        assert_eq!(w.check("retry").as_deref(), Some("pass"), "{name}");
        let errors = &w.summary["errors"];
        assert!(errors.get("OtpTimeout").is_none(), "{name}: no code was taken from under it: {errors}");
    }

    // What is left: the foreign code mail, unread and undeleted; no code mail of either run.
    let mut imap = dovecot.login().await.expect("login");
    imap.select("INBOX").await.expect("select");
    let left: Vec<(String, Vec<String>)> = imap
        .fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (TO)])")
        .await
        .expect("fetch")
        .try_collect::<Vec<_>>()
        .await
        .expect("fetched")
        .iter()
        .map(|f| {
            let to = String::from_utf8_lossy(f.header().unwrap_or_default()).trim().to_string();
            (to, f.flags().map(|flag| format!("{flag:?}")).collect())
        })
        .collect();
    assert_eq!(left.len(), 1, "only the foreign mail stays: {left:?}");
    let (to, flags) = &left[0];
    assert!(to.contains("loadtest+999@mail.test"), "{to}");
    assert!(flags.iter().all(|f| !f.contains("Seen") && !f.contains("Deleted")), "left exactly as it was: {flags:?}");
    for (name, w) in [("worker 0", &w0), ("worker 1", &w1)] {
        let others = w.summary["mail"]["others"].as_u64().unwrap_or(0);
        assert!(others >= 1, "{name} saw mail for users not its own and left it: {}", w.summary["mail"]);
    }
}
