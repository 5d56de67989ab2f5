//! One machine, many events: generates synthetic interactions (200,000 users, 50,000 items,
//! skewed popularity; deterministic, so every run sees the same data) with recfusion itself,
//! then runs each step of a recommendation job as its own `recfusion -m LIMIT` process and
//! prints its time, peak RSS and outcome: `train_als`, `recommend()` for every user with seen
//! items excluded, `item_knn` (exact, and over at most 100 items of each user) and `user_knn`
//! for 2,000 users, and the `vector_mean` profile of every user over a join. The events grow
//! per user (the users stay 200,000), so exact item similarities, which cost Σ len(u)², grow
//! with the square of the events; `max_history` bounds them. Peak RSS comes from
//! `/usr/bin/time` (left out when it is missing).
//!
//! cargo bench --bench scale [-- EVENTS[,EVENTS…] [LIMIT]]   (default 10000000,50000000 4G)

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const USERS: u64 = 200_000;
const ITEMS: u64 = 50_000;

/// The steps, each a script run in a fresh process; `{dir}` is the work directory.
const STEPS: &[(&str, &str)] = &[
    (
        "train_als 64 factors, 5 iterations",
        "SELECT users, items, round(seconds, 1) FROM train_als('events', '{dir}/als.safetensors', 64, 5)",
    ),
    (
        "recommend() all users, seen excluded",
        "CREATE TABLE users AS SELECT * FROM model_vectors('{dir}/als.safetensors', 'users');
         CREATE TABLE items AS SELECT * FROM model_vectors('{dir}/als.safetensors', 'items');
         COPY (SELECT * FROM recommend('users', 'items', 10, 'dot', 'events')) TO '{dir}/recs.parquet'",
    ),
    (
        "item_knn for 2,000 users",
        "CREATE VIEW some_users AS SELECT DISTINCT user_id FROM events WHERE user_id < 2000;
         COPY (SELECT * FROM item_knn('events', 10, 50, 0, 'some_users')) TO '{dir}/item_knn.parquet'",
    ),
    (
        "item_knn, max_history 100",
        "CREATE VIEW some_users AS SELECT DISTINCT user_id FROM events WHERE user_id < 2000;
         COPY (SELECT * FROM item_knn('events', 10, 50, 0, 'some_users', NULL, 100)) TO '{dir}/item_knn.parquet'",
    ),
    (
        "user_knn for 2,000 users",
        "CREATE VIEW some_users AS SELECT DISTINCT user_id FROM events WHERE user_id < 2000;
         COPY (SELECT * FROM user_knn('events', 10, 50, 0, 'some_users')) TO '{dir}/user_knn.parquet'",
    ),
    (
        "vector_mean profile of every user",
        "CREATE TABLE items AS SELECT * FROM model_vectors('{dir}/als.safetensors', 'items');
         COPY (SELECT e.user_id, vector_mean(i.vector) AS profile FROM events e JOIN items i USING (item_id)
               GROUP BY e.user_id) TO '{dir}/profiles.parquet'",
    ),
];

/// Runs `sql` (after the view over the events) in its own process; returns seconds, peak
/// RSS in MB when known, and the last line of its error when it failed.
fn run(binary: &str, limit: &str, dir: &Path, events: &Path, sql: &str) -> (f64, Option<f64>, Option<String>) {
    let script = format!(
        "CREATE VIEW events AS SELECT user_id, item_id FROM '{}';\n{};\n",
        events.display(),
        sql.replace("{dir}", &dir.display().to_string())
    );
    let file = dir.join("step.sql");
    if let Err(e) = std::fs::write(&file, script) {
        return (0.0, None, Some(e.to_string()));
    }
    let timed = Path::new("/usr/bin/time").exists();
    let mut command = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "peak_rss_kb=%M", binary]);
        c
    } else {
        Command::new(binary)
    };
    command.args(["-q", "-m", limit, "-f"]).arg(&file);
    let started = Instant::now();
    let output = command.output();
    let seconds = started.elapsed().as_secs_f64();
    match output {
        Err(e) => (seconds, None, Some(e.to_string())),
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let rss = stderr
                .lines()
                .find_map(|line| line.strip_prefix("peak_rss_kb="))
                .and_then(|kb| kb.trim().parse::<f64>().ok())
                .map(|kb| kb / 1024.0);
            let failure = (!output.status.success()).then(|| {
                let first = stderr.lines().find(|l| l.starts_with("Error")).unwrap_or("failed");
                first.chars().take(110).collect()
            });
            (seconds, rss, failure)
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let sizes: Vec<u64> = args
        .first()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000_000, 50_000_000]);
    let limit = args.get(1).cloned().unwrap_or_else(|| "4G".to_string());
    let binary = env!("CARGO_BIN_EXE_recfusion");
    let dir = std::env::temp_dir().join(format!("recfusion-scale-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        println!("cannot create {}: {e}", dir.display());
        return;
    }
    println!("{USERS} users x {ITEMS} items, skewed popularity, each step its own process under -m {limit}");
    println!(
        "{:>11}  {:<38} {:>9} {:>12}  outcome",
        "events", "step", "seconds", "peak RSS MB"
    );
    for events in sizes {
        let file = dir.join(format!("events-{events}.parquet"));
        // Users spread evenly by a multiplicative hash; items by a cubed uniform hash, so a
        // few items are very popular and most are rare.
        let generate = format!(
            "COPY (SELECT (value * 2654435761) % {USERS} AS user_id, \
             CAST(floor({ITEMS} * power(((value * 40503) % 1000003) / 1000003.0, 3)) AS BIGINT) AS item_id \
             FROM generate_series(1, {events})) TO '{}'",
            file.display()
        );
        let started = Instant::now();
        let generated = Command::new(binary).args(["-q", "-c", &generate]).output();
        let ok = generated.as_ref().is_ok_and(|o| o.status.success());
        println!(
            "{events:>11}  {:<38} {:>9.1} {:>12}  {}",
            "generate events (Parquet)",
            started.elapsed().as_secs_f64(),
            "",
            if ok { "ok" } else { "failed" }
        );
        if !ok {
            continue;
        }
        for (name, sql) in STEPS {
            let (seconds, rss, failure) = run(binary, &limit, &dir, &file, sql);
            let rss = rss.map_or_else(String::new, |mb| format!("{mb:.0}"));
            let outcome = failure.unwrap_or_else(|| "ok".to_string());
            println!("{events:>11}  {name:<38} {seconds:>9.1} {rss:>12}  {outcome}");
        }
        let _ = std::fs::remove_file(&file);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
