//! Validation, table by table, in process: each table's typical mistakes give one error with the line
//! of the key (or its table) and a fix; a valid file gives parsed thresholds and the planned checks.

use std::path::Path;

use super::*;
use crate::checks::Check;

const GOOD: &str = crate::testkit::MINIMAL_SCENARIO;

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("s.toml"))
}

/// The one error `text` gives: its line and message (which must mention `needle`), with a fix.
fn refused(text: &str, needle: &str) -> Option<usize> {
    let e = parse(text).expect_err("refused");
    assert!(e.message.contains(needle), "{needle:?} in {e}");
    assert!(!e.fix.is_empty(), "a fix: {e}");
    e.line
}

/// `GOOD` with `lines` appended (more tables).
fn with(lines: &str) -> String {
    format!("{GOOD}{lines}\n")
}

#[test]
fn the_good_file_parses_with_defaults() {
    let s = parse(GOOD).expect("valid");
    assert_eq!(s.flows.len(), 1);
    assert!(s.thresholds().is_empty());
    assert_eq!(s.probes.users_needed(), 6);
}

#[test]
fn top_level_and_target() {
    assert_eq!(refused(&GOOD.replace("\"ok\"", "\"o k\""), "name"), Some(1));
    assert_eq!(
        refused(&GOOD.replace("kind = \"local\"", "kind = \"local\"\nregion = \"x\""), "kind = \"aws\""),
        Some(4)
    );
    let aws = GOOD.replace("kind = \"local\"", "kind = \"aws\"\nregion = \"eu-west-1\"\nuser_pool_id = \"p\"");
    assert_eq!(refused(&aws, "client_id"), Some(2), "an absent key points at its table");
    let zero = GOOD.replace("kind = \"local\"", "kind = \"local\"\ncall_timeout = \"0s\"");
    assert_eq!(refused(&zero, "call_timeout"), Some(4));
}

#[test]
fn users() {
    assert_eq!(refused(&GOOD.replace("test_users = true\n", ""), "test users"), Some(4));
    assert_eq!(refused(&GOOD.replace("vu+{n}@", "vu@"), "{n}"), Some(6));
    assert_eq!(refused(&GOOD.replace("count = 8", "count = 7"), "needs 8 (2 virtual users + 6 for probes)"), Some(7));
}

#[test]
fn otp() {
    let no_group = GOOD.replace("source = \"outbox\"", "source = \"outbox\"\ncode_pattern = '\\d{6}'");
    assert_eq!(refused(&no_group, "capture group"), Some(10));
    assert_eq!(refused(&GOOD.replace("\"outbox\"", "\"imap\""), "[otp.imap]"), Some(9));
    let plain = with("[otp.imap]\nhost = \"mail.example.test\"\nusername = \"u\"\npassword_env = \"P\"\ntls = false")
        .replace("\"outbox\"", "\"imap\"");
    assert_eq!(refused(&plain, "in clear"), Some(16));
    let both = with("[otp.imap]\nhost = \"127.0.0.1\"\nusername = \"u\"").replace("\"outbox\"", "\"imap\"");
    assert_eq!(refused(&both, "exactly one of password_env and password_file"), Some(12));
    assert_eq!(refused(&with("[otp.outbox]\npoll_interval = \"0s\""), "at least 1ms"), Some(13));
}

#[test]
fn flows_and_expect() {
    let retry = with("[[flow]]\nkind = \"retry\"\nwrong = 3");
    assert_eq!(refused(&retry, "cannot end in a sign-in when max_attempts = 3"), Some(14));
    let second = with("[[flow]]\nkind = \"login\"\n[[flow]]\nkind = \"retry\"\nwrong = 0");
    assert_eq!(refused(&second, "wrong = 0"), Some(16), "the second [[flow]]'s key");
    assert_eq!(refused(&with("[[flow]]\nkind = \"login\"\nweight = 0"), "no flow"), Some(14));
    assert_eq!(refused(&with("[expect]\nmax_attempts = 0"), "max_attempts must be at least 1"), Some(13));
}

