//! A cluster of separate processes, as README starts one: `recfusion-scheduler`, two
//! `recfusion-executor`s on loopback, and `recfusion --cluster df://…` running the quickstart,
//! which prints what the single-process run prints.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `recfusion` binary, built beside this test's binaries by `cargo test --workspace`.
fn recfusion_binary() -> Option<PathBuf> {
    let test = std::env::current_exe().ok()?;
    let binary = test.parent()?.parent()?.join("recfusion");
    binary.exists().then_some(binary)
}

/// Runs recfusion, killing it after two minutes: a job waits for executors as long as none
/// has registered.
fn run(binary: &PathBuf, args: &[&str]) -> Output {
    let mut child = Command::new(binary)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run recfusion");
    let started = Instant::now();
    while child.try_wait().expect("wait for recfusion").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("recfusion's output")
}

/// Waits until something listens on `port`.
fn wait_for(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing listens on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_quickstart_runs_on_separate_processes() {
    let Some(recfusion) = recfusion_binary() else {
        eprintln!("skipped: the recfusion binary is not built (run cargo test --workspace)");
        return;
    };
    let scheduler_port = free_port();
    let _scheduler = Running(
        Command::new(env!("CARGO_BIN_EXE_recfusion-scheduler"))
            .args(["--bind-host", "127.0.0.1", "--bind-port", &scheduler_port.to_string()])
            .spawn()
            .unwrap(),
    );
    // An executor that finds no scheduler exits at once, as Ballista's does.
    wait_for(scheduler_port);
    let work = tempfile::tempdir().unwrap();
    let mut executors = Vec::new();
    for n in 0..2 {
        let dir = work.path().join(format!("executor-{n}"));
        executors.push(Running(
            Command::new(env!("CARGO_BIN_EXE_recfusion-executor"))
                .args([
                    "--scheduler-host",
                    "127.0.0.1",
                    "--scheduler-port",
                    &scheduler_port.to_string(),
                ])
                .args(["--bind-host", "127.0.0.1", "--bind-port", &free_port().to_string()])
                .args(["--bind-grpc-port", &free_port().to_string(), "--vcores", "1"])
                .args(["--work-dir", dir.to_str().unwrap()])
                .spawn()
                .unwrap(),
        ));
    }
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let shared = work.path().join("shared");
    let args = ["-q", "--format", "csv", "-f", "examples/quickstart.sql"];
    let single = run(&recfusion, &args);
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    // The scheduler and executors take a moment to start: retry until the first run connects.
    let started = Instant::now();
    let on_cluster = loop {
        let output = run(
            &recfusion,
            &[
                &args[..],
                &["--cluster", &url, "--cluster-dir", shared.to_str().unwrap()],
            ]
            .concat(),
        );
        if output.status.success() || started.elapsed() > Duration::from_secs(30) {
            break output;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        on_cluster.status.success(),
        "{}",
        String::from_utf8_lossy(&on_cluster.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&single.stdout),
        String::from_utf8_lossy(&on_cluster.stdout)
    );
}
