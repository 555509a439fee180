//! The test-user lifecycle against a deployed pool (a local pool in this process, reached as any
//! Cognito endpoint through the AWS SDK): `users create` is idempotent and marks what it makes,
//! survives UserCreation throttling without losing or doubling a user, `users delete` refuses an
//! unmarked user, and `run --provision --cleanup` leaves the pool as it found it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use otp_harness::pool::{PoolConfig, RunningPool};
use support::run::{external_scenario, outbox_otp};
use support::{sdk, start_pool};

/// A pool with `seed+1..3@mail.test` (users the harness did not make) and the given schema.
async fn pool_with(custom_attributes: &[&str], edit: impl FnOnce(&mut PoolConfig)) -> RunningPool {
    let mut config = PoolConfig::default();
    config.users.pattern = Some("seed+{n}@mail.test".into());
    config.users.count = 3;
    config.custom_attributes = custom_attributes.iter().map(|s| s.to_string()).collect();
    edit(&mut config);
    start_pool(config).await
}

/// Every user's email in the pool (ListUsers, paged; the pool's usernames are UUIDs, as in a pool that
/// signs in by email).
async fn usernames(pool: &RunningPool) -> BTreeSet<String> {
    let client = sdk(pool);
    let mut names = BTreeSet::new();
    let mut token = None;
    loop {
        let out = client
            .list_users()
            .user_pool_id(&pool.info().user_pool_id)
            .set_pagination_token(token)
            .send()
            .await
            .expect("ListUsers");
        names.extend(out.users().iter().filter_map(|u| {
            u.attributes().iter().find(|a| a.name() == "email").and_then(|a| a.value()).map(str::to_string)
        }));
        match out.pagination_token() {
            Some(next) => token = Some(next.to_string()),
            None => return names,
        }
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `otp-harness ARGS…` with dummy AWS credentials and nothing read from the machine's AWS config.
async fn harness(args: &[&str]) -> Output {
    let output = support::run::harness_command().args(args).output().await.expect("otp-harness runs");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write_scenario(dir: &Path, text: &str) -> String {
    let file = dir.join("scenario.toml");
    std::fs::write(&file, text).expect("scenario written");
    file.to_string_lossy().into_owned()
}

fn scenario(pool: &RunningPool, pattern: &str, count: u32) -> String {
    format!(
        "{}\n[load]\nusers = 2\niterations = 2\n",
        external_scenario(pool, pool.endpoint(), pattern, count, &quick_outbox_otp(pool))
    )
}

/// `[otp]` reading the pool's outbox, giving up on a code after 2 s (users that do not exist get none).
fn quick_outbox_otp(pool: &RunningPool) -> String {
    outbox_otp(pool).replacen("source = \"outbox\"", "source = \"outbox\"\ntimeout = \"2s\"", 1)
}

#[tokio::test]
async fn provision_then_run_then_cleanup_leaves_the_pool_as_it_was() {
    let pool = pool_with(&["otp_harness"], |_| {}).await;
    let before = usernames(&pool).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(temp.path(), &scenario(&pool, "vu+{n}@mail.test", 10));
    let reports = temp.path().join("reports");
    let reports = reports.to_string_lossy();

    let without = harness(&["run", &file, "--out", &reports]).await;
    assert_ne!(without.code, 0, "without --provision the users do not exist:\n{}", without.stderr);

    let run = harness(&["run", &file, "--out", &reports, "--provision", "--cleanup"]).await;
    assert_eq!(run.code, 0, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("users create: 10 created, 0 existed"), "{}", run.stderr);
    assert!(run.stderr.contains("users delete: 10 deleted, 0 not in the pool"), "{}", run.stderr);
    assert_eq!(usernames(&pool).await, before, "the pool holds exactly the users it held before");
}

#[tokio::test]
async fn create_is_idempotent_and_delete_refuses_a_user_it_did_not_make() {
    let pool = pool_with(&["otp_harness"], |_| {}).await;
    // Someone made vu+3 by hand: same range, no marker.
    sdk(&pool)
        .admin_create_user()
        .user_pool_id(&pool.info().user_pool_id)
        .username("vu+3@mail.test")
        .user_attributes(AttributeType::builder().name("email").value("vu+3@mail.test").build().expect("attr"))
        .send()
        .await
        .expect("a hand-made user");
    let temp = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(temp.path(), &scenario(&pool, "vu+{n}@mail.test", 10));

    let first = harness(&["users", "create", &file, "--quiet"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("9 created, 0 existed"), "{}", first.stdout);
    assert!(first.stdout.contains("1 existed without the otp-harness marker"), "{}", first.stdout);
    let again = harness(&["users", "create", &file, "--quiet"]).await;
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("0 created, 9 existed"), "a second create changes nothing: {}", again.stdout);

    let list = harness(&["users", "list", &file]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("10 of 10 test users exist; 9 carry the marker"), "{}", list.stdout);
    let unmarked: Vec<&str> = list.stdout.lines().filter(|l| l.contains("NOT MARKED")).collect();
    assert_eq!(unmarked.len(), 1, "{}", list.stdout);
    assert!(unmarked[0].starts_with("vu+3@mail.test"), "{}", list.stdout);

    let delete = harness(&["users", "delete", &file, "--quiet"]).await;
    assert_eq!(delete.code, 3, "a refused user makes delete fail: {}{}", delete.stdout, delete.stderr);
    assert!(delete.stdout.contains("9 deleted"), "{}", delete.stdout);
    assert!(delete.stdout.contains("refused 1 without the otp-harness marker"), "{}", delete.stdout);
    let left = usernames(&pool).await;
    assert!(left.contains("vu+3@mail.test"), "the unmarked user is still there: {left:?}");
    assert_eq!(left.iter().filter(|u| u.starts_with("vu+")).count(), 1, "{left:?}");
    assert_eq!(left.iter().filter(|u| u.starts_with("seed+")).count(), 3, "users outside the range untouched");
}

#[tokio::test]
async fn creation_rides_out_user_creation_throttling_without_losing_or_doubling_a_user() {
    let pool = pool_with(&["otp_harness"], |c| c.faults.throttle.user_creation = Some(8.0)).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(temp.path(), &scenario(&pool, "vu+{n}@mail.test", 40));
    let out = harness(&["users", "create", &file, "--rate", "200", "--concurrency", "8"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("40 created, 0 existed"), "{}", out.stdout);
    let throttled: u32 = out
        .stdout
        .split(", ")
        .find_map(|part| part.trim().strip_suffix(" throttled answers waited out"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a throttled count");
    assert!(throttled > 0, "the pool throttled (8/s against 200/s asked): {}", out.stdout);
    let vus: Vec<String> = usernames(&pool).await.into_iter().filter(|u| u.starts_with("vu+")).collect();
    let expected: BTreeSet<String> = (1..=40).map(|n| format!("vu+{n}@mail.test")).collect();
    assert_eq!(vus.into_iter().collect::<BTreeSet<_>>(), expected, "every user once");
    assert!(out.stderr.contains("users create: 40 test users"), "a progress line: {}", out.stderr);
}

#[tokio::test]
async fn without_the_custom_attribute_only_tagged_addresses_are_made() {
    let pool = pool_with(&[], |_| {}).await;
    let temp = tempfile::tempdir().expect("temp dir");
    let untagged = write_scenario(temp.path(), &scenario(&pool, "vu+{n}@mail.test", 8));
    let refused = harness(&["users", "create", &untagged, "--quiet"]).await;
    assert_eq!(refused.code, 3, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("custom:otp_harness") && refused.stderr.contains("\"otp-harness\" tag"),
        "{}",
        refused.stderr
    );
    assert!(usernames(&pool).await.iter().all(|u| u.starts_with("seed+")), "nothing was created");

    let tagged_dir = tempfile::tempdir().expect("temp dir");
    let tagged = write_scenario(tagged_dir.path(), &scenario(&pool, "vu+otp-harness-{n}@mail.test", 8));
    let created = harness(&["users", "create", &tagged, "--quiet"]).await;
    assert_eq!(created.code, 0, "{}{}", created.stdout, created.stderr);
    assert!(created.stdout.contains("8 created"), "{}", created.stdout);
    let deleted = harness(&["users", "delete", &tagged, "--quiet"]).await;
    assert_eq!(deleted.code, 0, "{}{}", deleted.stdout, deleted.stderr);
    assert!(deleted.stdout.contains("8 deleted"), "{}", deleted.stdout);
}

#[tokio::test]
async fn users_of_a_local_target_is_a_usage_error() {
    let temp = tempfile::tempdir().expect("temp dir");
    let file = write_scenario(temp.path(), otp_harness::testkit::MINIMAL_SCENARIO);
    let out = harness(&["users", "create", &file]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("kind = \"aws\""), "{}", out.stderr);
}
