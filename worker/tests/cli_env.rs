//! The worker binary's options as an operator sets them: through BRIDGEPOOL_* variables.

use std::process::Command;

fn worker_with_env(var: &str, value: &str) -> (Option<i32>, String) {
    worker_with_envs(&[(var, value)])
}

fn worker_with_envs(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bridgepool-worker"))
        .envs(vars.iter().copied())
        .env("BRIDGEPOOL_SCHEDULERS", "http://127.0.0.1:1")
        .env_remove("BRIDGEPOOL_CORES")
        .output()
        .expect("worker runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn busy_poll_from_the_environment() {
    // A value that is no boolean is refused, naming the variable's flag.
    let (code, stderr) = worker_with_env("BRIDGEPOOL_BUSY_POLL", "sometimes");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("busy-poll"), "{stderr}");
    // "yes" turns it on: then the default media set (every core) is refused before anything
    // starts, which shows the variable was read as true.
    let (code, stderr) = worker_with_env("BRIDGEPOOL_BUSY_POLL", "yes");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("needs --cores"), "{stderr}");
    // "false" is off: with another option wrong, only that one is reported.
    let (code, stderr) = worker_with_envs(&[
        ("BRIDGEPOOL_BUSY_POLL", "false"),
        ("BRIDGEPOOL_GRPC_LISTEN", "nowhere"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("1 bad option"), "{stderr}");
    assert!(stderr.contains("grpc-listen"), "{stderr}");
    assert!(!stderr.contains("busy-poll"), "{stderr}");
}
