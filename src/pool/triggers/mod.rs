//! The team's own custom-auth triggers, hosted by the local pool: `config` (the `[triggers]` table),
//! `events` (the events Cognito sends and how it reads the answers), `runtime` (long-lived Node.js and
//! Python processes speaking JSON lines, one call at a time each) and the shims they run (embedded
//! here, written to a temporary folder at start).
//!
//! `TriggerHost` resolves each configured handler to its file and language, checks the executables,
//! starts one runtime per trigger before the pool answers anything (so a bad setup is one clear error
//! at start), and turns a call's failure into the error Cognito answers with:
//! a thrown error → `UserLambdaValidationException: <Trigger> failed with error <message>.`; a runtime
//! that died → the same, with `Runtime exited with error: exit status N`; past the time limit →
//! `UnexpectedLambdaException: <Trigger> invocation failed due to error Socket timeout while invoking
//! Lambda function.`; an answer Cognito cannot read → `InvalidLambdaResponseException: Unrecognizable
//! lambda output`.
//!
//! The functions' AWS SDKs find the pool through `AWS_ENDPOINT_URL` (and `AWS_ENDPOINT_URL_SES`,
//! `_SESV2`, `_COGNITO_IDENTITY_PROVIDER`), with the pool's region and throwaway credentials; the
//! process environment starts empty, so a developer's own AWS profile or keys never reach them.

pub mod config;
pub mod events;
pub mod runtime;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde_json::Value;

pub use config::TriggersConfig;
use events::{ChallengeRecord, CreatedChallenge, DefineDecision, EventUser};
use runtime::{CallFailure, FunctionSpec, FunctionStats, Language, RuntimePool};

use super::config::{PoolConfig, Trigger};
use super::error::{CognitoError, ErrorKind};

const NODE_SHIM: &str = include_str!("shim.cjs");
const PYTHON_SHIM: &str = include_str!("shim.py");

/// The team's trigger functions of one pool.
pub struct TriggerHost {
    region: String,
    user_pool_id: String,
    client_id: String,
    strict_parameters: bool,
    functions: BTreeMap<Trigger, RuntimePool>,
    /// (trigger, key) pairs already warned about: a coerced value is logged once, then counted.
    warned: Mutex<HashSet<(Trigger, String)>>,
    _shims: tempfile::TempDir,
}

impl TriggerHost {
    /// Resolves the configured handlers (None when the pool runs only built-in triggers). Errors name
    /// the key and what is wrong: a missing folder or file, two files for one handler, no executable.
    /// `endpoint` is the pool's own URL, where the functions' AWS calls go.
    pub fn new(config: &PoolConfig, endpoint: &str) -> anyhow::Result<Option<Self>> {
        let triggers = &config.triggers;
        if !triggers.any() {
            return Ok(None);
        }
        let code_dir = triggers.code_dir.as_deref().ok_or_else(|| anyhow::anyhow!("triggers.code_dir is not set"))?;
        let code_dir = std::fs::canonicalize(code_dir)
            .map_err(|e| anyhow::anyhow!("triggers.code_dir {}: {e}", code_dir.display()))?;
        if !code_dir.is_dir() {
            anyhow::bail!("triggers.code_dir {} is not a folder", code_dir.display());
        }
        let shims = tempfile::Builder::new()
            .prefix("otp-harness-shims-")
            .tempdir()
            .map_err(|e| anyhow::anyhow!("cannot make a folder for the runtime shims: {e}"))?;
        let node_shim = shims.path().join("otp-harness-shim.cjs");
        let python_shim = shims.path().join("otp_harness_shim.py");
        std::fs::write(&node_shim, NODE_SHIM)
            .and_then(|()| std::fs::write(&python_shim, PYTHON_SHIM))
            .map_err(|e| anyhow::anyhow!("cannot write the runtime shims to {}: {e}", shims.path().display()))?;
        let mut functions = BTreeMap::new();
        for trigger in [Trigger::Define, Trigger::Create, Trigger::Verify] {
            let Some(handler) = triggers.handler(trigger) else {
                continue;
            };
            let key = config::key_of(trigger);
            let (module, function) =
                config::split_handler(handler).map_err(|e| anyhow::anyhow!("triggers.{key}: {e}"))?;
            let (file, language) =
                locate(&code_dir, &module).map_err(|e| anyhow::anyhow!("triggers.{key} = {handler:?}: {e}"))?;
            let (program, shim) = match language {
                Language::Nodejs => (&triggers.node, &node_shim),
                Language::Python => (&triggers.python, &python_shim),
            };
            let function_name = format!("otp-harness-{}", kebab(trigger.lambda_name()));
            let env =
                environment(config, endpoint, &code_dir, &file, handler, &module, &function, &function_name, language);
            let spec = FunctionSpec {
                trigger,
                language,
                program: PathBuf::from(program),
                shim: shim.clone(),
                code_dir: code_dir.clone(),
                file,
                module: module.replace('/', "."),
                function: function.clone(),
                handler: handler.to_string(),
                env,
                function_name,
            };
            functions.insert(trigger, RuntimePool::new(spec, triggers.runtimes_per_trigger(), triggers.timeout));
        }
        Ok(Some(Self {
            region: config.region.clone(),
            user_pool_id: config.user_pool_id.clone(),
            client_id: config.client_id.clone(),
            strict_parameters: triggers.strict_parameters,
            functions,
            warned: Mutex::new(HashSet::new()),
            _shims: shims,
        }))
    }

