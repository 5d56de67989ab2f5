//! SQLite files as other programs see them: the `sqlite3` shell and Python read what recfusion
//! wrote with native types and float32 vector BLOBs; a killed or interrupted writer leaves the
//! previous table; a locked file fails clearly after a bounded wait; readers keep their
//! snapshot while a table is replaced; tables written by other tools read with their types.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::SessionContext;
use recfusion::sqlite::{AttachOptions, attach};
use recfusion::{SessionOptions, execute_sql, new_session};

fn recfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(args)
        .output()
        .expect("run recfusion")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tool_available(name: &str) -> bool {
    let found = Command::new(name).arg("--version").output().is_ok();
    if !found {
        eprintln!("skipped: `{name}` is not installed");
    }
    found
}

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    execute_sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .collect()
        .await
        .unwrap()
}

async fn count(ctx: &SessionContext, table: &str) -> i64 {
    let batches = collect(ctx, &format!("SELECT count(*) FROM {table}")).await;
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

fn sqlite_count(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

const RECS: &str = "CREATE TABLE out.recs (PRIMARY KEY (user_id, rank)) AS \
    SELECT * FROM (VALUES (1, 1, 10, 0.9, true, vector([0.5, -1.25, 2.0]))) AS t(user_id, rank, item_id, score, fresh, embedding)";

#[test]
fn sqlite3_shell_and_python_read_native_types_and_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recs.sqlite");
    let attach = format!("{}=out", path.display());
    let output = recfusion(&["-q", "--attach", &attach, "-c", RECS]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    if tool_available("sqlite3") {
        let schema = Command::new("sqlite3").arg(&path).arg(".schema recs").output().unwrap();
        let schema = text(&schema.stdout);
        println!("{schema}");
        for expected in [
            "\"user_id\" INTEGER NOT NULL",
            "\"rank\" INTEGER NOT NULL",
            "\"item_id\" INTEGER,",
            "\"score\" REAL,",
            "\"fresh\" INTEGER,",
            "\"embedding\" BLOB",
            "PRIMARY KEY (\"user_id\", \"rank\")",
        ] {
            assert!(schema.contains(expected), "missing {expected} in {schema}");
        }
        let mode = Command::new("sqlite3")
            .arg(&path)
            .arg("PRAGMA journal_mode")
            .output()
            .unwrap();
        assert_eq!(text(&mode.stdout).trim(), "wal");
        let row = Command::new("sqlite3")
            .arg(&path)
            .arg("SELECT user_id, score, fresh, typeof(embedding), length(embedding) FROM recs")
            .output()
            .unwrap();
        assert_eq!(text(&row.stdout).trim(), "1|0.9|1|blob|12");
    }
    if tool_available("python3") {
        let script = "import sqlite3, struct, sys\n\
            con = sqlite3.connect(sys.argv[1])\n\
            blob, = con.execute('SELECT embedding FROM recs').fetchone()\n\
            print(struct.unpack('<%df' % (len(blob) // 4), blob))\n\
            print(con.execute(\"SELECT operation, rows_written FROM recfusion_tables WHERE table_name = 'recs'\").fetchone())";
        let output = Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(
            text(&output.stdout),
            "(0.5, -1.25, 2.0)\n('create', 1)\n",
            "{}",
            text(&output.stderr)
        );
    }
}

/// Starts a large `CREATE OR REPLACE` over `out.t` in a child process and stops it once it is
/// writing, with `signal`; the previous three rows must survive.
fn interrupt_large_write(signal: &str) -> (Output, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sqlite");
    let attach = format!("{}=out", path.display());
    let setup = recfusion(&[
        "-q",
        "--attach",
        &attach,
        "-c",
        "CREATE TABLE out.t AS SELECT * FROM (VALUES (1), (2), (3)) AS v(x)",
    ]);
    assert!(setup.status.success(), "{}", text(&setup.stderr));

    let child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "--attach", &attach, "-c"])
        .arg("CREATE OR REPLACE TABLE out.t AS SELECT value AS x FROM generate_series(1, 500000000)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wal = dir.path().join("big.sqlite-wal");
    let started = Instant::now();
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 4 << 20 {
        assert!(started.elapsed() < Duration::from_secs(120), "the write never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    let kill = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    (output, sqlite_count(&path, "t"))
}

#[test]
fn killed_process_leaves_the_previous_table() {
    let (output, rows) = interrupt_large_write("-KILL");
    assert!(!output.status.success());
    assert_eq!(rows, 3);
}

#[test]
fn ctrl_c_cancels_the_write_and_leaves_the_previous_table() {
    let (output, rows) = interrupt_large_write("-INT");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("cancelled"), "{}", text(&output.stderr));
    assert_eq!(rows, 3);
}

#[tokio::test]
async fn a_locked_file_is_retried_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.sqlite");
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let options = AttachOptions {
        busy_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    attach(&ctx, &path, "out", options).unwrap();
    collect(&ctx, "CREATE TABLE out.t AS SELECT 1 AS x").await;

    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let error = execute_sql(&ctx, "INSERT INTO out.t VALUES (2)").await.unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        error
            .to_string()
            .contains("is locked by another connection; gave up after 0.3 s"),
        "{error}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    collect(&ctx, "INSERT INTO out.t VALUES (2)").await;
    assert_eq!(count(&ctx, "out.t").await, 2);
}

#[tokio::test]
async fn a_reader_keeps_its_snapshot_while_a_table_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.sqlite");
    let ctx = new_session(&SessionOptions::default()).unwrap();
    attach(&ctx, &path, "out", AttachOptions::default()).unwrap();
    collect(&ctx, "CREATE TABLE out.t AS SELECT * FROM (VALUES (1), (2)) AS v(x)").await;

    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let before: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    collect(
        &ctx,
        "CREATE OR REPLACE TABLE out.t AS SELECT value AS x FROM generate_series(1, 1000)",
    )
    .await;
    let during: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    reader.execute_batch("COMMIT").unwrap();
    let after: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!((before, during, after), (2, 2, 1000));
}

#[tokio::test]
async fn filters_run_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = new_session(&SessionOptions::default()).unwrap();
    attach(&ctx, &dir.path().join("f.sqlite"), "out", AttachOptions::default()).unwrap();
    collect(&ctx, "CREATE TABLE out.t AS SELECT value AS id, value % 7 AS bucket, 'x' || value AS label FROM generate_series(1, 100)").await;
    let plan = collect(&ctx, "EXPLAIN SELECT label FROM out.t WHERE bucket = 3 AND id < 50").await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(
        !plan.contains("FilterExec"),
        "the filter was not pushed into SQLite:\n{plan}"
    );
    assert_eq!(count(&ctx, "out.t WHERE bucket = 3 AND id < 50").await, 7);
    // A filter SQLite would evaluate differently stays in DataFusion, and is still right.
    assert_eq!(count(&ctx, "out.t WHERE label LIKE 'X1%'").await, 0);
    assert_eq!(count(&ctx, "out.t WHERE upper(label) LIKE 'X1%'").await, 12);
}

