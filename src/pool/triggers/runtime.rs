//! Runtime processes for one trigger function: long-lived Node.js or Python processes running the
//! embedded shim, which loads the team's handler once and then answers one JSON line per invocation
//! (module state survives between calls, as in a warm Lambda). Each process runs one call at a time,
//! like a Lambda execution environment; one starts with the pool, more start (cold starts, counted)
//! while every live one is busy, up to `max_runtimes`. A call past the time limit kills its process; a
//! process that dies fails only the call it was running; either is replaced by the next call that
//! needs one. Whatever a function writes to stdout or stderr goes to the pool's log, tagged with the
//! trigger, with digit runs of 4 to 10 (what a one-time code looks like) redacted.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use crate::pool::config::Trigger;

/// How long a new runtime may take to load its handler (Lambda's init phase limit is 10 s).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The language a handler file runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Nodejs,
    Python,
}

impl Language {
    /// As AWS_EXECUTION_ENV names the runtime.
    pub fn execution_env(self) -> &'static str {
        match self {
            Language::Nodejs => "AWS_Lambda_nodejs20.x",
            Language::Python => "AWS_Lambda_python3.11",
        }
    }
}

/// Everything needed to start a runtime for one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub trigger: Trigger,
    pub language: Language,
    /// The node or python executable.
    pub program: PathBuf,
    /// The shim file the program runs.
    pub shim: PathBuf,
    pub code_dir: PathBuf,
    /// The handler file (Node.js: loaded by path).
    pub file: PathBuf,
    /// Python: the dotted module name.
    pub module: String,
    /// The exported function's path (`handler`, or `handlers.define`).
    pub function: String,
    /// The handler as configured (`define.handler`).
    pub handler: String,
    pub function_name: String,
    /// The process environment (it starts empty: nothing of the developer's reaches the function).
    pub env: Vec<(String, String)>,
}

/// Why a call produced no answer from the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallFailure {
    /// The function threw (or failed its callback): its error type and message.
    Handler { error_type: String, message: String },
    /// The process died during the call (`exit status 129`, `signal: killed`).
    Exited { request_id: String, status: String },
    /// No answer within the time limit; the process was killed.
    Timeout,
    /// No runtime could be started for the call.
    Unavailable(String),
}

/// Why a runtime could not start: a setup error, shown once at start.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// One live runtime process (listed in its pool's live pids until dropped).
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    pid: u32,
    live: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.live.lock().retain(|p| *p != self.pid);
    }
}

/// Counters of one function's calls and runtimes.
#[derive(Debug)]
struct Counters {
    invocations: AtomicU64,
    handler_errors: AtomicU64,
    timeouts: AtomicU64,
    runtime_exits: AtomicU64,
    cold_starts: AtomicU64,
    invalid_output: AtomicU64,
    coerced_values: AtomicU64,
    /// Warm calls' round trip (request written → answer read), µs.
    warm: Mutex<Histogram<u64>>,
}

/// A function's counters as `/_pool/stats` shows them.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionStats {
    pub handler: String,
    pub runtime: Language,
    pub invocations: u64,
    pub handler_errors: u64,
    pub timeouts: u64,
    /// Runtimes that died: during a call (which failed, and only it) or while idle (then never used).
    pub runtime_exits: u64,
    /// Runtimes started (the first one at pool start included).
    pub cold_starts: u64,
    pub invalid_output: u64,
    /// Numbers or booleans in challenge parameters turned into strings.
    pub coerced_values: u64,
    /// Runtime processes alive now.
    pub runtimes: usize,
    /// Warm calls' round trip through the runtime, µs (p50, p99), when any.
    pub warm_call_p50_us: Option<u64>,
    pub warm_call_p99_us: Option<u64>,
}

/// The runtimes of one function.
pub struct RuntimePool {
    spec: Arc<FunctionSpec>,
    idle: Mutex<Vec<Worker>>,
    slots: Semaphore,
    live: Arc<Mutex<Vec<u32>>>,
    timeout: Duration,
    next_id: AtomicU64,
    counters: Counters,
}

impl RuntimePool {
    pub fn new(spec: FunctionSpec, max_runtimes: usize, timeout: Duration) -> Self {
        Self {
            spec: Arc::new(spec),
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_runtimes.max(1)),
            live: Arc::new(Mutex::new(Vec::new())),
            timeout,
            next_id: AtomicU64::new(1),
            counters: Counters {
                invocations: AtomicU64::new(0),
                handler_errors: AtomicU64::new(0),
                timeouts: AtomicU64::new(0),
                runtime_exits: AtomicU64::new(0),
                cold_starts: AtomicU64::new(0),
                invalid_output: AtomicU64::new(0),
                coerced_values: AtomicU64::new(0),
                warm: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds")),
            },
        }
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// Starts the first runtime and waits for its handler to load: a missing export, a syntax error or
    /// a module that is not installed is reported here, once, before any sign-in.
    pub async fn start(&self) -> Result<(), StartError> {
        let worker = spawn(&self.spec, &self.live, INIT_TIMEOUT).await?;
        self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
        self.idle.lock().push(worker);
        Ok(())
    }

