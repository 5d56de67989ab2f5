//! recfusion on an in-process Ballista cluster: the quickstart prints on `--local-cluster 2`
//! what it prints in one process; functions are registered after connecting (Ballista
//! replaces the client's function lists); tables that cannot travel are clear errors that
//! leave the session as it was.

use std::process::Command;

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