#[tokio::test]
async fn dataframe_write_table_appends() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = new_session(&SessionOptions::default()).unwrap();
    attach(&ctx, &dir.path().join("api.sqlite"), "out", AttachOptions::default()).unwrap();
    collect(&ctx, "CREATE TABLE out.t (id BIGINT PRIMARY KEY, name VARCHAR)").await;
    let df = ctx
        .sql("SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)")
        .await
        .unwrap();
    df.write_table("out.t", DataFrameWriteOptions::new()).await.unwrap();
    assert_eq!(count(&ctx, "out.t").await, 2);
}

#[tokio::test]
async fn tables_written_by_other_tools_read_with_their_declared_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, title VARCHAR(40), price DOUBLE, thumb BLOB, created DATETIME);
         INSERT INTO items VALUES (1, 'Lamp', 12.5, x'0102', '2024-05-01 10:00:00'), (2, 'Desk', 80, NULL, NULL);",
    )
    .unwrap();
    drop(conn);
    let ctx = new_session(&SessionOptions::default()).unwrap();
    attach(&ctx, &path, "shop", AttachOptions::default()).unwrap();
    let batches = collect(
        &ctx,
        "SELECT arrow_typeof(id), arrow_typeof(title), arrow_typeof(price), arrow_typeof(thumb), arrow_typeof(created) FROM shop.items LIMIT 1",
    )
    .await;
    let types = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        types.contains("| Int64 ")
            && types.contains("| Utf8 ")
            && types.contains("| Float64 ")
            && types.contains("| Binary "),
        "{types}"
    );
    let batches = collect(&ctx, "SELECT sum(price) FROM shop.items").await;
    assert_eq!(
        batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
            .value(0),
        92.5
    );
}

#[test]
fn a_read_only_file_is_refused_for_writing_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&path, permissions).unwrap();

    let refused = recfusion(&["-c", &format!("ATTACH '{}' AS ro", path.display())]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("the file is read-only"),
        "{}",
        text(&refused.stderr)
    );
    let read = recfusion(&[
        "-q",
        "--format",
        "csv",
        "-c",
        &format!("ATTACH '{}' AS ro (READ_ONLY)", path.display()),
        "-c",
        "SELECT x FROM ro.t",
    ]);
    assert_eq!(text(&read.stdout), "x\n1\n", "{}", text(&read.stderr));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn shell_lists_the_tables_of_an_attached_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shell.sqlite");
    let attach = format!("{}=out", path.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["--attach", &attach])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{RECS};\n\\d out.\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("| recs ") && stdout.contains("| recfusion_tables "),
        "{stdout}"
    );
}