#[test]
fn probes_are_read_from_the_catalogue() {
    let off = parse(&with("[probes]\ncode_reuse = false\nunknown_user_samples = 2")).expect("valid");
    assert!(!off.probes.is_enabled(Probe::CodeReuse));
    assert_eq!((off.probes.users_needed(), off.probes.unknown_user_samples), (4, 2));
    assert!(!off.planned_checks().contains(&Check::CodeReuseAfterSuccess.into()));
    assert!(off.planned_checks().contains(&Check::SessionReuse.into()));
    let e = parse(&with("[probes]\nsesion_reuse = false")).expect_err("unknown key");
    assert!(e.message.contains("unknown field `sesion_reuse`"), "{e}");
    assert!(e.fix.contains("remove or rename"), "{e}");
}

#[test]
fn load() {
    assert_eq!(refused(&GOOD.replace("users = 2", "users = 0"), "load.users"), Some(11));
    assert_eq!(refused(&with("rate = 5"), "model = \"open\""), Some(12));
    let open = GOOD.replace("users = 2", "model = \"open\"\nmax_in_flight = 2\nrate = 5");
    assert_eq!(refused(&open, "needs a duration"), Some(13));
    let stages =
        GOOD.replace("users = 2", "model = \"open\"\nmax_in_flight = 2\nstages = [{ rate = 0, duration = \"1s\" }]");
    assert_eq!(refused(&stages, "some stage above 0"), Some(13));
    let too_many = GOOD.replace("users = 2", "model = \"open\"\nrate = 5\nduration = \"1s\"");
    assert_eq!(refused(&too_many, "50 sign-ins in flight at most + 6 for probes"), Some(7));
    assert_eq!(refused(&with("abort_on = [\"login.p99\"]"), "not in [thresholds]"), Some(12));
    assert_eq!(refused(&with("duration = \"25h\""), "between 1s and 24h"), Some(12));
}

#[test]
fn thresholds_are_parsed_once_and_a_bad_one_is_refused() {
    let s = parse(&with("[thresholds]\n\"login.p99\" = \"2s\"\n\"throttled.count\" = \"== 0\"")).expect("valid");
    let keys: Vec<&str> = s.thresholds().iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["login.p99", "throttled.count"]);
    assert_eq!(s.threshold_conditions.len(), 2);
    assert_eq!(refused(&with("[thresholds]\n\"login.p99\" = \"fast\""), "\"login.p99\" = \"fast\""), Some(13));
    assert_eq!(refused(&with("[thresholds]\n\"logn.p99\" = \"2s\""), "unknown step"), Some(13));
}

#[test]
fn report_options() {
    assert_eq!(refused(&with("[report]\nhlog_interval = \"10ms\""), "hlog_interval"), Some(13));
}

#[test]
fn planned_checks_follow_the_flows_and_probes() {
    let s = parse(&with("[[flow]]\nkind = \"lockout\"\n[probes]\nsession_reuse = false\ncode_reuse = false\nnew_code_each_attempt = false\nunknown_user = false\nchallenge_leak = false\ncode_randomness = false")).expect("valid");
    assert_eq!(s.planned_checks(), [Check::Lockout.into(), Check::LockoutRealCodeRefused.into()]);
}

#[test]
fn user_counts_near_u32_max_are_refused_not_overflowed() {
    let text = GOOD.replace("users = 2", "users = 4294967295");
    assert_eq!(refused(&text, "users.count"), Some(7));
}

#[test]
fn user_numbers_past_u32_max_are_refused() {
    let text = GOOD.replace("count = 8", "count = 8\nfirst = 4294967290");
    assert_eq!(refused(&text, "users.first"), Some(8));
    let s = parse(&GOOD.replace("count = 8", "count = 8\nfirst = 4294967288")).expect("the last user is u32::MAX");
    assert_eq!(s.users.address(7), "vu+4294967295@mail.test");
}

