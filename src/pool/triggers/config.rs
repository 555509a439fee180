//! `[triggers]`: the team's own Define / Create / Verify Lambda handlers the local pool runs instead of
//! its built-in ones — where the code is, which file and export each trigger is (Lambda's
//! `FILE.EXPORT` handler syntax: a `.js`/`.mjs`/`.cjs` file runs on Node.js, a `.py` file on Python),
//! the environment the functions get, Cognito's time limit, and how many runtime processes each may use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pool::config::Trigger;

/// Environment variables Lambda reserves: a function's configuration may not set them (Lambda refuses
/// such a configuration), and the local pool sets them itself.
pub const RESERVED_ENVIRONMENT: [&str; 16] = [
    "_HANDLER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
];

/// The team's trigger handlers (`[triggers]` in the pool config or in a scenario's `[target.pool]`).
/// A trigger left out runs the pool's built-in version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggersConfig {
    /// The functions' code root (node_modules inside for Node.js); relative to the config file (or the
    /// scenario file) that names it.
    pub code_dir: Option<PathBuf>,
    /// The Define trigger's handler, e.g. `define.handler`.
    pub define: Option<String>,
    /// The Create trigger's handler.
    pub create: Option<String>,
    /// The Verify trigger's handler.
    pub verify: Option<String>,
    /// How long Cognito waits for a trigger (5 s, fixed on AWS); past it the call fails with
    /// `UnexpectedLambdaException` and the runtime is replaced.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Environment variables of every function (the Lambda's configured environment).
    pub environment: BTreeMap<String, String>,
    /// The Node.js executable (a name looked up on the PATH, or a path).
    pub node: String,
    /// The Python executable (a name looked up on the PATH, or a path), e.g. a virtualenv's python
    /// that has boto3.
    pub python: String,
    /// Runtime processes each trigger may use at once (each runs one call at a time, as a Lambda
    /// execution environment does); one starts with the pool, more start as the load needs them.
    /// 0: one per core (more processes than cores only contend for them: see reports/BENCHMARKS.md).
    pub max_runtimes: usize,
    /// A number or boolean in a Create trigger's challenge parameters fails the call with
    /// `InvalidLambdaResponseException`, instead of being turned into its text with a warning in the log.
    pub strict_parameters: bool,
}

impl Default for TriggersConfig {
    fn default() -> Self {
        Self {
            code_dir: None,
            define: None,
            create: None,
            verify: None,
            timeout: Duration::from_secs(5),
            environment: BTreeMap::new(),
            node: "node".into(),
            python: "python3".into(),
            max_runtimes: 0,
            strict_parameters: false,
        }
    }
}

impl TriggersConfig {
    /// The handler configured for `trigger`, if the team's replaces the built-in one.
    pub fn handler(&self, trigger: Trigger) -> Option<&str> {
        match trigger {
            Trigger::Define => self.define.as_deref(),
            Trigger::Create => self.create.as_deref(),
            Trigger::Verify => self.verify.as_deref(),
        }
    }

    /// The runtimes each trigger may use: `max_runtimes`, or one per core when it is 0.
    pub fn runtimes_per_trigger(&self) -> usize {
        match self.max_runtimes {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n,
        }
    }

    /// Whether any trigger is the team's own.
    pub fn any(&self) -> bool {
        self.define.is_some() || self.create.is_some() || self.verify.is_some()
    }

    /// Makes a relative `code_dir` relative to `base` (the folder of the file that named it).
    pub fn anchor(&mut self, base: &Path) {
        if let Some(dir) = &self.code_dir
            && dir.is_relative()
        {
            self.code_dir = Some(base.join(dir));
        }
    }

