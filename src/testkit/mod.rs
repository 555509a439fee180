//! Throwaway servers for tests and benchmarks: a real Dovecot (LMTP in, IMAP out) and a real S3
//! server (moto), each started on 127.0.0.1 with free ports in its own temporary directory and stopped
//! when dropped. A missing server binary is an error, never a silent skip.

pub mod dovecot;
pub mod s3server;

use std::net::TcpListener;
use std::path::PathBuf;

/// The smallest valid scenario the tests build on (a local target, outbox codes, two virtual users):
/// line numbers in tests of scenario errors count from it.
pub const MINIMAL_SCENARIO: &str = r#"name = "ok"
[target]
kind = "local"
[users]
test_users = true
pattern = "vu+{n}@mail.test"
count = 8
[otp]
source = "outbox"
[load]
users = 2
"#;

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it next).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Finds an executable: the override variable first, then each candidate path, then `PATH`.
fn find_executable(override_var: &str, name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(override_var).map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()))
}

/// Sends SIGTERM to a child (through `kill`, as std only offers SIGKILL) and waits up to `grace`,
/// then kills it.
fn terminate(child: &mut std::process::Child, grace: std::time::Duration) {
    let _ = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
