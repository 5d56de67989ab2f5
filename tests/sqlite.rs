//! SQLite files as other programs see them: the `sqlite3` shell and Python read what recfusion
//! wrote with native types and float32 vector BLOBs; a killed or interrupted writer leaves the
//! previous table; a locked file fails clearly after a bounded wait; readers keep their
//! snapshot while a table is replaced; tables written by other tools read with their types.
//! Encrypted files (SQLCipher, attached with KEY_ENV) open with their key in Python's
//! `sqlcipher3` and in nothing without it; a wrong key is a clear error that changes nothing;
//! a killed or interrupted writer leaves an encrypted file's previous table too.

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

/// The environment variable the encrypted files' key is in, and the key.
const KEY_VARIABLE: &str = "RECFUSION_TEST_KEY";
const KEY: &str = "a key for the tests, 0123456789";

/// Runs recfusion with `key` in [`KEY_VARIABLE`] (or without the variable).
fn recfusion_with_key(key: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recfusion"));
    command.args(args).env_remove(KEY_VARIABLE);
    if let Some(key) = key {
        command.env(KEY_VARIABLE, key);
    }
    command.output().expect("run recfusion")
}

/// `ATTACH` of `path` as `out`, encrypted with the key in [`KEY_VARIABLE`].
fn attach_encrypted(path: &Path) -> String {
    format!("ATTACH '{}' AS out (KEY_ENV '{KEY_VARIABLE}');", path.display())
}

/// A Python that has `sqlcipher3`: `RECFUSION_PEER_PYTHON`, else `python3`. `None` (with a
/// message) when there is none, unless `RECFUSION_REQUIRE_PEERS` is set, as CI sets it.
fn sqlcipher3_python() -> Option<String> {
    let python = std::env::var("RECFUSION_PEER_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let found = Command::new(&python)
        .args(["-c", "import sqlcipher3"])
        .output()
        .is_ok_and(|o| o.status.success());
    match (found, std::env::var_os("RECFUSION_REQUIRE_PEERS").is_some()) {
        (true, _) => Some(python),
        (false, true) => panic!("RECFUSION_REQUIRE_PEERS is set but {python} cannot import sqlcipher3"),
        (false, false) => {
            eprintln!("skipped: {python} has no sqlcipher3 (pip install sqlcipher3, or set RECFUSION_PEER_PYTHON)");
            None
        }
    }
}

fn open_counted(conn: &rusqlite::Connection, table: &str) -> i64 {
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// The rows of `table` in an encrypted file, read with the key.
fn encrypted_count(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "key", KEY).unwrap();
    open_counted(&conn, table)
}

fn sqlite_count(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    open_counted(&conn, table)
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
/// writing, with `signal`; the previous three rows must survive. `encrypted` attaches the file
/// with a key.
fn interrupt_large_write(signal: &str, encrypted: bool) -> (Output, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.sqlite");
    // A plain file is attached with --attach, as before; an encrypted one by a leading ATTACH.
    let (attach_flag, attach_statement) = match encrypted {
        true => (Vec::new(), attach_encrypted(&path)),
        false => (
            vec!["--attach".to_string(), format!("{}=out", path.display())],
            String::new(),
        ),
    };
    let run = |sql: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_recfusion"));
        command
            .env(KEY_VARIABLE, KEY)
            .arg("-q")
            .args(&attach_flag)
            .arg("-c")
            .arg(format!("{attach_statement} {sql}"));
        command
    };
    let setup = run("CREATE TABLE out.t AS SELECT * FROM (VALUES (1), (2), (3)) AS v(x)")
        .output()
        .unwrap();
    assert!(setup.status.success(), "{}", text(&setup.stderr));

    let child = run("CREATE OR REPLACE TABLE out.t AS SELECT value AS x FROM generate_series(1, 500000000)")
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
    let rows = match encrypted {
        true => encrypted_count(&path, "t"),
        false => sqlite_count(&path, "t"),
    };
    (output, rows)
}

#[test]
fn killed_process_leaves_the_previous_table() {
    for encrypted in [false, true] {
        let (output, rows) = interrupt_large_write("-KILL", encrypted);
        assert!(!output.status.success());
        assert_eq!(rows, 3, "encrypted: {encrypted}");
    }
}

#[test]
fn ctrl_c_cancels_the_write_and_leaves_the_previous_table() {
    for encrypted in [false, true] {
        let (output, rows) = interrupt_large_write("-INT", encrypted);
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output.stderr).contains("cancelled"), "{}", text(&output.stderr));
        assert_eq!(rows, 3, "encrypted: {encrypted}");
    }
}

