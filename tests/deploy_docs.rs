//! The deployable set-up under `docs/` and the `Dockerfile`, each checked by a real linter
//! (installed into `.venv` by `scripts/install-test-deps.sh`):
//! - cfn-lint on the CloudFormation templates (`docs/aws/*.yaml`),
//! - actionlint, with shellcheck for the `run:` scripts, on the GitHub Actions workflow,
//! - kubernetes-validate (strict, Kubernetes 1.33 schemas) on the Kubernetes manifests,
//! - hadolint on the Dockerfile;
//!
//! and each linter is also shown a broken copy of its file and must reject it, so a linter that
//! silently checks nothing cannot pass. Beyond the linters: the IAM policies (JSON and CloudFormation)
//! grant exactly the actions the commands call, the workflow's actions are pinned and its steps in
//! order, and the Indexed Job's worker count, scenario and pod settings agree.
//!
//! In CI (`CI` set) a missing linter is a failure; elsewhere the linter's test is skipped with a note.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use otp_harness::scenario::{Scenario, WorkerSlice};
use serde_json::Value;

/// The Kubernetes version the manifests are validated against (kubernetes-validate bundles its schemas).
const KUBERNETES_VERSION: &str = "1.33.0";
/// Regions cfn-lint checks the templates in: those where SES receives email, the pool's example region first.
const CFN_REGIONS: &[&str] = &["eu-west-1", "us-east-1", "us-west-2"];

/// The calls each command makes that IAM authorizes (the CLI contract): a policy must name each, and
/// nothing else.
const CONTRACT: &[(&str, &[&str])] = &[
    ("run", &["s3:ListBucket", "s3:GetObject", "s3:DeleteObject"]),
    (
        "run-sqs",
        &[
            "s3:ListBucket",
            "s3:GetObject",
            "s3:DeleteObject",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
        ],
    ),
    (
        "preflight",
        &[
            "cognito-idp:DescribeUserPool",
            "cognito-idp:DescribeUserPoolClient",
            "ses:GetAccount",
            "ses:GetEmailIdentity",
            "ses:GetSuppressedDestination",
            "ses:ListSuppressedDestinations",
        ],
    ),
    (
        "users",
        &[
            "cognito-idp:AdminCreateUser",
            "cognito-idp:AdminGetUser",
            "cognito-idp:AdminDeleteUser",
            "cognito-idp:ListUsers",
            "cognito-idp:DescribeUserPool",
        ],
    ),
];
/// The run's sign-in calls: unauthenticated client calls that need no IAM permission, so no policy grants them.
const CLIENT_CALLS: &[&str] =
    &["cognito-idp:InitiateAuth", "cognito-idp:RespondToAuthChallenge", "cognito-idp:GetUser"];
/// The only actions that take no resource the harness could name (no resource type, or only an SES
/// tenant while the harness reads the account-level suppression list): granted on "*".
const RESOURCE_STAR: &[&str] = &["ses:GetAccount", "ses:GetSuppressedDestination", "ses:ListSuppressedDestinations"];
/// The CloudFormation policy resource that mirrors each JSON policy.
const CFN_POLICY: &[(&str, &str)] =
    &[("run", "RunPolicy"), ("run-sqs", "RunSqsPolicy"), ("preflight", "PreflightPolicy"), ("users", "UsersPolicy")];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A linter from the project's `.venv/bin`, else `PATH`. Missing: a failure in CI, a skip with a note
/// elsewhere (`None`).
fn tool(name: &str) -> Option<PathBuf> {
    let venv = root().join(".venv/bin").join(name);
    let found = if venv.is_file() {
        Some(venv)
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
    };
    found.or_else(|| missing(name))
}

/// The `.venv`'s python, which has PyYAML and cfn-lint's decoder (another python may have neither).
fn venv_python() -> Option<PathBuf> {
    let python = root().join(".venv/bin/python");
    if python.is_file() { Some(python) } else { missing(".venv/bin/python") }
}

