//! A throwaway S3 server: moto's `moto_server` on 127.0.0.1 with a free port. Found through
//! `OTP_HARNESS_MOTO`, the project's `.venv` (made by `.ci/run`), or `PATH`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running S3 server; stopped on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
}

impl S3Server {
    /// Starts moto and waits until it answers HTTP.
    pub async fn start() -> anyhow::Result<Self> {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        let binary = super::find_executable("OTP_HARNESS_MOTO", "moto_server", &[venv]).context(
            "moto_server not found: run .ci/run once, or pip install \"moto[server]\" (or set OTP_HARNESS_MOTO)",
        )?;
        let port = super::free_port()?;
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self { child, port };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("moto_server exited at start ({status})");
            }
            if client.get(server.endpoint()).send().await.is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("moto_server did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(5));
    }
}
