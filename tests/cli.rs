//! Runs the real `recfusion` binary: -c/-f in order, formats, --define, exit codes with
//! line numbers, --continue-on-error, and the shell driven through stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/tiny_bert.rs"]
mod tiny_bert;

fn recfusion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(args)
        .output()
        .expect("run recfusion")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn commands_and_files_run_in_command_line_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(&script, "SELECT 'file' AS step;").unwrap();
    let output = recfusion(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT 'first' AS step",
        "-f",
        script.to_str().unwrap(),
        "-c",
        "SELECT 'last' AS step",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "step\nfirst\nstep\nfile\nstep\nlast\n");
}

#[test]
fn formats() {
    let sql = "SELECT 1 AS id, 'a' AS name, vector([1, 2]) AS v";
    let csv = recfusion(&["-q", "--format", "csv", "-c", sql]);
    assert_eq!(stdout(&csv), "id,name,v\n1,a,\"[1.0, 2.0]\"\n");
    let tsv = recfusion(&["-q", "--format", "tsv", "-c", sql]);
    assert_eq!(stdout(&tsv), "id\tname\tv\n1\ta\t[1.0, 2.0]\n");
    let json = recfusion(&["-q", "--format", "json", "-c", sql]);
    assert_eq!(stdout(&json), "[{\"id\":1,\"name\":\"a\",\"v\":[1.0,2.0]}]\n");
    let empty = recfusion(&["-q", "--format", "json", "-c", "SELECT 1 AS x WHERE false"]);
    assert_eq!(stdout(&empty), "[]\n");
    let ndjson = recfusion(&[
        "-q",
        "--format",
        "nd-json",
        "-c",
        "SELECT * FROM (VALUES (1), (2)) t(x)",
    ]);
    assert_eq!(stdout(&ndjson), "{\"x\":1}\n{\"x\":2}\n");
    let table = recfusion(&["-c", "SELECT 42 AS answer"]);
    assert!(
        stdout(&table).contains("| answer |") && stdout(&table).contains("| 42     |"),
        "{}",
        stdout(&table)
    );
    assert!(stderr(&table).contains("1 row(s) fetched."), "{}", stderr(&table));
}