fn missing(name: &str) -> Option<PathBuf> {
    let message =
        format!("{name} is not installed: run scripts/install-test-deps.sh (it pip-installs the linters into .venv)");
    assert!(!in_ci(), "{message}; in CI a missing linter is a failure, not a skip");
    eprintln!("SKIPPED: {message}");
    None
}

fn run(program: &Path, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(program)
        .args(args)
        .args(files)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The linter passes on the files; its output is the failure message.
fn assert_clean(program: &Path, args: &[&str], files: &[PathBuf]) {
    let output = run(program, args, files);
    assert!(
        output.status.success(),
        "{} {} {:?} complained ({}):\n{}",
        program.display(),
        args.join(" "),
        files,
        output.status,
        text(&output)
    );
}

/// The linter rejects a copy of `file` with `from` replaced by `to`, and says `expect` about it: the
/// lint really checks that file.
fn assert_rejects(program: &Path, args: &[&str], file: &Path, from: &str, to: &str, expect: &str) {
    let original = std::fs::read_to_string(file).expect("read the file");
    assert!(original.contains(from), "{} no longer contains {from:?}: update the negative test", file.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join(file.file_name().expect("file name"));
    std::fs::write(&broken, original.replacen(from, to, 1)).expect("write the broken copy");
    let output = run(program, args, &[broken]);
    let said = text(&output);
    assert!(
        !output.status.success() && said.contains(expect),
        "{} accepted {} with {from:?} → {to:?} (exit {}), expected it to report {expect:?}:\n{said}",
        program.display(),
        file.display(),
        output.status
    );
}

/// The files directly in `dir` whose names end in one of `extensions`, sorted.
fn files_in(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.is_file() && extensions.iter().any(|ext| p.to_string_lossy().ends_with(ext)))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no {extensions:?} files in {dir}");
    files
}

/// A YAML file as JSON, read by the `.venv`'s python: CloudFormation templates through cfn-lint's own
/// decoder (it knows `!Sub`, `!Ref`, …), anything else as a list of documents through PyYAML.
fn yaml_as_json(path: &Path, cloudformation: bool) -> Option<Value> {
    let python = venv_python()?;
    let script = if cloudformation {
        "import json, sys\nfrom cfnlint.decode import decode\ntemplate, errors = decode(sys.argv[1])\n\
         assert not errors, errors\nprint(json.dumps(template))"
    } else {
        "import json, sys, yaml\nprint(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"
    };
    let output = run(&python, &["-c", script], &[path.to_path_buf()]);
    assert!(output.status.success(), "reading {} as YAML:\n{}", path.display(), text(&output));
    Some(serde_json::from_slice(&output.stdout).expect("python printed JSON"))
}

// ---------------------------------------------------------------------------------------------------
// The linters

#[test]
fn cfn_lint_passes_on_the_cloudformation_templates_and_rejects_a_broken_one() {
    let Some(cfn_lint) = tool("cfn-lint") else { return };
    let mut args = vec!["--format", "parseable", "--include-checks", "I", "--regions"];
    args.extend_from_slice(CFN_REGIONS);
    args.push("--");
    assert_clean(&cfn_lint, &args, &files_in("docs/aws", &[".yaml"]));

    let ses = root().join("docs/aws/ses-receipt-s3.yaml");
    assert_rejects(&cfn_lint, &args, &ses, "ScanEnabled: true", "ScanEnable: true", "E3002");
    let iam = root().join("docs/aws/iam-policies.yaml");
    assert_rejects(&cfn_lint, &args, &iam, "- s3:GetObject", "- s3:GetObjekt", "W3037");
}

#[test]
fn actionlint_passes_on_the_workflow_and_rejects_a_broken_one() {
    let (Some(actionlint), Some(shellcheck)) = (tool("actionlint"), tool("shellcheck")) else { return };
    let shellcheck = shellcheck.to_string_lossy().into_owned();
    let args = ["-no-color", "-shellcheck", shellcheck.as_str()];
    let workflows = files_in("docs/github-actions", &[".yml", ".yaml"]);
    assert_clean(&actionlint, &args, &workflows);

    let nightly = root().join("docs/github-actions/nightly.yml");
    // An expression naming a step that does not exist, and an unquoted variable in a run: script.
    assert_rejects(&actionlint, &args, &nightly, "steps.users.outcome", "steps.user.outcome", "property \"user\"");
    assert_rejects(&actionlint, &args, &nightly, "cat \"$RUN_DIR/summary.md\"", "cat $RUN_DIR/summary.md", "SC2086");
}

#[test]
fn kubernetes_validate_passes_on_the_manifests_and_rejects_a_broken_one() {
    let Some(validate) = tool("kubernetes-validate") else { return };
    let args = ["--strict", "--kubernetes-version", KUBERNETES_VERSION];
    let manifests = files_in("docs/kubernetes", &[".yaml"]);
    assert_clean(&validate, &args, &manifests);
    // kubernetes-validate exits 0 on a kind it has no schema for: make sure each document was checked.
    let said = text(&run(&validate, &args, &manifests));
    for resource in ["configmap/otp-harness-scenario", "job/otp-nightly", "job/otp-nightly-merge"] {
        assert!(said.contains(&format!("passed for resource {resource}")), "{resource} not validated:\n{said}");
    }

    let job = root().join("docs/kubernetes/indexed-job.yaml");
    assert_rejects(
        &validate,
        &args,
        &job,
        "readOnlyRootFilesystem: true",
        "readOnlyRootFileSystem: true",
        "'readOnlyRootFileSystem' was unexpected",
    );
    assert_rejects(&validate, &args, &job, "parallelism: 4", "parallelism: four", "'four' is not of type 'integer'");
}

#[test]
fn hadolint_passes_on_the_dockerfile_and_rejects_a_broken_one() {
    let Some(hadolint) = tool("hadolint") else { return };
    let args = ["--no-color", "--failure-threshold", "info"];
    assert_clean(&hadolint, &args, &[root().join("Dockerfile")]);
    // Without its reasoned exception, the unpinned apt-get install is reported.
    assert_rejects(&hadolint, &args, &root().join("Dockerfile"), "# hadolint ignore=DL3008\n", "", "DL3008");
}

// ---------------------------------------------------------------------------------------------------
// IAM: the policies name exactly the commands' calls

/// (action, resource) pairs of every statement of a policy document; every statement must Allow.
fn grants(policy: &Value, what: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for statement in policy["Statement"].as_array().unwrap_or_else(|| panic!("{what}: Statement is not a list")) {
        assert_eq!(statement["Effect"], "Allow", "{what}: every statement allows");
        assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none(), "{what}: no Not*");
        let actions = match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(list) => list.iter().map(|a| a.as_str().expect("action is a string").to_string()).collect(),
            other => panic!("{what}: Action is {other}"),
        };
        for action in actions {
            out.push((action, statement["Resource"].clone()));
        }
    }
    out
}