#[test]
fn an_encrypted_file_opens_with_its_key_in_sqlcipher3_and_in_nothing_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.sqlite");
    let output = recfusion_with_key(Some(KEY), &["-q", "-c", &format!("{} {RECS}", attach_encrypted(&path))]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // Nothing of the contents is in the file as written.
    let bytes = std::fs::read(&path).unwrap();
    for plain in [
        &b"SQLite format 3"[..],
        b"CREATE TABLE",
        b"recfusion_tables",
        b"embedding",
    ] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain),
            "{} in the file",
            text(plain)
        );
    }
    // SQLite without the key cannot read it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let error = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0));
    assert!(error.is_err(), "read without the key: {error:?}");
    if tool_available("sqlite3") {
        let plain = Command::new("sqlite3")
            .arg(&path)
            .arg("SELECT count(*) FROM recs")
            .output()
            .unwrap();
        assert!(!plain.status.success());
        assert!(
            text(&plain.stderr).contains("not a database"),
            "{}",
            text(&plain.stderr)
        );
    }
    // recfusion reads it back with the key.
    let read = recfusion_with_key(
        Some(KEY),
        &[
            "-q",
            "--format",
            "csv",
            "-c",
            &format!("{} SELECT user_id, score, fresh FROM out.recs", attach_encrypted(&path)),
        ],
    );
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert!(text(&read.stdout).contains("1,0.9,true"), "{}", text(&read.stdout));
    // A real peer, SQLCipher 4 in Python, reads the same rows with the same key.
    if let Some(python) = sqlcipher3_python() {
        let script = "import sqlcipher3, struct, sys\n\
            con = sqlcipher3.connect(sys.argv[1])\n\
            con.execute('PRAGMA key = ' + chr(39) + sys.argv[2] + chr(39))\n\
            user, score, fresh, blob = con.execute('SELECT user_id, score, fresh, embedding FROM recs').fetchone()\n\
            print(user, score, fresh, struct.unpack('<%df' % (len(blob) // 4), blob))\n\
            print(con.execute(\"SELECT operation, rows_written FROM recfusion_tables WHERE table_name = 'recs'\").fetchone())\n\
            print(con.execute('PRAGMA cipher_version').fetchone()[0].split('.')[0])\n\
            import sqlite3\n\
            try:\n    sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM sqlite_master').fetchone()\n\
            except sqlite3.DatabaseError as e:\n    print('plain sqlite3:', e)";
        let output = Command::new(python)
            .args(["-c", script])
            .arg(&path)
            .arg(KEY)
            .output()
            .unwrap();
        assert_eq!(
            text(&output.stdout),
            "1 0.9 1 (0.5, -1.25, 2.0)\n('create', 1)\n4\nplain sqlite3: file is not a database\n",
            "{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn a_wrong_or_missing_key_is_a_clear_error_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.sqlite");
    let attach = attach_encrypted(&path);
    let output = recfusion_with_key(Some(KEY), &["-q", "-c", &format!("{attach} {RECS}")]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let before = std::fs::read(&path).unwrap();
    let replace = format!("{attach} CREATE OR REPLACE TABLE out.recs AS SELECT 2 AS user_id");

    let wrong = recfusion_with_key(Some("not the key at all"), &["-q", "-c", &replace]);
    assert!(!wrong.status.success());
    let message = text(&wrong.stderr);
    assert!(
        message.contains("the key from KEY_ENV 'RECFUSION_TEST_KEY' does not open")
            && message.contains(&path.display().to_string()),
        "{message}"
    );
    assert!(
        !message.contains("not the key at all") && !message.contains(KEY),
        "{message}"
    );

    let unset = recfusion_with_key(None, &["-q", "-c", &replace]);
    assert!(
        text(&unset.stderr).contains("the environment variable RECFUSION_TEST_KEY is not set"),
        "{}",
        text(&unset.stderr)
    );

    let plain = format!("ATTACH '{}' AS out", path.display());
    let without = recfusion_with_key(Some(KEY), &["-q", "-c", &plain]);
    assert!(
        text(&without.stderr).contains("attach it with its key: (KEY_ENV"),
        "{}",
        text(&without.stderr)
    );

    let literal = recfusion_with_key(None, &["-q", "-c", &format!("{plain} (KEY 'hunter2hunter2')")]);
    let message = text(&literal.stderr);
    assert!(
        message.contains("a key is never written in SQL") && !message.contains("hunter2"),
        "{message}"
    );

    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(encrypted_count(&path, "recs"), 1);

    // With the right key, neither a plan nor a listing shows it.
    let explained = recfusion_with_key(
        Some(KEY),
        &[
            "-q",
            "-c",
            &format!("{attach} EXPLAIN SELECT * FROM out.recs WHERE user_id = 1; SHOW TABLES"),
        ],
    );
    assert!(explained.status.success(), "{}", text(&explained.stderr));
    let shown = text(&explained.stdout);
    assert!(shown.contains("recs") && !shown.contains(KEY), "{shown}");
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