#[test]
fn defines_are_substituted_and_undefined_names_fail() {
    let ok = recfusion(&[
        "-q",
        "--format",
        "csv",
        "--define",
        "day=2026-01-31",
        "-c",
        "SELECT '${day}' AS day",
    ]);
    assert_eq!(stdout(&ok), "day\n2026-01-31\n");
    let missing = recfusion(&["-q", "-c", "SELECT '${day}'"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("undefined variable ${day}"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn first_failing_statement_stops_the_batch_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nightly.sql");
    std::fs::write(
        &script,
        "SELECT 1 AS a;\n\n-- broken:\nSELECT array_inner_product([1, 2], [1]);\nSELECT 'not reached' AS b;\n",
    )
    .unwrap();
    let output = recfusion(&["-q", "--format", "csv", "-f", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "a\n1\n");
    let error = stderr(&output);
    assert!(error.contains("nightly.sql line 4"), "{error}");
    assert!(
        error.contains("array_inner_product: vectors have different dimensions: 2 and 1"),
        "{error}"
    );

    let output = recfusion(&[
        "-q",
        "--format",
        "csv",
        "--continue-on-error",
        "-f",
        script.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "a\n1\nb\nnot reached\n");
}

#[test]
fn missing_file_and_missing_table_are_clear_errors() {
    let output = recfusion(&["-f", "/no/such/script.sql"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot read /no/such/script.sql"),
        "{}",
        stderr(&output)
    );
    let output = recfusion(&["-c", "SELECT * FROM '/no/such/events.parquet'"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/no/such/events.parquet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn scripts_that_include_each_other_are_refused_naming_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.sql");
    let b = dir.path().join("b.sql");
    std::fs::write(&a, format!("SELECT 'in a' AS step;\n\\i {}\n", b.display())).unwrap();
    std::fs::write(&b, format!("SELECT 'in b' AS step;\n\\i {}\n", a.display())).unwrap();
    let output = recfusion(&["-q", "--format", "csv", "-f", a.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "step\nin a\nstep\nin b\n");
    let error = stderr(&output);
    assert!(error.contains("the script would include itself"), "{error}");
    assert!(error.contains("a.sql -> ") && error.contains("b.sql -> "), "{error}");
    let itself = dir.path().join("self.sql");
    std::fs::write(&itself, "\\i self.sql\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "-f", "self.sql"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("self.sql line 1: \\i self.sql: the script would include itself"),
        "{}",
        stderr(&output)
    );
}

/// A table over a file that was deleted after the table was made is an error naming the file
/// when a table function reads it, not an empty input that trains or scores nothing.
#[test]
fn a_table_whose_file_was_deleted_is_an_error_not_an_empty_input() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.csv");
    std::fs::write(&events, "user_id,item_id\n1,10\n1,11\n2,10\n2,11\n3,11\n").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let ctx = recfusion::new_session(&recfusion::SessionOptions::default()).unwrap();
        let create = format!(
            "CREATE EXTERNAL TABLE events STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            events.display()
        );
        recfusion::execute_sql(&ctx, &create)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let knn = "SELECT * FROM item_knn('events', 2)";
        let rows: usize = recfusion::execute_sql(&ctx, knn)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert!(rows > 0);
        std::fs::remove_file(&events).unwrap();
        let error = match recfusion::execute_sql(&ctx, knn).await {
            Ok(frame) => frame.collect().await.map(|_| ()).unwrap_err(),
            Err(error) => error,
        }
        .to_string();
        assert!(
            error.contains("item_knn: the interactions table 'events' reads '")
                && error.contains("events.csv', which does not exist"),
            "{error}"
        );
    });
}

/// A FIFO (or device) as a table would block the query until someone writes to it, where
/// Ctrl-C cannot reach; it is refused at once, whichever way SQL names it.
#[test]
fn a_fifo_is_refused_as_a_table_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("events.csv");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("skipped: mkfifo is not available");
        return;
    }
    let path = fifo.display();
    for sql in [
        format!("SELECT * FROM '{path}'"),
        format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{path}'"),
        format!("SELECT * FROM read_csv('{path}')"),
    ] {
        let started = Instant::now();
        let output = recfusion(&["-q", "-c", &sql]);
        assert_eq!(output.status.code(), Some(1), "{sql}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{sql} took {:?}",
            started.elapsed()
        );
        assert!(
            stderr(&output).contains("is not a regular file"),
            "{sql}: {}",
            stderr(&output)
        );
    }
}

/// A CSV of 50,000 columns (6 MB) is read in short batches: DataFusion's reader sized each
/// batch's buffers by 8,192 rows × 50,000 columns, and the count below peaked at 19 GB.
#[test]
fn a_very_wide_csv_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.csv");
    let columns = 50_000;
    let mut text: String = (0..columns).map(|c| format!("c{c}")).collect::<Vec<_>>().join(",");
    for row in 0..20 {
        text.push('\n');
        text.push_str(
            &(0..columns)
                .map(|c| (row + c).to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    text.push('\n');
    std::fs::write(&wide, text).unwrap();
    let sql = format!("SELECT count(*) AS n, sum(c49999) AS last FROM '{}'", wide.display());
    let timed = Path::new("/usr/bin/time").exists();
    let mut command = if timed {
        let mut command = Command::new("/usr/bin/time");
        command.args(["-f", "peak_rss_kb=%M", env!("CARGO_BIN_EXE_recfusion")]);
        command
    } else {
        Command::new(env!("CARGO_BIN_EXE_recfusion"))
    };
    let output = command
        .args(["-q", "-m", "2G", "--format", "csv", "-c", &sql])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!("n,last\n20,{}\n", (0..20).map(|row| row + 49_999).sum::<i64>())
    );
    if let Some(kb) = stderr(&output).lines().find_map(|l| l.strip_prefix("peak_rss_kb=")) {
        let mb = kb.trim().parse::<u64>().unwrap() / 1024;
        assert!(mb < 1500, "reading a 6 MB CSV of 50,000 columns peaked at {mb} MB");
    }
}

/// A file beside the session names a table function's input as it names a table in FROM:
/// 'events.csv' is the file, not table 'csv' of a schema 'events' that does not exist.
#[test]
fn a_file_name_with_a_dot_is_a_table_function_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.csv"),
        "user_id,item_id\n1,10\n1,11\n2,10\n2,12\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args([
            "-q",
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS n FROM item_knn('events.csv', 2)",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "n\n2\n");
}

/// A bad flag value is an error that names the flag, in a sentence of its own (no "Error
/// during planning:" from inside).
#[test]
fn bad_flag_values_name_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["-m", "lots"],
            "Error: -m/--memory-limit: unknown unit 'lots' in 'lots' (use K, M, G or T)",
        ),
        (&["-D", "day"], "Error: --define expects NAME=VALUE, got 'day'"),
        (
            &["--attach", "/no/such/dir/out.sqlite"],
            "Error: --attach /no/such/dir/out.sqlite: ATTACH '/no/such/dir/out.sqlite': directory '/no/such/dir' does not exist",
        ),
        (
            &["--models", "/dev/null", "-c", "SELECT * FROM models()"],
            "Error: --command #1 line 1: Error during planning: models: cannot list the models in '/dev/null': Not a directory (os error 20)",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["-q"];
        all.extend_from_slice(args);
        if !all.contains(&"-c") {
            all.extend(["-c", "SELECT 1"]);
        }
        let output = recfusion(&all);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output).trim(), expected, "{args:?}");
    }
}