#[test]
fn stage_durations_too_long_to_add_up_are_refused() {
    let huge = "{ rate = 1, duration = \"18446744073709551615s\" }";
    let text = GOOD.replace("users = 2", &format!("model = \"open\"\nmax_in_flight = 2\nstages = [{huge}, {huge}]"));
    assert_eq!(refused(&text, "between 1s and 24h"), Some(13));
}

#[test]
fn flows_sign_in_the_scenarios_way_unless_they_say_otherwise() {
    let s = parse(&GOOD.replace("[target]", "auth = \"email_otp\"\n[target]")).expect("valid");
    assert_eq!(s.flows[0].auth(), Auth::EmailOtp);
    assert_eq!(s.otp.pattern(), r"\b(\d{6,8})\b", "EMAIL_OTP's 8 digits, and too short a code seen");
    assert!(!s.probe_plan().iter().any(|(_, r)| r.probe == Probe::NewCodeEachAttempt), "no rounds in EMAIL_OTP");
    assert_eq!(s.probe_users(), 5);
    let both = "[[flow]]\nkind = \"login\"\n[[flow]]\nkind = \"login\"\nauth = \"email_otp\"";
    // 2 virtual users, 6 probe users for custom auth and 5 for EMAIL_OTP.
    assert_eq!(refused(&with(both), "needs 13"), Some(7));
    let mixed = parse(&with(both).replace("count = 8", "count = 13")).expect("valid");
    assert_eq!(mixed.auths(), [Auth::Custom, Auth::EmailOtp]);
    assert!(mixed.planned_checks().contains(&Check::SignIn.of(Auth::EmailOtp)));
    assert!(mixed.planned_checks().contains(&Check::CodeLength.of(Auth::EmailOtp)));
    assert!(!mixed.planned_checks().contains(&Check::CodeLength.into()), "custom codes have the team's length");
    assert_eq!(parse(GOOD).expect("valid").otp.pattern(), r"\b(\d{6})\b");
}

#[test]
fn a_native_retry_must_stay_below_the_expected_lock() {
    let text = GOOD.replace("[target]", "auth = \"email_otp\"\n[target]");
    let retry = format!("{text}[[flow]]\nkind = \"retry\"\nwrong = 5\n");
    assert_eq!(refused(&retry, "when email_otp_max_wrong_codes = 5"), Some(15));
    assert!(parse(&format!("{text}[[flow]]\nkind = \"retry\"\nwrong = 4\n")).is_ok());
    assert_eq!(
        refused(
            &format!("{text}[expect]\nemail_otp_lock_limit = 5\n"),
            "must be above expect.email_otp_max_wrong_codes"
        ),
        Some(14)
    );
}

/// `GOOD` reading codes over IMAP from 127.0.0.1 with these `[otp.imap]` lines (the table starts on line 12).
fn imap_with(lines: &str) -> String {
    with(&format!("[otp.imap]\nhost = \"127.0.0.1\"\ntls = false\nusername = \"u\"\n{lines}"))
        .replace("\"outbox\"", "\"imap\"")
}

