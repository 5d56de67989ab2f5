//! recfusion on a Ballista cluster: the quickstart prints on `--local-cluster 2`, and on a
//! scheduler and two executors run as separate `recfusion scheduler` / `recfusion executor`
//! processes, what it prints in one process, and the servers log their work; functions are
//! registered after connecting (Ballista replaces the client's function lists); tables that
//! cannot travel are clear errors that leave the session as it was.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ballista::prelude::SessionContextExt;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use recfusion::cluster::{ClusterOptions, MEMORY_TABLE_CAP};
use recfusion::{SessionOptions, execute_sql, new_cluster_session};

fn quickstart(extra: &[&str]) -> String {
    // Its model is kept by name: in a directory of its own, not the user's.
    let models = tempfile::tempdir().expect("a temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "--format", "csv", "-f", "examples/quickstart.sql"])
        .args(extra)
        .env("RECFUSION_MODELS", models.path())
        .output()
        .expect("run recfusion");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "recfusion {extra:?}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

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

/// A scheduler on 127.0.0.1:`port` logging at the default level to `log`, once it listens:
/// an executor that finds no scheduler exits at once, as Ballista's does.
fn start_scheduler(port: u16, log: std::fs::File) -> Running {
    let scheduler = Running(
        Command::new(env!("CARGO_BIN_EXE_recfusion"))
            .args([
                "scheduler",
                "--bind-host",
                "127.0.0.1",
                "--bind-port",
                &port.to_string(),
            ])
            .env_remove("RUST_LOG")
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for(port);
    scheduler
}

/// An executor of the scheduler at `scheduler_port` with one task slot, its shuffle files in
/// `dir`, logging at the default level to `log`.
fn start_executor(scheduler_port: u16, dir: &std::path::Path, log: std::fs::File) -> Child {
    Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args([
            "executor",
            "--scheduler-host",
            "127.0.0.1",
            "--scheduler-port",
            &scheduler_port.to_string(),
        ])
        .args(["--bind-host", "127.0.0.1", "--bind-port", &free_port().to_string()])
        .args(["--bind-grpc-port", &free_port().to_string(), "--vcores", "1"])
        .args(["--work-dir", dir.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Runs recfusion with `args`, killing it after two minutes: a job waits for executors as long
/// as none has registered.
fn run(args: &[&str], models: &std::path::Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(args)
        .env("RECFUSION_MODELS", models)
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

/// A cluster of separate processes, as docs/cluster.md starts one: `recfusion scheduler`, two
/// `recfusion executor`s on loopback, and `recfusion --cluster df://…` running the quickstart,
/// which prints what the single-process run prints. The servers say what they do: where they
/// listen, each task with its duration, each job's end with its duration.
#[test]
fn the_quickstart_runs_on_separate_processes_that_log_their_work() {
    let work = tempfile::tempdir().unwrap();
    let log = |name: &str| std::fs::File::create(work.path().join(name)).unwrap();
    let scheduler_port = free_port();
    let _scheduler = start_scheduler(scheduler_port, log("scheduler.log"));
    let _executors: Vec<Running> = (0..2)
        .map(|n| {
            let dir = work.path().join(format!("executor-{n}"));
            Running(start_executor(scheduler_port, &dir, log(&format!("executor-{n}.log"))))
        })
        .collect();
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let shared = work.path().join("shared");
    let models = work.path().join("models");
    let args = ["-q", "--format", "csv", "-f", "examples/quickstart.sql"];
    let single = run(&args, &models);
    assert!(single.status.success(), "{}", String::from_utf8_lossy(&single.stderr));
    // The scheduler and executors take a moment to start: retry until the first run connects.
    let started = Instant::now();
    let on_cluster = loop {
        let output = run(
            &[
                &args[..],
                &["--cluster", &url, "--cluster-dir", shared.to_str().unwrap()],
            ]
            .concat(),
            &models,
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
    let read = |name: &str| std::fs::read_to_string(work.path().join(name)).unwrap();
    let scheduler = read("scheduler.log");
    assert!(
        scheduler.contains(&format!("recfusion scheduler listening on 127.0.0.1:{scheduler_port}")),
        "{scheduler}"
    );
    assert!(scheduler.contains(" INFO  "), "{scheduler}");
    let finished_job = scheduler
        .lines()
        .any(|l| l.contains("Job finished successfully: [") && l.ends_with(" s"));
    assert!(finished_job, "a job's end with its duration: {scheduler}");
    let executors_log = read("executor-0.log") + &read("executor-1.log");
    assert!(executors_log.contains("task slots, work dir"), "{executors_log}");
    assert!(
        executors_log.contains("Finished task : ["),
        "each task with its duration: {executors_log}"
    );

    // A client that cannot reach the scheduler names the address it tried.
    let unreachable = run(
        &[
            "-c",
            "SELECT 1",
            "--cluster",
            &format!("df://127.0.0.1:{}", free_port()),
        ],
        &models,
    );
    assert!(!unreachable.status.success());
    let error = String::from_utf8_lossy(&unreachable.stderr);
    assert!(error.contains("cannot reach the scheduler at 127.0.0.1:"), "{error}");
}

/// One executor of two killed (`kill -9`) while a query runs on it: the query gives the right
/// answer (the scheduler runs the lost tasks elsewhere) or fails with an error — never exit 0
/// with a wrong number.
#[test]
fn a_query_survives_an_executor_killed_under_it_or_fails_clearly() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("big");
    let rows = 4_000_000;
    let make = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "-c"])
        .arg(format!(
            "COPY (SELECT value AS id FROM generate_series(1, {rows})) TO '{}/' STORED AS PARQUET",
            data.display()
        ))
        .output()
        .unwrap();
    assert!(make.status.success(), "{}", String::from_utf8_lossy(&make.stderr));
    let log = |name: &str| std::fs::File::create(work.path().join(name)).unwrap();
    let scheduler_port = free_port();
    let _scheduler = start_scheduler(scheduler_port, log("scheduler.log"));
    let executor = |n: usize| {
        let dir = work.path().join(format!("executor-{n}"));
        start_executor(scheduler_port, &dir, log(&format!("executor-{n}.log")))
    };
    let mut doomed = executor(0);
    let _survivor = Running(executor(1));
    let url = format!("df://127.0.0.1:{scheduler_port}");
    let sql = format!(
        "SELECT count(*) AS n, count(DISTINCT id % 1000003) AS d, sum(id) AS s FROM '{}/'",
        data.display()
    );
    let client = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "--format", "csv", "--cluster", &url, "-c", &sql])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed as soon as it runs a task of the query.
    let started = Instant::now();
    let doomed_log = work.path().join("executor-0.log");
    while !std::fs::read_to_string(&doomed_log)
        .unwrap_or_default()
        .contains("Execute task")
        && started.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let output = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        let expected_sum: u64 = (1..=rows).sum();
        assert_eq!(stdout, format!("n,d,s\n{rows},1000003,{expected_sum}\n"), "{stderr}");
    } else {
        assert!(stderr.starts_with("Error: "), "{stderr}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the query took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_quickstart_prints_the_same_on_a_local_cluster() {
    let single = quickstart(&[]);
    let cluster = quickstart(&["--local-cluster", "2"]);
    assert!(single.lines().count() > 30, "{single}");
    assert_eq!(single, cluster);
}

/// The rows of `sql` as a printed table.
async fn shown(ctx: &SessionContext, sql: &str) -> String {
    let batches = execute_sql(ctx, sql).await.unwrap().collect().await.unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

async fn local_cluster(dir: Option<std::path::PathBuf>) -> ClusterOptions {
    let scheduler = recfusion_cluster::local::start_local_cluster(2, 1, None).await.unwrap();
    ClusterOptions {
        url: format!("df://localhost:{}", scheduler.port()),
        dir,
        target_partitions: Some(4),
    }
}

#[tokio::test]
async fn functions_are_registered_after_connecting() {
    let cluster = local_cluster(None).await;
    // Registered before connecting, as a plain DataFusion session would: Ballista drops them.
    let before = SessionContext::new_with_config(recfusion_cluster::cluster_config(SessionConfig::new()));
    recfusion::udfs::register_all(&before).unwrap();
    assert!(before.state().aggregate_functions().contains_key("vector_mean"));
    let state = SessionStateBuilder::new_from_existing(before.state()).build();
    let connected = SessionContext::remote_with_state(&cluster.url, state).await.unwrap();
    assert!(
        !connected.state().aggregate_functions().contains_key("vector_mean"),
        "Ballista kept the functions registered before connecting: registering after is no longer needed"
    );
    // recfusion's cluster session registers them after connecting.
    let ctx = new_cluster_session(&SessionOptions::default(), &cluster).await.unwrap();
    let shown = shown(
        &ctx,
        "SELECT vector_to_text(vector_mean(v), 1) AS mean FROM (VALUES (vector('[1, 2]')), (vector('[3, 4]'))) t(v)",
    )
    .await;
    assert!(shown.contains("[2.0, 3.0]"), "{shown}");
}

#[tokio::test]
async fn a_table_too_large_to_travel_is_an_error_that_says_what_to_do() {
    let cluster = local_cluster(None).await;
    let ctx = new_cluster_session(&SessionOptions::default(), &cluster).await.unwrap();
    let rows = MEMORY_TABLE_CAP / 8 + 100_000;
    let sql = format!("CREATE TABLE big AS SELECT value FROM generate_series(1, {rows})");
    let error = execute_sql(&ctx, &sql).await.unwrap_err().to_string();
    assert!(
        error.contains("CREATE TABLE big") && error.contains("--cluster-dir"),
        "{error}"
    );
    assert!(
        !ctx.table_exist("big").unwrap(),
        "a failed CREATE TABLE left a table behind"
    );
}

#[tokio::test]
async fn a_large_table_is_kept_as_parquet_under_the_cluster_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = local_cluster(Some(dir.path().to_path_buf())).await;
    let ctx = new_cluster_session(&SessionOptions::default(), &cluster).await.unwrap();
    let rows = MEMORY_TABLE_CAP / 8 + 100_000;
    let sql = format!("CREATE TABLE big AS SELECT value FROM generate_series(1, {rows})");
    execute_sql(&ctx, &sql).await.unwrap().collect().await.unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().to_string_lossy().ends_with(".parquet"));
    let shown = shown(&ctx, "SELECT count(*) AS n, sum(value) AS total FROM big").await;
    let total = (rows as u128) * (rows as u128 + 1) / 2;
    assert!(
        shown.contains(&rows.to_string()) && shown.contains(&total.to_string()),
        "{shown}"
    );
}
