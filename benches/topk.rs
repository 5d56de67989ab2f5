//! Top-k recommendation speed: N users × M items × d dims of random vectors (fixed seed),
//! the 10 best items per user by inner product, timed four ways in one run:
//!
//! 1. recfusion's `recommend` operator (blocked matrix multiply + bounded list per user);
//! 2. the same top-k as plain SQL in recfusion (cross join + `ROW_NUMBER()`), on a sample of
//!    users and scaled to N, because the full run would take minutes;
//! 3. the `implicit` library's `recommend` for all users on the same vectors, and
//! 4. numpy's bare matrix multiply (the floor), both through `python3` when the packages are
//!    installed (skipped with a message otherwise).
//!
//! cargo bench --bench topk [-- USERS ITEMS DIM [SQL_SAMPLE_USERS]]   (default 20000 20000 64 200)

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, FixedSizeListArray, Float32Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use recfusion::{SessionOptions, execute_sql, new_session};

const K: usize = 10;

const PYTHON: &str = r#"
import sys, time
try:
    import numpy as np
except ImportError:
    print("skip numpy is not installed"); sys.exit(0)
users, items, dim, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
U = np.fromfile(path + "/users.f32", dtype=np.float32).reshape(users, dim)
I = np.fromfile(path + "/items.f32", dtype=np.float32).reshape(items, dim)
best = None
for _ in range(3):
    t = time.perf_counter(); S = U @ I.T; best = min(best or 1e9, time.perf_counter() - t)
del S
print("numpy", best)
try:
    import implicit, scipy.sparse
    from implicit.cpu.als import AlternatingLeastSquares
except ImportError:
    print("skip implicit is not installed"); sys.exit(0)
model = AlternatingLeastSquares(factors=dim)
model.user_factors, model.item_factors = U, I
empty = scipy.sparse.csr_matrix((users, items), dtype=np.float32)
ids = np.arange(users)
best = None
for _ in range(3):
    t = time.perf_counter()
    model.recommend(ids, empty, N=10, filter_already_liked_items=False)
    best = min(best or 1e9, time.perf_counter() - t)
print("implicit", best, implicit.__version__)
"#;

/// Deterministic uniform values in [-0.5, 0.5).
fn random_matrix(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..rows * dim)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn register(ctx: &SessionContext, name: &str, id: &str, values: &[f32], dim: usize) -> Result<()> {
    let rows = values.len() / dim;
    let vectors = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Float32, true)),
        dim as i32,
        Arc::new(Float32Array::from(values.to_vec())),
        None,
    )?;
    let schema = Arc::new(Schema::new(vec![
        Field::new(id, DataType::Int64, false),
        Field::new("vec", vectors.data_type().clone(), false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(vectors),
        ],
    )?;
    let chunks: Vec<RecordBatch> = (0..rows)
        .step_by(8192)
        .map(|start| batch.slice(start, 8192.min(rows - start)))
        .collect();
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![chunks])?))?;
    Ok(())
}

async fn time_sql(ctx: &SessionContext, sql: &str) -> Result<(f64, usize)> {
    let started = Instant::now();
    let batches = execute_sql(ctx, sql).await?.collect().await?;
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    Ok((started.elapsed().as_secs_f64(), rows))
}

#[tokio::main]
async fn main() -> Result<()> {
    let numbers: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let users = numbers.first().copied().unwrap_or(20_000);
    let items = numbers.get(1).copied().unwrap_or(20_000);
    let dim = numbers.get(2).copied().unwrap_or(64);
    let sample = numbers.get(3).copied().unwrap_or(200).min(users);

    let user_values = random_matrix(users, dim, 11);
    let item_values = random_matrix(items, dim, 12);
    let ctx = new_session(&SessionOptions::default())?;
    register(&ctx, "users", "user_id", &user_values, dim)?;
    register(&ctx, "items", "item_id", &item_values, dim)?;
    register(&ctx, "sample_users", "user_id", &user_values[..sample * dim], dim)?;
    println!(
        "{users} users x {items} items x {dim} dims, top {K} by inner product, {} threads",
        rayon_threads()
    );

    let mut ours = f64::INFINITY;
    for _ in 0..3 {
        let (seconds, rows) = time_sql(&ctx, &format!("SELECT * FROM recommend('users', 'items', {K})")).await?;
        assert_eq!(rows, users * K.min(items));
        ours = ours.min(seconds);
    }
    println!("recfusion recommend()                 {ours:>9.3} s   (best of 3)");

    let plain = format!(
        "SELECT user_id, rank, item_id, score FROM (
           SELECT u.user_id, i.item_id, array_inner_product(u.vec, i.vec) AS score,
                  ROW_NUMBER() OVER (PARTITION BY u.user_id ORDER BY array_inner_product(u.vec, i.vec) DESC) AS rank
           FROM sample_users u CROSS JOIN items i) WHERE rank <= {K}"
    );
    let (sample_seconds, rows) = time_sql(&ctx, &plain).await?;
    assert_eq!(rows, sample * K.min(items));
    let plain_seconds = sample_seconds * users as f64 / sample as f64;
    println!(
        "plain SQL (cross join + ROW_NUMBER)   {plain_seconds:>9.3} s   ({sample_seconds:.3} s for {sample} users, scaled to {users})"
    );
    println!("  recfusion is {:.0}x faster than plain SQL", plain_seconds / ours);

    let dir = std::env::temp_dir().join(format!("recfusion-topk-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let bytes = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("users.f32"), bytes(&user_values))?;
    std::fs::write(dir.join("items.f32"), bytes(&item_values))?;
    let output = Command::new("python3")
        .args(["-c", PYTHON])
        .args([users.to_string(), items.to_string(), dim.to_string()])
        .arg(&dir)
        .output();
    std::fs::remove_dir_all(&dir)?;
    let stdout = match output {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(_) => "skip python3 is not available".to_string(),
    };
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["numpy", seconds] => {
                let seconds: f64 = seconds.parse().unwrap_or(f64::NAN);
                println!("numpy matmul only (the floor)         {seconds:>9.3} s   (best of 3)");
                println!("  recfusion takes {:.2}x the bare matmul", ours / seconds);
            }
            ["implicit", seconds, version] => {
                let seconds: f64 = seconds.parse().unwrap_or(f64::NAN);
                println!("implicit {version} recommend (all users)  {seconds:>9.3} s   (best of 3)");
                println!("  recfusion is {:.2}x the speed of implicit", seconds / ours);
            }
            _ => println!("{}", line.replacen("skip", "skipped:", 1)),
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