#[test]
fn imap_oauth_logins_take_exactly_one_token_source() {
    let s = parse(&imap_with("auth = \"xoauth2\"\ntoken_env = \"T\"")).expect("valid");
    let imap = s.otp.imap.expect("imap");
    assert_eq!(imap.auth, ImapAuth::Xoauth2);
    assert_eq!(imap.token_refresh(), None, "an environment variable cannot give a fresh token");
    let s = parse(&imap_with("auth = \"oauthbearer\"\ntoken_command = \"get-token\"")).expect("valid");
    assert_eq!(s.otp.imap.expect("imap").token_refresh(), Some(DEFAULT_TOKEN_REFRESH));
    let s = parse(&imap_with("auth = \"xoauth2\"\ntoken_file = \"tok\"\ntoken_refresh = \"10m\"")).expect("valid");
    let imap = s.otp.imap.expect("imap");
    assert_eq!(imap.token_refresh(), Some(std::time::Duration::from_secs(600)));
    let password = parse(&imap_with("password_env = \"P\"")).expect("valid").otp.imap.expect("imap");
    assert_eq!((password.auth, password.token_refresh()), (ImapAuth::Password, None), "password stays the default");

    assert_eq!(refused(&imap_with("auth = \"xoauth2\""), "needs a token source"), Some(16));
    let two = imap_with("auth = \"xoauth2\"\ntoken_env = \"T\"\ntoken_command = \"c\"");
    assert_eq!(refused(&two, "both token_env and token_command"), Some(18), "the second source's line");
    let password_too = imap_with("auth = \"oauthbearer\"\npassword_env = \"P\"\ntoken_env = \"T\"");
    assert_eq!(refused(&password_too, "password_env is for auth = \"password\""), Some(17));
    let token_with_password = imap_with("password_env = \"P\"\ntoken_file = \"t\"");
    assert_eq!(refused(&token_with_password, "token_file is for auth = \"xoauth2\""), Some(17));
    assert_eq!(refused(&imap_with("password_env = \"P\"\ntoken_refresh = \"5m\""), "for OAuth logins"), Some(17));
    let env_refresh = imap_with("auth = \"xoauth2\"\ntoken_env = \"T\"\ntoken_refresh = \"5m\"");
    assert_eq!(refused(&env_refresh, "needs a token_file or token_command"), Some(18));
    let short = imap_with("auth = \"xoauth2\"\ntoken_command = \"c\"\ntoken_refresh = \"10ms\"");
    assert_eq!(refused(&short, "between 1s and 24h"), Some(18));
    assert_eq!(refused(&imap_with("auth = \"xoauth2\"\ntoken_command = \" \""), "token_command is empty"), Some(17));
    let unknown = parse(&imap_with("auth = \"basic\"\ntoken_env = \"T\"")).expect_err("unknown kind");
    assert!(unknown.message.contains("unknown variant `basic`") && unknown.line == Some(16), "{unknown}");
    let clear = imap_with("auth = \"xoauth2\"\ntoken_env = \"T\"").replace("127.0.0.1", "imap.example.test");
    assert_eq!(refused(&clear, "would send the access token in clear"), Some(14));
}

#[test]
fn a_token_file_is_found_next_to_the_scenario() {
    let text = imap_with("auth = \"xoauth2\"\ntoken_file = \"secrets/token\"\n");
    let s = Scenario::parse(&text, Path::new("/srv/scenarios/nightly.toml")).expect("valid");
    let imap = s.otp.imap.expect("imap");
    assert_eq!(imap.token_file.as_deref(), Some(Path::new("/srv/scenarios/secrets/token")));
    assert_eq!(imap.scenario_dir.as_deref(), Some(Path::new("/srv/scenarios")));
    let absolute = imap_with("auth = \"xoauth2\"\ntoken_file = \"/run/token\"\n");
    let s = Scenario::parse(&absolute, Path::new("/srv/scenarios/nightly.toml")).expect("valid");
    assert_eq!(s.otp.imap.expect("imap").token_file.as_deref(), Some(Path::new("/run/token")));
    let here = parse(&imap_with("auth = \"xoauth2\"\ntoken_command = \"c\"")).expect("valid");
    assert_eq!(here.otp.imap.expect("imap").scenario_dir.as_deref(), Some(Path::new(".")));
}