    /// Checks what can be checked without touching the disk; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        for trigger in [Trigger::Define, Trigger::Create, Trigger::Verify] {
            if let Some(handler) = self.handler(trigger) {
                let key = key_of(trigger);
                split_handler(handler).map_err(|e| anyhow::anyhow!("triggers.{key}: {e}"))?;
            }
        }
        if self.any() && self.code_dir.is_none() {
            bail!("triggers.code_dir is required when a trigger handler is set (the folder of the handler files)");
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(900) {
            bail!("triggers.timeout must be longer than zero and at most 15m (Cognito's is 5s)");
        }
        if self.max_runtimes > 64 {
            bail!("triggers.max_runtimes must be between 0 (one per core) and 64, got {}", self.max_runtimes);
        }
        for (key, program) in [("node", &self.node), ("python", &self.python)] {
            if program.trim().is_empty() {
                bail!("triggers.{key} must name an executable");
            }
        }
        for name in self.environment.keys() {
            if RESERVED_ENVIRONMENT.contains(&name.as_str()) {
                // Lambda's own refusal, with the key named.
                bail!(
                    "triggers.environment: {name} is a reserved key: Lambda was unable to configure your \
                     environment variables because the environment variables you have provided contains \
                     reserved keys that are currently not supported for modification"
                );
            }
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                bail!(
                    "triggers.environment: {name:?} is not a valid variable name (letters, digits, _; a letter first)"
                );
            }
        }
        Ok(())
    }
}

/// The config key of a trigger (`define`, `create`, `verify`).
pub fn key_of(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Define => "define",
        Trigger::Create => "create",
        Trigger::Verify => "verify",
    }
}

/// A handler string split as Lambda's runtimes do: the module path (up to the first `.` after the last
/// `/`) and the function path after it (`index.handler` → `index`, `handler`; `lib/auth.define` →
/// `lib/auth`, `define`; `app.handlers.define` → `app`, `handlers.define`).
pub fn split_handler(handler: &str) -> anyhow::Result<(String, String)> {
    let malformed = || {
        anyhow::anyhow!(
            "{handler:?} is not a handler: write FILE.EXPORT, e.g. \"define.handler\" for define.js's handler"
        )
    };
    let slash = handler.rfind('/').map_or(0, |i| i + 1);
    let dot = handler[slash..].find('.').map(|i| i + slash).ok_or_else(malformed)?;
    let (module, function) = (&handler[..dot], &handler[dot + 1..]);
    if module.is_empty() || function.is_empty() || function.split('.').any(str::is_empty) {
        return Err(malformed());
    }
    if module.split('/').any(|part| part == ".." || part.is_empty()) || module.starts_with('/') {
        anyhow::bail!(
            "{handler:?}: the handler file must be inside triggers.code_dir ('..' and absolute paths are refused)"
        );
    }
    Ok((module.to_string(), function.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_split_as_lambda_splits_them() {
        assert_eq!(split_handler("define.handler").expect("ok"), ("define".into(), "handler".into()));
        assert_eq!(split_handler("lib/auth.define").expect("ok"), ("lib/auth".into(), "define".into()));
        assert_eq!(split_handler("app.handlers.define").expect("ok"), ("app".into(), "handlers.define".into()));
        for bad in ["define", "define.", ".handler", "../x.handler", "/abs/x.handler", "a..b"] {
            assert!(split_handler(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let with = |f: fn(&mut TriggersConfig)| {
            let mut c = TriggersConfig { code_dir: Some("t".into()), ..Default::default() };
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(with(|c| c.define = Some("define".into())).contains("triggers.define"));
        assert!(with(|c| c.timeout = Duration::ZERO).contains("triggers.timeout"));
        assert!(with(|c| c.max_runtimes = 65).contains("max_runtimes"));
        assert!(
            with(|c| {
                c.environment.insert("AWS_REGION".into(), "x".into());
            })
            .contains("reserved")
        );
        let no_dir = TriggersConfig { create: Some("create.handler".into()), ..Default::default() };
        assert!(no_dir.validate().unwrap_err().to_string().contains("code_dir"));
    }
}