    /// Starts one runtime per function, all at once, and waits until each has loaded its handler.
    pub async fn start(&self) -> anyhow::Result<()> {
        let results = futures::future::join_all(self.functions.values().map(|f| f.start())).await;
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).map(|e| e.0).collect();
        if !errors.is_empty() {
            anyhow::bail!("{}", errors.join("\n"));
        }
        for f in self.functions.values() {
            let spec = f.spec();
            tracing::info!(
                trigger = spec.trigger.lambda_name(),
                runtime = ?spec.language,
                file = %spec.file.display(),
                "the team's trigger is loaded"
            );
        }
        Ok(())
    }

    /// Whether the team's function replaces the built-in `trigger`.
    pub fn has(&self, trigger: Trigger) -> bool {
        self.functions.contains_key(&trigger)
    }

    /// Each function's counters, by trigger name.
    pub fn stats(&self) -> BTreeMap<&'static str, FunctionStats> {
        self.functions.iter().map(|(t, f)| (t.lambda_name(), f.stats())).collect()
    }

    /// Process ids of `trigger`'s live runtimes.
    pub fn pids(&self, trigger: Trigger) -> Vec<u32> {
        self.functions.get(&trigger).map(RuntimePool::pids).unwrap_or_default()
    }

    /// The event's user part.
    pub fn user<'a>(
        &'a self,
        user_name: &'a str,
        attributes: serde_json::Map<String, Value>,
        user_not_found: Option<bool>,
        client_metadata: Option<&'a HashMap<String, String>>,
    ) -> EventUser<'a> {
        EventUser {
            region: &self.region,
            user_pool_id: &self.user_pool_id,
            client_id: &self.client_id,
            user_name,
            attributes,
            user_not_found,
            client_metadata,
        }
    }

    /// Runs the team's Define.
    pub async fn define(
        &self,
        user: &EventUser<'_>,
        session: &[ChallengeRecord],
    ) -> Result<DefineDecision, CognitoError> {
        let output = self.call(Trigger::Define, &events::define_event(user, session)).await?;
        self.checked(Trigger::Define, events::read_define(&output))
    }

    /// Runs the team's Create.
    pub async fn create(
        &self,
        user: &EventUser<'_>,
        challenge_name: &str,
        session: &[ChallengeRecord],
    ) -> Result<CreatedChallenge, CognitoError> {
        let output = self.call(Trigger::Create, &events::create_event(user, challenge_name, session)).await?;
        let mut coerced = Vec::new();
        let created =
            self.checked(Trigger::Create, events::read_create(&output, self.strict_parameters, &mut coerced))?;
        if let Some(f) = self.functions.get(&Trigger::Create) {
            f.count_coerced(coerced.len());
        }
        for coercion in coerced {
            if self.warned.lock().insert((Trigger::Create, coercion.key.clone())) {
                tracing::warn!(
                    trigger = Trigger::Create.lambda_name(),
                    key = %coercion.key,
                    "the trigger returned a {} where Cognito's challenge parameters hold strings: the pool turned it \
                     into its text (a number loses any leading zero), as Cognito is taken to do; set \
                     triggers.strict_parameters to refuse it instead. Logged once per key; counted in /_pool/stats",
                    coercion.kind
                );
            }
        }
        Ok(created)
    }

    /// Runs the team's Verify.
    pub async fn verify(
        &self,
        user: &EventUser<'_>,
        private: &BTreeMap<String, String>,
        answer: &str,
    ) -> Result<bool, CognitoError> {
        let output = self.call(Trigger::Verify, &events::verify_event(user, private, answer)).await?;
        self.checked(Trigger::Verify, events::read_verify(&output))
    }

    /// Counts an unreadable answer.
    fn checked<T>(&self, trigger: Trigger, read: Result<T, CognitoError>) -> Result<T, CognitoError> {
        if let Err(e) = &read
            && e.kind == ErrorKind::InvalidLambdaResponse
        {
            if let Some(f) = self.functions.get(&trigger) {
                f.count_invalid_output();
            }
            tracing::warn!(
                trigger = trigger.lambda_name(),
                "the trigger's answer is not the event with a readable response: {}",
                e.message
            );
        }
        read
    }

    /// One invocation, its failure as Cognito reports it.
    async fn call(&self, trigger: Trigger, event: &Value) -> Result<Value, CognitoError> {
        let name = trigger.lambda_name();
        let function = self.functions.get(&trigger).ok_or_else(|| {
            CognitoError::new(ErrorKind::InternalError, format!("{name}: the team's function is not configured"))
        })?;
        function.invoke(event).await.map_err(|failure| match failure {
            CallFailure::Handler { message, .. } => {
                CognitoError::new(ErrorKind::UserLambdaValidation, format!("{name} failed with error {message}."))
            }
            CallFailure::Exited { request_id, status } => CognitoError::new(
                ErrorKind::UserLambdaValidation,
                format!("{name} failed with error RequestId: {request_id} Error: Runtime exited with error: {status}."),
            ),
            CallFailure::Timeout => CognitoError::new(
                ErrorKind::UnexpectedLambda,
                format!("{name} invocation failed due to error Socket timeout while invoking Lambda function."),
            ),
            CallFailure::Unavailable(why) => {
                tracing::warn!(trigger = name, "no runtime could be started: {why}");
                CognitoError::new(
                    ErrorKind::UnexpectedLambda,
                    format!("{name} invocation failed due to error ServiceException."),
                )
            }
        })
    }
}