/// The commented OAuth setups in scenarios/nightly-imap.toml are valid `[otp.imap]` tables.
#[test]
fn the_documented_oauth_setups_parse() {
    let text = include_str!("../../scenarios/nightly-imap.toml");
    let (before, rest) = text.split_once("[otp.imap]\n").expect("[otp.imap]");
    let after = &rest[rest.find("[[flow]]").expect("flows after [otp.imap]")..];
    // Each commented `[otp.imap]` example: its `#   key = value` lines up to the next blank comment line.
    let examples: Vec<Vec<&str>> = text
        .split("#   [otp.imap]\n")
        .skip(1)
        .map(|block| {
            block.lines().take_while(|l| l.starts_with("#   ")).map(|l| l.trim_start_matches("#   ")).collect()
        })
        .collect();
    assert_eq!(examples.len(), 2, "Microsoft 365 and Gmail");
    let client_credentials = text
        .lines()
        .find(|l| l.starts_with("#   token_command = \"curl") && l.contains("microsoftonline"))
        .expect("the client-credentials command")
        .trim_start_matches("#   ");
    let mut tables: Vec<String> = examples.iter().map(|lines| lines.join("\n")).collect();
    tables.push(tables[0].replace(tables[0].lines().last().expect("token_command"), client_credentials));
    for table in tables {
        let scenario = format!("{before}[otp.imap]\n{table}\n\n{after}");
        let s = Scenario::parse(&scenario, Path::new("nightly-imap.toml")).unwrap_or_else(|e| panic!("{e}\n{table}"));
        let imap = s.otp.imap.expect("imap");
        assert!(imap.tls && imap.auth != ImapAuth::Password && imap.token_command.is_some(), "{table}");
        assert_eq!(imap.token_refresh(), Some(DEFAULT_TOKEN_REFRESH));
    }
}

/// `GOOD` reading codes from S3 with these `[otp.s3]` lines (the table starts on line 12, `bucket` on
/// 13, the lines from 14).
fn s3_with(lines: &str) -> String {
    with(&format!("[otp.s3]\nbucket = \"inbound-mail\"\n{lines}")).replace("\"outbox\"", "\"s3\"")
}

#[test]
fn an_sqs_queue_url_is_checked_for_what_it_must_be() {
    let aws =
        parse(&s3_with("queue_url = \"https://sqs.eu-west-1.amazonaws.com/123456789012/otp-mail\"")).expect("valid");
    let s3 = aws.otp.s3.expect("s3");
    assert_eq!(s3.queue_receivers, 1);
    assert_eq!(s3.all_prefixes(), vec![String::new()]);
    let moto = s3_with("queue_url = \"http://127.0.0.1:5000/123456789012/mail-events\"\nqueue_receivers = 4");
    assert_eq!(parse(&moto).expect("valid").otp.s3.expect("s3").queue_receivers, 4);

    let arn = s3_with("queue_url = \"arn:aws:sqs:eu-west-1:123456789012:otp-mail\"");
    assert_eq!(refused(&arn, "is a queue ARN, not its URL"), Some(14));
    assert_eq!(refused(&s3_with("queue_url = \"otp-mail\""), "is not a URL"), Some(14));
    assert_eq!(refused(&s3_with("queue_url = \"ftp://h/123456789012/q\""), "https://"), Some(14));
    let no_account = s3_with("queue_url = \"https://sqs.eu-west-1.amazonaws.com/otp-mail\"");
    assert_eq!(refused(&no_account, "/ACCOUNT-ID/QUEUE-NAME"), Some(14));
    let short = s3_with("queue_url = \"https://sqs.eu-west-1.amazonaws.com/1234/otp-mail\"");
    assert_eq!(refused(&short, "12-digit account id"), Some(14));
    let fifo = s3_with("queue_url = \"https://sqs.eu-west-1.amazonaws.com/123456789012/otp-mail.fifo\"");
    assert_eq!(refused(&fifo, "FIFO queue"), Some(14));
    let bad_name = s3_with("queue_url = \"https://sqs.eu-west-1.amazonaws.com/123456789012/otp%20mail\"");
    assert_eq!(refused(&bad_name, "queue name SQS would refuse"), Some(14));
    let receivers = s3_with("queue_url = \"http://127.0.0.1:5000/123456789012/q\"\nqueue_receivers = 0");
    assert_eq!(refused(&receivers, "between 1 and 16"), Some(15));
    assert_eq!(refused(&s3_with("queue_receivers = 2"), "is for reading S3 events from an SQS queue"), Some(14));
    let prefixes = parse(&s3_with("prefix = \"otp/\"\nprefixes = [\"a/\", \"b/\"]")).expect("valid");
    assert_eq!(prefixes.otp.s3.expect("s3").all_prefixes(), vec!["otp/", "a/", "b/"]);
}