#[test]
fn help_shows_examples() {
    let output = recfusion(&["--help"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("recfusion -f examples/quickstart.sql"));
}

/// Runs recfusion with `input` piped on stdin.
fn piped(args: &[&str], input: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(args)
        .env("RECFUSION_HISTORY", dir.path().join("history"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn statements_piped_on_stdin_run_as_a_batch() {
    // Meta commands work between statements, and a last statement without `;` runs.
    let input = "CREATE TABLE t AS\n  SELECT 1 AS x;\n\\d t\n\\df cosine\nSELECT x + 1 AS y FROM t";
    let output = piped(&["--format", "csv"], input);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("column_name,data_type,is_nullable\nx,Int64"), "{out}");
    assert!(out.contains("array_cosine_similarity(a, b)"), "{out}");
    assert!(out.ends_with("y\n2\n"), "{out}");

    // The first failing statement stops the batch with exit code 1 and names its line.
    let input = "SELECT 1 AS a;\nSELECT no_such_column;\nSELECT 3 AS c;\n";
    let output = piped(&["-q", "--format", "csv"], input);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("<stdin> line 2:"), "{}", stderr(&output));
    assert!(stderr(&output).contains("no_such_column"), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a\n1\n");

    // --continue-on-error runs the rest; the exit code still reports the failure.
    let output = piped(&["-q", "--format", "csv", "--continue-on-error"], input);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "a\n1\nc\n3\n");
}

#[test]
fn an_unclosed_comment_is_an_error_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(
        &script,
        "SELECT 1 AS a;\n\n/* the rest is commented out by mistake\nSELECT 2 AS b;\n",
    )
    .unwrap();
    let output = recfusion(&["-q", "--format", "csv", "-f", script.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(error.contains("job.sql line 3:"), "{error}");
    assert!(error.contains("never closed"), "{error}");
    assert_eq!(stdout(&output), "a\n1\n");
}

#[test]
fn sql_and_numbers_that_start_with_a_dash_are_values() {
    let output = recfusion(&["-q", "--format", "csv", "-c", "-- a comment first\nSELECT 1 AS one"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "one\n1\n");
    let output = recfusion(&["--maxrows", "-1", "-c", "SELECT 1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("invalid value '-1' for '--maxrows <N>'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn quickstart_runs_end_to_end_and_writes_sqlite() {
    let models = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "--format", "csv", "-f", "examples/quickstart.sql"])
        .env("RECFUSION_MODELS", models.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("raw_events,clean_events,users,items\n12013,12000,300,120\n"),
        "{out}"
    );
    assert!(
        out.contains("users,items,factors,iterations,loss\n300,120,16,15,"),
        "{out}"
    );
    assert!(out.contains("recommendations,create or replace,3000\n"), "{out}");
    assert!(models.path().join("quickstart_als.safetensors").is_file());
    // Writes report on stderr, so stdout holds only query results.
    assert!(!out.contains("count"), "{out}");
}

#[test]
fn update_profiles_re_encodes_only_changed_users() {
    let first = recfusion(&[
        "-q",
        "--format",
        "csv",
        "-f",
        "examples/update_profiles.sql",
        "-D",
        "since=0",
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).ends_with("300,300\n"), "{}", stdout(&first));
    let later = recfusion(&[
        "-q",
        "--format",
        "csv",
        "-f",
        "examples/update_profiles.sql",
        "-D",
        "since=1770821979",
    ]);
    assert!(later.status.success(), "{}", stderr(&later));
    assert!(stdout(&later).ends_with("45,300\n"), "{}", stdout(&later));
}

#[test]
fn training_reports_one_line_and_ctrl_c_leaves_no_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = "CREATE TABLE t AS SELECT value % 500 AS user_id, value % 97 AS item_id FROM generate_series(1, 20000) AS s(value)";
    let model = dir.path().join("m.safetensors");
    let train = format!("SELECT users FROM train_als('t', '{}', 8, 3)", model.display());
    let output = recfusion(&["--format", "csv", "-c", data, "-c", &train]);
    assert!(output.status.success(), "{}", stderr(&output));
    // stderr is not a terminal here: one summary line, no bar.
    let summary = stderr(&output);
    assert!(
        summary.contains("train_als: 500 users × 97 items, 8 factors, 3 iterations, loss "),
        "{summary}"
    );
    assert!(!summary.contains("epoch"), "{summary}");
    let quiet = recfusion(&["-q", "--format", "csv", "-c", data, "-c", &train]);
    assert!(!stderr(&quiet).contains("train_als"), "{}", stderr(&quiet));

    std::fs::remove_file(&model).unwrap();
    let long = format!("SELECT users FROM train_als('t', '{}', 64, 100000)", model.display());
    let child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-c", data, "-c", &long])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cancelled"), "{}", stderr(&output));
    assert!(!model.exists(), "a cancelled training wrote a model");
}

/// The table functions that read a model file while planning show their call in EXPLAIN like
/// every other table function: the function, its inputs by role, its options.
#[test]
fn explain_shows_model_reading_table_functions() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (als, sasrec, tower) = (
        path("als.safetensors"),
        path("sasrec.safetensors"),
        path("tower.safetensors"),
    );
    let statements = [
        "CREATE TABLE events AS SELECT value % 40 AS user_id, value % 13 AS item_id, value AS ts FROM generate_series(1, 400) AS s(value)".to_string(),
        "CREATE TABLE people AS SELECT DISTINCT user_id, user_id % 3 AS age FROM events".to_string(),
        "CREATE VIEW pairs AS SELECT user_id, item_id FROM events".to_string(),
        format!("SELECT users FROM train_als('pairs', '{als}', 4, 2)"),
        format!("SELECT users FROM train_sasrec('events', '{sasrec}', 8, 1, 10, 1)"),
        format!("SELECT users FROM train_two_tower('pairs', '{tower}', 'people', 4, 1)"),
        format!("EXPLAIN SELECT * FROM model_vectors('{als}', 'items')"),
        format!("EXPLAIN SELECT * FROM sasrec_profiles('{sasrec}', 'events')"),
        format!("EXPLAIN SELECT * FROM two_tower_profiles('{tower}', 'people')"),
    ];
    let mut args = vec!["-q", "--format", "csv"];
    for statement in &statements {
        args.extend(["-c", statement.as_str()]);
    }
    let output = recfusion(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    // The weights and their description are written with the same mode.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &str| std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode(&als), mode(&format!("{als}.json")));
    let out = stdout(&output);
    for expected in [
        format!("model_vectors: path={als}, side=items"),
        format!("ComputeExec: model_vectors: path={als}, side=items"),
        format!("sasrec_profiles: interactions=events, path={sasrec}"),
        format!("ComputeExec: sasrec_profiles: interactions=events, path={sasrec}"),
        format!("two_tower_profiles: user_features=people, path={tower}"),
        format!("ComputeExec: two_tower_profiles: user_features=people, path={tower}"),
    ] {
        assert!(out.contains(&expected), "no `{expected}` in:\n{out}");
    }
}

#[test]
fn statements_nested_too_deep_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, sql: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, sql).unwrap();
        recfusion(&["-f", path.to_str().unwrap()])
    };
    let sum = |terms: usize| format!("SELECT {};", vec!["1"; terms].join("+"));
    let output = run("sum.sql", sum(1000));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("1000"), "{}", stdout(&output));
    for (name, sql) in [
        ("long.sql", sum(100_000)),
        (
            "union.sql",
            format!("{};", vec!["SELECT 1"; 20_000].join(" UNION ALL ")),
        ),
    ] {
        let output = run(name, sql);
        assert_eq!(output.status.code(), Some(1), "{name}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("the limit is 1000"),
            "{name}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_damaged_parquet_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    std::fs::create_dir(&table).unwrap();
    let good = table.join("a.parquet");
    let copy = format!("COPY (SELECT 1 AS id) TO '{}'", good.display());
    assert!(recfusion(&["-c", &copy]).status.success());
    let written = std::fs::read(&good).unwrap();
    let truncated = table.join("b.parquet");
    std::fs::write(&truncated, &written[..written.len() / 2]).unwrap();
    let foreign = dir.path().join("notes.parquet");
    std::fs::write(&foreign, "user_id,item_id\n1,2\n").unwrap();

    for (sql, damaged) in [
        (format!("SELECT * FROM '{}'", foreign.display()), &foreign),
        (format!("SELECT count(*) FROM '{}/'", table.display()), &truncated),
        (
            format!(
                "CREATE EXTERNAL TABLE e STORED AS PARQUET LOCATION '{}/'",
                table.display()
            ),
            &truncated,
        ),
    ] {
        let output = recfusion(&["-c", &sql]);
        assert_eq!(output.status.code(), Some(1), "{sql}");
        let expected = format!("cannot read Parquet file '{}'", damaged.display());
        assert!(stderr(&output).contains(&expected), "{sql}: {}", stderr(&output));
    }
}

#[test]
fn a_sort_larger_than_the_memory_limit_spills_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sorted.parquet");
    // About 64 MB of rows to sort under a 50 MB limit: each core's sort spills, keeping 10 MB
    // to merge its spill files (DataFusion's sort_spill_reservation_bytes).
    let sql = format!(
        "COPY (SELECT value, value * 7919 % 1000003 AS shuffled FROM generate_series(1, 4000000) \
         ORDER BY shuffled, value) TO '{}'",
        target.display()
    );
    let output = recfusion(&["-m", "50M", "-c", &sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    let check = format!(
        "SELECT count(*), min(shuffled), max(shuffled) FROM '{}'",
        target.display()
    );
    let output = recfusion(&["--format", "csv", "-c", &check]);
    assert_eq!(
        stdout(&output).lines().nth(1),
        Some("4000000,0,1000002"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn pooling_a_long_history_builds_its_joins_on_the_small_tables() {
    // 400,000 history rows joined to 64-dimensional item vectors (about 100 MB), then to one
    // profile per user. The second join must build its hash table on the 1,000 profiles, not
    // on the joined history, to fit in 48 MB.
    let sql = "CREATE TABLE history AS SELECT value % 1000 AS user_id, value % 500 AS item_id, value % 7 AS age \
               FROM generate_series(1, 400000); \
               CREATE TABLE items AS SELECT value AS item_id, vector(array_repeat(value * 0.001, 64), 64) AS vector \
               FROM generate_series(0, 499); \
               CREATE TABLE profiles AS SELECT value AS user_id, vector(array_repeat(1.0, 64), 64) AS profile \
               FROM generate_series(0, 999); \
               CREATE TABLE pooled AS SELECT h.user_id, attention_pool(i.vector, p.profile, -0.1 * h.age) AS profile \
               FROM history h JOIN items i USING (item_id) JOIN profiles p USING (user_id) GROUP BY h.user_id; \
               SELECT count(*) FROM pooled";
    let output = recfusion(&["-q", "-m", "48M", "--format", "csv", "-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().nth(1), Some("1000"), "{}", stdout(&output));
}

#[test]
fn vectors_write_to_csv_as_text_even_with_no_rows() {
    let empty = "SELECT vector([1, 2], 2) AS v, 1 AS n WHERE false";
    for format in ["csv", "tsv"] {
        let output = recfusion(&["--format", format, "-c", empty]);
        assert!(output.status.success(), "{format}: {}", stderr(&output));
        assert_eq!(stdout(&output).trim(), if format == "csv" { "v,n" } else { "v\tn" });
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let copy = format!(
        "COPY (SELECT 1 AS id, vector('[0.5, 2]', 2) AS v, named_struct('k', 1) AS s UNION ALL SELECT 2, NULL, NULL ORDER BY id) TO '{}'",
        file.display()
    );
    let output = recfusion(&["-q", "-c", &copy]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "id,v,s\n1,\"[0.5, 2.0]\",{k: 1}\n2,,\n"
    );
}

#[test]
fn markdown_tables_for_documents() {
    let sql = "SELECT 1 AS id, 'a|b' AS name, vector('[1, 2]', 2) AS v, NULL AS missing";
    let output = recfusion(&["-q", "--format", "markdown", "-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "| id | name | v | missing |\n|---:|---|---|---|\n| 1 | a\\|b | [1.0, 2.0] | NULL |\n"
    );
    // A carriage return would end the row; a backslash before a pipe in the data stays a
    // backslash when rendered (GitHub's renderer shows the cell below as `C:\|x`).
    let sql = "SELECT 'one' || chr(13) || 'two' || chr(10) || 'three' AS lines, 'C:\\|x' AS path";
    let output = recfusion(&["-q", "--format", "markdown", "-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "| lines | path |\n|---|---|\n| one two three | C:\\\\\\|x |\n"
    );
}

#[test]
fn meta_commands_set_rows_and_document_functions() {
    let script = "\\maxrows 2\nSELECT value FROM generate_series(1, 5);\n\\maxrows\n\\df similar_items\n\\format markdown\n\\df\n";
    let output = piped(&["-q"], script);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("Tables show at most 2 rows."), "{out}");
    assert_eq!(
        out.matches("| 1     |").count() + out.matches("| 2     |").count(),
        2,
        "{out}"
    );
    assert!(!out.contains("| 3     |"), "{out}");
    assert!(
        out.contains(
            "similar_items(items, k [, metric => 'cosine'] [, item => 'column', vector => 'column'])  (table function)"
        ),
        "{out}"
    );
    assert!(out.contains("Arguments:\n  items "), "{out}");
    assert!(out.contains("Example:\n> SELECT * FROM similar_items("), "{out}");
    assert!(out.contains("Output format: markdown."), "{out}");
    // The listing cuts at the end of the first sentence, not inside "(e.g. …)".
    assert!(!out.lines().any(|line| line.trim_end().ends_with("(e.g.")), "{out}");
}

#[test]
fn ctrl_c_stops_a_running_join() {
    let sql = "SELECT count(*) FROM generate_series(1, 100000000) a, generate_series(1, 100) b";
    let mut child = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-c", sql])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("still running 10 s after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("query cancelled (Ctrl-C)"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn meta_command_errors_read_as_sentences() {
    let output = piped(&["-q"], "SELECT 1;\n\\nope\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output).trim(),
        "Error: <stdin> line 2: unknown command \\nope; \\? lists the commands"
    );
}

#[test]
fn the_movielens_benchmark_runs_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let generated = recfusion(&[
        "-q",
        "--format",
        "csv",
        "-f",
        "examples/movielens/synthetic.sql",
        "--define",
        &format!("out={data}"),
        "--define",
        "users=40",
        "--define",
        "items=60",
        "--define",
        "mean_history=25",
    ]);
    assert!(generated.status.success(), "{}", stderr(&generated));
    let summary = stdout(&generated);
    let counts: Vec<&str> = summary.lines().last().unwrap().split(',').collect();
    let lines = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap().lines().count();
    assert_eq!(counts[..2], ["40", "60"], "{summary}");
    assert_eq!(counts[2], lines("u.data").to_string(), "every rating is written");
    assert_eq!((lines("u.item"), lines("u.user")), (60, 40));

    let models = dir.path().join("models").display().to_string();
    let text_model = dir.path().join("text_model");
    std::fs::create_dir(&text_model).unwrap();
    tiny_bert::write_tiny_bert(&text_model);
    let evaluated = recfusion(&[
        "-q",
        "--format",
        "csv",
        "--models",
        &models,
        "-f",
        "examples/movielens/evaluate.sql",
        "--define",
        &format!("data={data}"),
        "--define",
        &format!("text_model={}", text_model.display()),
    ]);
    assert!(evaluated.status.success(), "{}", stderr(&evaluated));
    let table = stdout(&evaluated);
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("method,chosen_setting,"))
        .skip(1)
        .take_while(|l| !l.starts_with("method,setting,"))
        .collect();
    let methods: Vec<&str> = rows
        .iter()
        .map(|row| match row.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap(),
            None => row.split(',').next().unwrap(),
        })
        .collect();
    assert_eq!(methods.first(), Some(&"popularity"), "{table}");
    assert_eq!(
        methods[16..],
        ["hybrid", "hybrid, MMR re-ranked", "hybrid, calibrated"],
        "{table}"
    );
    assert_eq!(methods.len(), 19, "one row per method: {table}");
    assert!(
        methods.contains(&"content-based (language model)") && methods.contains(&"SASRec + item text, last 200 items"),
        "{table}"
    );
    for row in &rows {
        // val_ndcg10, test_hr10, test_ndcg10, test_coverage, gini, arp, aplt, calibration_kl, seconds
        let mut figures: Vec<f64> = row.rsplitn(10, ',').take(9).map(|f| f.parse().unwrap()).collect();
        figures.reverse();
        let rates = [figures[0], figures[1], figures[2], figures[3], figures[4], figures[6]];
        assert!(rates.iter().all(|f| (0.0..=1.0).contains(f)), "rates in [0, 1]: {row}");
        assert!(
            figures[5] >= 0.0 && figures[7] >= 0.0,
            "ARP and calibration KL ≥ 0: {row}"
        );
    }
    // Before it, SASRec over the last 200 items with and without item text at each setting.
    let same_settings: Vec<(&str, &str)> = table
        .lines()
        .skip_while(|l| !l.starts_with("model,setting,val_ndcg10,test_hr10,test_ndcg10"))
        .skip(1)
        .take_while(|l| !l.starts_with("method,chosen_setting,"))
        .map(|row| row.trim_start_matches('"').split_once("\",").unwrap())
        .map(|(model, rest)| (model, rest.split(',').next().unwrap()))
        .collect();
    let (ids, text) = (
        "SASRec transformer, last 200 items",
        "SASRec + item text, last 200 items",
    );
    // Each dropout alone (seed 42) and as three seeds' models together.
    let setting = |dropout| format!("dim=64 blocks=2 max_len=200 dropout={dropout} lr=0.003 patience=10 refit");
    let (low, high) = (setting("0.2"), setting("0.5"));
    let (low_seeds, high_seeds) = (format!("{low} seeds=42+7+8"), format!("{high} seeds=42+7+8"));
    let (low, high, low_seeds, high_seeds) = (low.as_str(), high.as_str(), low_seeds.as_str(), high_seeds.as_str());
    assert_eq!(
        same_settings,
        [
            (ids, low),
            (text, low),
            (ids, low_seeds),
            (text, low_seeds),
            (ids, high),
            (text, high),
            (ids, high_seeds),
            (text, high_seeds)
        ],
        "{table}"
    );
    // The new-items protocol's table follows: (method, setting, new_items, users, cold_hr10,
    // cold_ndcg10, new_share), rates in [0, 1].
    let cold: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("method,setting,"))
        .skip(1)
        .collect();
    // Content rows are tuned over recency decays, and the new-items protocol keeps the chosen one.
    for method in ["content-based (genres)", "content-based (language model)"] {
        let setting = format!("{method},recency decay=");
        assert!(rows.iter().any(|row| row.starts_with(&setting)), "{table}");
        assert!(
            cold.iter()
                .filter(|row| row.starts_with(method))
                .all(|row| row.starts_with(&setting)),
            "{table}"
        );
    }
    for row in &cold {
        let figures: Vec<f64> = row.rsplitn(4, ',').take(3).map(|f| f.parse().unwrap()).collect();
        assert!(
            figures.iter().all(|f| (0.0..=1.0).contains(f)),
            "rates in [0, 1]: {row}"
        );
    }
}

/// A model trained by name in one process is listed and used by name in the next: `--models`
/// and `RECFUSION_MODELS` name the directory, `\models` and `models()` list it, `DROP MODEL`
/// removes one.
#[test]
fn models_are_kept_by_name_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let models_flag = models.display().to_string();
    let train = "SELECT model, users, items FROM train_als('examples/data/events.csv', model => 'als_v1', factors => 4, \
                 iterations => 2, user => 'user_id', item => 'item_id')";
    let output = recfusion(&["-q", "--format", "csv", "--models", &models_flag, "-c", train]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "model,users,items\nals_v1,300,120\n");
    assert!(models.join("als_v1.safetensors").is_file());

    // Another process, the directory from the environment.
    let listed = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .args(["-q", "--format", "csv", "-c"])
        .arg("SELECT name, kind, rows, dim, call LIKE 'train_als(''examples/data/events.csv'', model => ''als_v1'', factors => 4, iterations => 2, regularization => 0.01, alpha => 1, seed => 42, %' AS call_kept FROM models()")
        .args(["-c", "SELECT count(*) AS items FROM model_vectors('als_v1', 'items')"])
        .env("RECFUSION_MODELS", &models)
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        stdout(&listed),
        "name,kind,rows,dim,call_kept\nals_v1,als,12013,4,true\nitems\n120\n"
    );

    let shell = piped(
        &["-q", "--models", &models_flag],
        "\\models\nDROP MODEL als_v1;\n\\models\n",
    );
    assert!(shell.status.success(), "{}", stderr(&shell));
    let out = stdout(&shell);
    assert_eq!(out.matches("| als_v1 ").count(), 1, "{out}");
    assert!(!models.join("als_v1.safetensors").exists());
    assert!(!models.join("als_v1.safetensors.json").exists());
}

/// A directory named like a table function beside the session is not read as a table:
/// DataFusion looks every name in `FROM` up as a table, `models()` included, and a `models`
/// directory of files failed the query with a JSON error.
#[test]
fn a_directory_named_like_a_table_function_is_not_a_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models/x.safetensors.json"), "{").unwrap();
    std::fs::create_dir(dir.path().join("recommend")).unwrap();
    std::fs::write(dir.path().join("recommend/a.json"), "not json").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .current_dir(dir.path())
        .args(["-q", "--format", "csv", "--models", "models"])
        .args(["-c", "SELECT count(*) AS n FROM models()"])
        .args(["-c", "SELECT count(*) AS n FROM recommend('u', 'u', 1)"])
        .output()
        .unwrap();
    // recommend's own error, not the directory's: its argument names no table.
    let err = stderr(&output);
    assert!(err.contains("recommend: users table 'u' not found"), "{err}");
    assert_eq!(stdout(&output), "n\n0\n");
}

/// The example programs under `examples/` run as examples/README.md says: the demo data's
/// generator writes the committed CSVs byte for byte, make_parquet.sql writes Parquet copies
/// with every row, and the Rust example embeds a session. (quickstart.sql, update_profiles.sql
/// and the MovieLens scripts have tests of their own above.)
#[test]
fn the_examples_run() {
    let dir = tempfile::tempdir().unwrap();
    let examples = dir.path().join("examples");
    std::fs::create_dir_all(examples.join("data")).unwrap();
    std::fs::copy("examples/generate_demo_data.py", examples.join("generate_demo_data.py")).unwrap();
    let generated = Command::new("python3")
        .arg(examples.join("generate_demo_data.py"))
        .output()
        .expect("python3 runs the demo data's generator");
    assert!(generated.status.success(), "{}", stderr(&generated));
    for file in ["users.csv", "items.csv", "events.csv"] {
        let ours = std::fs::read(examples.join("data").join(file)).unwrap();
        let committed = std::fs::read(Path::new("examples/data").join(file)).unwrap();
        assert!(ours == committed, "{file} differs from the one the generator writes");
    }

    std::fs::copy("examples/make_parquet.sql", examples.join("make_parquet.sql")).unwrap();
    let written = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .current_dir(dir.path())
        .args(["-q", "-f", "examples/make_parquet.sql"])
        .output()
        .unwrap();
    assert!(written.status.success(), "{}", stderr(&written));
    let counted = Command::new(env!("CARGO_BIN_EXE_recfusion"))
        .current_dir(dir.path())
        .args(["-q", "--format", "csv", "-c"])
        .arg(
            "SELECT (SELECT count(*) FROM 'examples/data/events.parquet') AS events, \
             (SELECT count(*) FROM 'examples/data/items.parquet') AS items, \
             (SELECT count(*) FROM 'examples/data/users.parquet') AS users",
        )
        .output()
        .unwrap();
    assert_eq!(
        stdout(&counted),
        "events,items,users\n12013,120,300\n",
        "{}",
        stderr(&counted)
    );

    // cargo test builds the examples beside the test binaries.
    let test = std::env::current_exe().unwrap();
    let embed = test.parent().unwrap().parent().unwrap().join("examples").join("embed");
    let embedded = Command::new(&embed).output().expect("run the embed example");
    assert!(embedded.status.success(), "{}", stderr(&embedded));
    assert!(stdout(&embedded).contains("0.70710677"), "{}", stdout(&embedded));
}

/// Every SQL block of README.md and docs/ marked runnable (```sql runnable) runs as shown, in
/// order, one session per file, on the demo data.
#[test]
fn runnable_sql_in_the_docs_runs_on_the_demo_data() {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir("docs")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut blocks_run = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut script = String::new();
        let mut inside = false;
        for line in text.lines() {
            match (inside, line.trim_start()) {
                (false, fence) if fence.starts_with("```sql runnable") => {
                    inside = true;
                    blocks_run += 1;
                }
                (true, fence) if fence.starts_with("```") => inside = false,
                (true, _) => {
                    script.push_str(line);
                    script.push('\n');
                }
                _ => {}
            }
        }
        if script.is_empty() {
            continue;
        }
        let scratch = tempfile::tempdir().unwrap();
        let models = scratch.path().join("models");
        // The keys docs/privacy.md's nightly job reads.
        let output = Command::new(env!("CARGO_BIN_EXE_recfusion"))
            .env("RECFUSION_DB_KEY", "a passphrase for the docs' encrypted file")
            .env("RECFUSION_KEY_EXPORT", "a key for the docs' pseudonyms")
            .args(["-q", "--models", models.to_str().unwrap(), "-D"])
            .arg(format!("scratch={}", scratch.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            output.status.success(),
            "{}: its runnable SQL fails:\n{}",
            file.display(),
            stderr(&output)
        );
    }
    assert!(blocks_run >= 8, "only {blocks_run} runnable blocks were found");
}