/// The handler file of `module` in `code_dir` and its language: Node.js tries `.js`, `.mjs`, `.cjs` (as
/// AWS's runtime does), Python `.py` (a dotted module `pkg.mod` is `pkg/mod.py`). Both present is an
/// error: the pool cannot tell which runtime the Lambda has.
fn locate(code_dir: &Path, module: &str) -> anyhow::Result<(PathBuf, Language)> {
    let node = ["js", "mjs", "cjs"].iter().map(|ext| code_dir.join(format!("{module}.{ext}"))).find(|p| p.is_file());
    let python = Some(code_dir.join(format!("{}.py", module.replace('.', "/")))).filter(|p| p.is_file());
    match (node, python) {
        (Some(js), Some(py)) => anyhow::bail!(
            "both {} and {} exist: the pool cannot tell whether the function runs on Node.js or Python; move one \
             of them out of {}",
            js.display(),
            py.display(),
            code_dir.display()
        ),
        (Some(js), None) => Ok((js, Language::Nodejs)),
        (None, Some(py)) => Ok((py, Language::Python)),
        (None, None) => anyhow::bail!(
            "no handler file: none of {module}.js, {module}.mjs, {module}.cjs, {}.py is in {}",
            module.replace('.', "/"),
            code_dir.display()
        ),
    }
}

/// `DefineAuthChallenge` → `define-auth-challenge`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The environment of a function's runtime: what Lambda sets, the pool's endpoint for every AWS SDK,
/// throwaway credentials, then the team's `triggers.environment`. Nothing else of the pool's own
/// environment but PATH, HOME, LANG and TMPDIR.
#[allow(clippy::too_many_arguments)]
fn environment(
    config: &PoolConfig,
    endpoint: &str,
    code_dir: &Path,
    file: &Path,
    handler: &str,
    module: &str,
    function: &str,
    function_name: &str,
    language: Language,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ["PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let region = config.region.as_str();
    for (k, v) in [
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("AWS_ACCESS_KEY_ID", "AKIAOTPHARNESSLOCAL0"),
        ("AWS_SECRET_ACCESS_KEY", "otp-harness-local-pool-throwaway-secret"),
        ("AWS_SESSION_TOKEN", "otp-harness-local-pool-throwaway-token"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ENDPOINT_URL_SES", endpoint),
        ("AWS_ENDPOINT_URL_SESV2", endpoint),
        ("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", endpoint),
        ("AWS_CONFIG_FILE", "/nonexistent/otp-harness-local-pool"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/otp-harness-local-pool"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_EXECUTION_ENV", language.execution_env()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
        ("_HANDLER", handler),
        ("TZ", "UTC"),
        ("OTP_HARNESS_HANDLER_MODULE", &module.replace('/', ".")),
        ("OTP_HARNESS_HANDLER_FUNCTION", function),
        ("PYTHONUNBUFFERED", "1"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    env.push(("AWS_LAMBDA_LOG_GROUP_NAME".into(), format!("/aws/lambda/{function_name}")));
    env.push(("LAMBDA_TASK_ROOT".into(), code_dir.display().to_string()));
    env.push(("OTP_HARNESS_HANDLER_FILE".into(), file.display().to_string()));
    env.extend(config.triggers.environment.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