/// The policy's actions are the contract's, no wildcard, no client call, "*" only where it must be.
fn assert_least_privilege(command: &str, grants: &[(String, Value)], what: &str) {
    let expected = CONTRACT.iter().find(|(c, _)| *c == command).expect("a command of the contract").1;
    let named: BTreeSet<&str> = grants.iter().map(|(a, _)| a.as_str()).collect();
    let wanted: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(named, wanted, "{what} must grant exactly the {command} command's calls");
    for (action, resource) in grants {
        assert!(!action.contains('*'), "{what}: wildcard action {action}");
        assert!(!CLIENT_CALLS.contains(&action.as_str()), "{what}: {action} needs no IAM permission");
        let star = resource == "*" || resource.as_array().is_some_and(|r| r.iter().any(|x| x == "*"));
        assert_eq!(
            star,
            RESOURCE_STAR.contains(&action.as_str()),
            "{what}: {action} on {resource}: only {RESOURCE_STAR:?} take resource \"*\""
        );
    }
}

#[test]
fn iam_json_policies_grant_exactly_the_commands_calls_scoped_to_placeholders() {
    for (command, _) in CONTRACT {
        let path = root().join(format!("docs/aws/iam/{command}.json"));
        let policy: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read the policy"))
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        assert_eq!(policy["Version"], "2012-10-17", "{}", path.display());
        let grants = grants(&policy, &path.display().to_string());
        assert_least_privilege(command, &grants, &path.display().to_string());
        for (action, resource) in &grants {
            if RESOURCE_STAR.contains(&action.as_str()) {
                continue;
            }
            let resource = resource.as_str().expect("one resource per scoped statement");
            let placeholder = match action.split(':').next() {
                Some("cognito-idp") => "userpool/<pool-id>",
                Some("ses") => "identity/<sending-identity>",
                Some("sqs") => "arn:aws:sqs:<region>:<account-id>:<queue>",
                _ if action == "s3:ListBucket" => "arn:aws:s3:::<bucket>",
                _ => "arn:aws:s3:::<bucket>/<prefix>*",
            };
            assert!(
                resource.ends_with(placeholder),
                "{}: {action} on {resource}, expected …{placeholder}",
                path.display()
            );
        }
    }
    // The list is read only with the prefix condition.
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/aws/iam/run.json")).unwrap()).unwrap();
    assert_eq!(run["Statement"][0]["Condition"]["StringLike"]["s3:prefix"], "<prefix>*");
}