    /// Counts values turned into strings.
    pub fn count_coerced(&self, n: usize) {
        self.counters.coerced_values.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts an answer Cognito could not read.
    pub fn count_invalid_output(&self) {
        self.counters.invalid_output.fetch_add(1, Ordering::Relaxed);
    }

    /// Process ids of the live runtimes.
    pub fn pids(&self) -> Vec<u32> {
        self.live.lock().clone()
    }

    /// Runs one invocation: the event in, the function's result (the returned event) out. Waiting for a
    /// free runtime is not timed; starting one (a cold start) and the call itself share the time limit.
    pub async fn invoke(&self, event: &Value) -> Result<Value, CallFailure> {
        let _slot = self.slots.acquire().await.map_err(|_| CallFailure::Unavailable("the pool is stopping".into()))?;
        self.counters.invocations.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.timeout;
        let (mut worker, cold) = match self.take_idle() {
            Some(worker) => (worker, false),
            None => {
                let started = spawn(&self.spec, &self.live, self.timeout).await;
                self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
                match started {
                    Ok(worker) => (worker, true),
                    Err(e) if Instant::now() >= deadline => {
                        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            trigger = self.spec.trigger.lambda_name(),
                            "a new runtime did not start in time: {e}"
                        );
                        return Err(CallFailure::Timeout);
                    }
                    Err(e) => return Err(CallFailure::Unavailable(e.0)),
                }
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline_ms = epoch_ms() + deadline.saturating_duration_since(Instant::now()).as_millis() as u64;
        let request = json!({
            "id": id,
            "event": event,
            "context": {
                "functionName": self.spec.function_name,
                "awsRequestId": request_id,
                "deadlineMs": deadline_ms,
                "invokedFunctionArn": format!("arn:aws:lambda:local:000000000000:function:{}", self.spec.function_name),
                "memoryLimitInMB": "128",
                "logGroupName": format!("/aws/lambda/{}", self.spec.function_name),
                "logStreamName": format!("local/[$LATEST]{}", worker.pid),
            },
        });
        let sent = Instant::now();
        let answer = tokio::time::timeout_at(deadline.into(), call(&mut worker, id, &request, &self.spec)).await;
        match answer {
            Ok(Ok(answer)) => {
                if !cold {
                    let micros = sent.elapsed().as_micros().max(1) as u64;
                    let _ = self.counters.warm.lock().record(micros);
                }
                self.idle.lock().push(worker);
                match answer {
                    Answer::Result(value) => Ok(value),
                    Answer::Error { error_type, message } => {
                        self.counters.handler_errors.fetch_add(1, Ordering::Relaxed);
                        Err(CallFailure::Handler { error_type, message })
                    }
                }
            }
            Ok(Err(())) => {
                self.counters.runtime_exits.fetch_add(1, Ordering::Relaxed);
                let status = exit_status(&mut worker).await;
                tracing::warn!(
                    trigger = self.spec.trigger.lambda_name(),
                    pid = worker.pid,
                    "the runtime exited during a call ({status}); the next call starts a new one"
                );
                Err(CallFailure::Exited { request_id, status })
            }
            Err(_) => {
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    trigger = self.spec.trigger.lambda_name(),
                    pid = worker.pid,
                    timeout = ?self.timeout,
                    "the function did not answer in time; its runtime is killed and will be replaced"
                );
                kill(worker);
                Err(CallFailure::Timeout)
            }
        }
    }

    /// An idle runtime that is still alive (one that died while idle is dropped, not used).
    fn take_idle(&self) -> Option<Worker> {
        let mut idle = self.idle.lock();
        while let Some(mut worker) = idle.pop() {
            if matches!(worker.child.try_wait(), Ok(None)) {
                return Some(worker);
            }
            self.counters.runtime_exits.fetch_add(1, Ordering::Relaxed);
        }
        None
    }

    /// The counters.
    pub fn stats(&self) -> FunctionStats {
        let c = &self.counters;
        let warm = c.warm.lock();
        let quantile = |q: f64| (!warm.is_empty()).then(|| warm.value_at_quantile(q));
        FunctionStats {
            handler: self.spec.handler.clone(),
            runtime: self.spec.language,
            invocations: c.invocations.load(Ordering::Relaxed),
            handler_errors: c.handler_errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            runtime_exits: c.runtime_exits.load(Ordering::Relaxed),
            cold_starts: c.cold_starts.load(Ordering::Relaxed),
            invalid_output: c.invalid_output.load(Ordering::Relaxed),
            coerced_values: c.coerced_values.load(Ordering::Relaxed),
            runtimes: self.live.lock().len(),
            warm_call_p50_us: quantile(0.5),
            warm_call_p99_us: quantile(0.99),
        }
    }
}

/// What came back on the protocol line.
enum Answer {
    Result(Value),
    Error { error_type: String, message: String },
}

/// Writes the request and reads lines until its answer; `Err` when the process closed its output.
async fn call(worker: &mut Worker, id: u64, request: &Value, spec: &FunctionSpec) -> Result<Answer, ()> {
    let mut line = request.to_string();
    line.push('\n');
    if worker.stdin.write_all(line.as_bytes()).await.is_err() || worker.stdin.flush().await.is_err() {
        return Err(());
    }
    loop {
        let Ok(Some(text)) = worker.stdout.next_line().await else {
            return Err(());
        };
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(&text) else {
            // A function that wrote to file descriptor 1 itself: its output, not the protocol's.
            log_output(spec, worker.pid, &text);
            continue;
        };
        if message.get("id").and_then(Value::as_u64) != Some(id) {
            continue;
        }
        if message.get("ok") == Some(&Value::Bool(true)) {
            return Ok(Answer::Result(message.remove("result").unwrap_or(Value::Null)));
        }
        let error = message.remove("error").unwrap_or(Value::Null);
        let text_of = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(Answer::Error { error_type: text_of("errorType"), message: text_of("errorMessage") });
    }
}

/// Starts a runtime and waits (up to `limit`) for its handler to load.
async fn spawn(spec: &FunctionSpec, live: &Arc<Mutex<Vec<u32>>>, limit: Duration) -> Result<Worker, StartError> {
    let name = spec.trigger.lambda_name();
    let mut command = Command::new(&spec.program);
    command
        .arg(&spec.shim)
        .current_dir(&spec.code_dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        let (what, key) = match spec.language {
            Language::Nodejs => ("Node.js", "node"),
            Language::Python => ("Python", "python"),
        };
        StartError(if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "the {name} trigger ({}) needs {what}, but {:?} was not found: install it, or set triggers.{key} to its path",
                spec.handler,
                spec.program.display().to_string()
            )
        } else {
            format!("the {name} trigger ({}): cannot start {}: {e}", spec.handler, spec.program.display())
        })
    })?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(StartError(format!("the {name} trigger: the runtime's pipes are missing")));
    };
    let log_spec = spec.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log_output(&log_spec, pid, &line);
        }
    });
    live.lock().push(pid);
    let mut worker = Worker { child, stdin, stdout: BufReader::new(stdout).lines(), pid, live: Arc::clone(live) };
    let ready = tokio::time::timeout(limit, async {
        loop {
            match worker.stdout.next_line().await {
                Ok(Some(text)) => match serde_json::from_str::<Value>(&text) {
                    Ok(message) if message.get("ready").is_some() => return Some(message),
                    _ => log_output(spec, pid, &text),
                },
                _ => return None,
            }
        }
    })
    .await;
    let fail = |why: String| StartError(format!("the {name} trigger ({}) cannot be loaded: {why}", spec.handler));
    match ready {
        Ok(Some(message)) if message["ready"] == Value::Bool(true) => Ok(worker),
        Ok(Some(message)) => {
            let error_type = message["error"]["errorType"].as_str().unwrap_or("Runtime.Error");
            let text = message["error"]["errorMessage"].as_str().unwrap_or("");
            Err(fail(format!("{error_type}: {text}")))
        }
        Ok(None) => {
            let status = exit_status(&mut worker).await;
            Err(fail(format!("the runtime exited while loading it ({status}); its output is in the log above")))
        }
        Err(_) => {
            kill(worker);
            Err(fail(format!("it did not finish loading within {}", humantime::format_duration(limit))))
        }
    }
}

