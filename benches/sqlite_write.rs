//! How fast recfusion writes recommendations to SQLite: `CREATE OR REPLACE TABLE out.recs AS …`
//! of N rows of (user_id, rank, item_id, score) with a primary key, one transaction, timed
//! end to end. In the same run, when `python3` is present, the same rows are written by
//! Python's `sqlite3` module with `executemany` in one transaction: the usual way a script
//! fills a SQLite table.
//!
//! cargo bench --bench sqlite_write [-- ROWS]     (default 1,000,000 rows)

use std::process::Command;
use std::time::Instant;

use recfusion::sqlite::{AttachOptions, attach};
use recfusion::{SessionOptions, execute_sql, new_session};

const PYTHON_WRITER: &str = r#"
import sqlite3, sys, time
path, rows = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(path)
con.execute("PRAGMA journal_mode = WAL")
started = time.perf_counter()
with con:
    con.execute("CREATE TABLE recs (user_id INTEGER NOT NULL, rank INTEGER NOT NULL, item_id INTEGER, score REAL, PRIMARY KEY (user_id, rank))")
    con.executemany("INSERT INTO recs VALUES (?, ?, ?, ?)",
                    ((n // 10, n % 10 + 1, (n * 7919) % 20000, 1.0 / (n % 10 + 1)) for n in range(rows)))
print(time.perf_counter() - started)
"#;

#[tokio::main]
async fn main() -> datafusion::common::Result<()> {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("recfusion-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let ctx = new_session(&SessionOptions::default())?;
    attach(&ctx, &dir.join("recfusion.sqlite"), "out", AttachOptions::default())?;
    let sql = format!(
        "CREATE OR REPLACE TABLE out.recs (PRIMARY KEY (user_id, rank)) AS \
         SELECT value / 10 AS user_id, value % 10 + 1 AS rank, (value * 7919) % 20000 AS item_id, \
                1.0 / (value % 10 + 1) AS score \
         FROM generate_series(0, {}) AS t(value)",
        rows - 1
    );
    let started = Instant::now();
    execute_sql(&ctx, &sql).await?.collect().await?;
    let ours = started.elapsed().as_secs_f64();
    println!("rows                                  {rows}");
    println!(
        "recfusion CREATE OR REPLACE TABLE     {ours:.2} s  ({:.0} rows/s)",
        rows as f64 / ours
    );

    let python = Command::new("python3")
        .args(["-c", PYTHON_WRITER])
        .arg(dir.join("python.sqlite"))
        .arg(rows.to_string())
        .output();
    match python {
        Ok(output) if output.status.success() => {
            let seconds: f64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap_or(f64::NAN);
            println!(
                "python3 sqlite3 executemany           {seconds:.2} s  ({:.0} rows/s)",
                rows as f64 / seconds
            );
            println!("ratio (python / recfusion)            {:.2}x", seconds / ours);
        }
        _ => println!("python3 sqlite3 executemany           skipped: python3 is not available"),
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