#[test]
fn cloudformation_policies_match_the_json_ones() {
    let Some(template) = yaml_as_json(&root().join("docs/aws/iam-policies.yaml"), true) else { return };
    for (command, resource) in CFN_POLICY {
        let policy = &template["Resources"][resource];
        assert_eq!(policy["Type"], "AWS::IAM::ManagedPolicy", "{resource}");
        let what = format!("iam-policies.yaml {resource}");
        let grants = grants(&policy["Properties"]["PolicyDocument"], &what);
        assert_least_privilege(command, &grants, &what);
    }
    // The role, when made, carries every policy.
    let role = &template["Resources"]["GitHubNightlyRole"]["Properties"];
    let arns = role["ManagedPolicyArns"].to_string();
    for (_, resource) in CFN_POLICY {
        assert!(arns.contains(resource), "GitHubNightlyRole lacks {resource}: {arns}");
    }
    let trust = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"].to_string();
    assert!(
        trust.contains("token.actions.githubusercontent.com:sub"),
        "the role trusts one repository and ref: {trust}"
    );
}

#[test]
fn the_receipt_rule_template_lets_only_ses_write_and_says_how_to_finish() {
    let Some(template) = yaml_as_json(&root().join("docs/aws/ses-receipt-s3.yaml"), true) else { return };
    let resources = &template["Resources"];
    let bucket = &resources["InboundBucket"]["Properties"];
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(bucket["PublicAccessBlockConfiguration"][flag], true, "{flag}");
    }
    assert!(bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"].is_object(), "old mail expires");

    let statements = resources["InboundBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap();
    let ses = statements.iter().find(|s| s["Principal"]["Service"] == "ses.amazonaws.com").expect("SES may write");
    assert_eq!(ses["Action"], "s3:PutObject");
    let conditions = ses["Condition"]["StringEquals"].as_object().expect("conditions");
    assert!(conditions.contains_key("aws:SourceAccount") && conditions.contains_key("aws:SourceArn"), "{conditions:?}");

    let rule = &resources["StoreInS3Rule"];
    assert!(rule["DependsOn"].to_string().contains("InboundBucketPolicy"), "the rule waits for the policy");
    let rule = &rule["Properties"]["Rule"];
    assert_eq!(rule["Recipients"][0]["Ref"], "Domain");
    assert_eq!(rule["Actions"][0]["S3Action"]["ObjectKeyPrefix"]["Ref"], "Prefix");
    assert_eq!(template["Parameters"]["Prefix"]["Default"], "inbound/");

    let outputs = template["Outputs"].to_string();
    assert!(outputs.contains("inbound-smtp.${AWS::Region}.amazonaws.com"), "the MX record: {outputs}");
    assert!(outputs.contains("aws ses set-active-receipt-rule-set"), "how to activate the rule set: {outputs}");
}

// ---------------------------------------------------------------------------------------------------
// The workflow and the Kubernetes Job

#[test]
fn the_workflow_pins_its_actions_and_runs_the_steps_in_order() {
    let path = root().join("docs/github-actions/nightly.yml");
    let workflow = std::fs::read_to_string(&path).expect("read the workflow");
    let pinned = regex::Regex::new(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$").unwrap();
    let mut uses = 0;
    for line in workflow.lines() {
        if let Some((_, action)) = line.split_once("uses: ") {
            uses += 1;
            assert!(pinned.is_match(action.trim()), "not pinned to a commit with its version: {action}");
        }
    }
    assert!(uses >= 5, "checkout, rust-cache, configure-aws-credentials, cache, upload-artifact");
    assert!(workflow.contains("aws-actions/configure-aws-credentials@") && workflow.contains("id-token: write"));

    let Some(documents) = yaml_as_json(&path, false) else { return };
    let steps = documents[0]["jobs"]["nightly"]["steps"].as_array().expect("the nightly job's steps");
    let position = |command: &str| {
        steps
            .iter()
            .position(|s| s["run"].as_str().is_some_and(|r| r.contains(command)))
            .unwrap_or_else(|| panic!("no step runs {command:?}"))
    };
    let order = ["otp-harness users create", "otp-harness preflight", "otp-harness run", "otp-harness compare"];
    let order: Vec<usize> = order.iter().map(|c| position(c)).chain([position("otp-harness users delete")]).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "steps out of order: {order:?}");
    let delete = &steps[position("otp-harness users delete")];
    assert!(delete["if"].as_str().is_some_and(|c| c.starts_with("always()")), "users delete must run always()");
    assert!(workflow.contains("GITHUB_STEP_SUMMARY") && workflow.contains("summary.md"));
}

#[test]
fn the_indexed_job_workers_scenario_and_pod_settings_agree() {
    let Some(documents) = yaml_as_json(&root().join("docs/kubernetes/indexed-job.yaml"), false) else { return };
    let documents = documents.as_array().expect("documents");
    let of_kind = |kind: &str| documents.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    let job = &of_kind("Job")["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let workers = job["completions"].as_u64().expect("completions");
    assert_eq!(job["parallelism"].as_u64(), Some(workers), "every worker runs at once");

    let pod = &job["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let worker_arg = format!("$(JOB_COMPLETION_INDEX)/{workers}");
    assert!(args.contains(&worker_arg.as_str()), "args {args:?} lack --worker {worker_arg}");
    assert!(args.iter().any(|a| a.starts_with("/results")), "the run folder goes to the shared volume");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    for kind in ["requests", "limits"] {
        assert!(container["resources"][kind]["memory"].is_string(), "resources.{kind}.memory");
    }

    // The scenario in the ConfigMap is one the harness accepts, for every worker of this Job.
    let config = &of_kind("ConfigMap")["data"];
    let scenario_file = Path::new(args[1]).file_name().unwrap().to_str().unwrap();
    let text = config[scenario_file].as_str().unwrap_or_else(|| panic!("the ConfigMap lacks {scenario_file}"));
    let scenario = Scenario::parse(text, Path::new(scenario_file)).unwrap_or_else(|e| panic!("{e}"));
    for index in 0..workers as u32 {
        scenario
            .for_worker(WorkerSlice { index, count: workers as u32 })
            .unwrap_or_else(|e| panic!("worker {index}/{workers}: {e}"));
    }
    // The harness stops cleanly within stop_grace: the pod must give it longer.
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(scenario.load.stop_grace.as_secs() + 5 <= grace, "stop_grace must be well below the grace period");
    // The inbox password comes from a Secret, under the name the scenario reads.
    let password_env = scenario.otp.imap.as_ref().and_then(|i| i.password_env.clone()).expect("password_env");
    let env = container["env"].as_array().unwrap();
    let from_secret = env.iter().find(|e| e["name"] == password_env.as_str()).expect("the password variable");
    assert!(from_secret["valueFrom"]["secretKeyRef"].is_object(), "{password_env} comes from a Secret");
}