/// How a process that closed its output ended, as Lambda words it (`exit status 129`, `signal: killed`).
async fn exit_status(worker: &mut Worker) -> String {
    match tokio::time::timeout(Duration::from_secs(2), worker.child.wait()).await {
        Ok(Ok(status)) => describe_status(status),
        Ok(Err(e)) => format!("unknown status: {e}"),
        Err(_) => {
            let _ = worker.child.start_kill();
            "closed its output and did not exit".into()
        }
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(9) => "signal: killed".into(),
        Some(15) => "signal: terminated".into(),
        Some(n) => format!("signal: {n}"),
        None => "unknown status".into(),
    }
}

/// Kills a runtime and reaps it in the background.
fn kill(mut worker: Worker) {
    let _ = worker.child.start_kill();
    tokio::spawn(async move {
        let _ = worker.child.wait().await;
    });
}

/// One line a function wrote, to the pool's log, tagged with the trigger; digit runs redacted.
fn log_output(spec: &FunctionSpec, pid: u32, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    tracing::info!(target: "otp_harness::pool::trigger", trigger = spec.trigger.lambda_name(), pid, "{}", redact_digits(line));
}

/// Replaces every run of 4 to 10 digits (what a one-time code looks like) with `[digits]`: a function
/// that logs its code does not put it in the pool's log. Longer runs (timestamps in ms) stay.
pub fn redact_digits(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (4..=10).contains(&run.len()) {
            out.push_str("[digits]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_redacted_from_function_output() {
        assert_eq!(redact_digits("code 012345 sent to a@b.test"), "code [digits] sent to a@b.test");
        assert_eq!(redact_digits("{\"secretLoginCode\":98765432}"), "{\"secretLoginCode\":[digits]}");
        assert_eq!(redact_digits("round 2 of 3, at 1715000000000"), "round 2 of 3, at 1715000000000");
    }
}
