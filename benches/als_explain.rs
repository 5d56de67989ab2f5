//! `als_explain` against `implicit`'s `explain()` on the same factors: recfusion trains iALS on
//! MovieLens 100K's leave-last-out training rows and explains 1,000 sampled (user, item) pairs
//! of its own top-10 lists; `implicit` is given the very same item factors (and settings) and
//! explains the same pairs. The program prints, side by side, how often both name the same
//! top contributor and the same top three, and how far their total scores are apart.
//! `implicit` runs through `$RECFUSION_PYTHON` (default `python3`) when installed (skipped with a
//! message otherwise).
//!
//! cargo bench --bench als_explain [-- DATA_DIR [FACTORS REGULARIZATION ALPHA]]
//! (default ../shared/data/ml-100k, 64 factors, regularization 0.1, alpha 1.0)

use std::process::Command;
use std::time::Instant;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::Result;
use recfusion::{SessionOptions, new_session};

mod common;
use common::query;

const PYTHON: &str = r#"
import sys, json
try:
    import numpy as np, scipy.sparse, implicit
    from implicit.cpu.als import AlternatingLeastSquares
except ImportError as e:
    print(json.dumps({"skip": str(e)})); sys.exit(0)
dir, reg, alpha = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
items = [line.split("\t") for line in open(dir + "/items.tsv")]
ids = [int(i) for i, _ in items]
factors = np.array([[float(x) for x in v.strip().split(",")] for _, v in items], dtype=np.float32)
index = {i: k for k, i in enumerate(ids)}
rows = [tuple(map(int, line.split("\t"))) for line in open(dir + "/train.tsv")]
users = sorted({u for u, _ in rows}); uindex = {u: k for k, u in enumerate(users)}
m = scipy.sparse.csr_matrix((np.ones(len(rows), dtype=np.float32),
                             ([uindex[u] for u, _ in rows], [index[i] for _, i in rows])),
                            shape=(len(users), len(ids)))
model = AlternatingLeastSquares(factors=factors.shape[1], regularization=reg, alpha=alpha)
model.item_factors = factors
model.user_factors = np.zeros((len(users), factors.shape[1]), dtype=np.float32)
out = []
for line in open(dir + "/pairs.tsv"):
    u, i = map(int, line.split("\t"))
    score, top, _ = model.explain(uindex[u], m, index[i], N=3)
    out.append({"user": u, "item": i, "score": float(score), "top": [ids[j] for j, _ in top]})
print(json.dumps({"version": implicit.__version__, "pairs": out}))
"#;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(data) = common::movielens_dir(&args) else {
        return Ok(());
    };
    let number = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let (factors, regularization, alpha) = (number(1, "64"), number(2, "0.1"), number(3, "1.0"));
    let dir = std::env::temp_dir().join(format!("recfusion-als-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(datafusion::common::DataFusionError::from)?;
    let options = SessionOptions {
        models_dir: Some(dir.clone()),
        ..SessionOptions::default()
    };
    let ctx = new_session(&options)?;
    common::leave_last_out(&ctx, &data).await?;
    query(
        &ctx,
        &format!(
            "SELECT * FROM train_als('train', model => 'explained', factors => {factors}, iterations => 20, \
             regularization => {regularization}, alpha => {alpha}, seed => 42)"
        ),
    )
    .await?;
    for side in ["users", "items"] {
        query(
            &ctx,
            &format!("CREATE TABLE {side} AS SELECT * FROM model_vectors('explained', '{side}')"),
        )
        .await?;
    }
    // 1,000 pairs of the model's own lists, a fixed sample.
    query(
        &ctx,
        "CREATE TABLE pairs AS SELECT user_id, item_id FROM \
         (SELECT user_id, item_id, (user_id * 7919 + item_id * 104729) % 1000003 AS draw \
          FROM recommend('users', 'items', 10, exclude => 'train')) ORDER BY draw, user_id, item_id LIMIT 1000",
    )
    .await?;
    let started = Instant::now();
    let explained = query(
        &ctx,
        "SELECT user_id, item_id, score, array_to_string(array_agg(b['item'] ORDER BY b['contribution'] DESC), ',') \
         FROM (SELECT user_id, item_id, score, unnest(because) AS b FROM als_explain('explained', 'train', 'pairs', top => 3)) \
         GROUP BY user_id, item_id, score ORDER BY user_id, item_id",
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut ours = std::collections::HashMap::new();
    for batch in &explained {
        let users = cast(batch.column(0), &DataType::Int64)?;
        let items = cast(batch.column(1), &DataType::Int64)?;
        let scores = cast(batch.column(2), &DataType::Float64)?;
        let tops = cast(batch.column(3), &DataType::Utf8)?;
        for row in 0..batch.num_rows() {
            let top: Vec<i64> = tops
                .as_string::<i32>()
                .value(row)
                .split(',')
                .filter_map(|t| t.parse().ok())
                .collect();
            let key = (
                users.as_primitive::<Int64Type>().value(row),
                items.as_primitive::<Int64Type>().value(row),
            );
            ours.insert(key, (scores.as_primitive::<Float64Type>().value(row), top));
        }
    }
    // What implicit reads: the item factors, the training rows and the pairs.
    let write = |name: &str, sql: &str| -> Result<()> {
        let batches = futures::executor::block_on(query(&ctx, sql))?;
        let mut text = String::new();
        for batch in &batches {
            let columns: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| cast(c, &DataType::Utf8))
                .collect::<std::result::Result<_, _>>()?;
            for row in 0..batch.num_rows() {
                let cells: Vec<&str> = columns.iter().map(|c| c.as_string::<i32>().value(row)).collect();
                text.push_str(&cells.join("\t"));
                text.push('\n');
            }
        }
        std::fs::write(dir.join(name), text).map_err(datafusion::common::DataFusionError::from)
    };
    write("items.tsv", "SELECT item_id, array_to_string(vector, ',') FROM items")?;
    write("train.tsv", "SELECT user_id, item_id FROM train")?;
    write(
        "pairs.tsv",
        "SELECT user_id, item_id FROM pairs ORDER BY user_id, item_id",
    )?;
    let python = std::env::var("RECFUSION_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let started = Instant::now();
    let output = Command::new(&python)
        .args(["-c", PYTHON])
        .arg(&dir)
        .args([&regularization, &alpha])
        .output();
    let their_seconds = started.elapsed().as_secs_f64();
    let stdout = output
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "als_explain against implicit's explain() on the same iALS factors ({}, {factors} factors, regularization {regularization}, alpha {alpha})",
        data.display()
    );
    let theirs: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    let Some(pairs) = theirs["pairs"].as_array() else {
        println!("recfusion als_explain: {} pairs in {seconds:.2} s", ours.len());
        println!(
            "implicit: skipped ({})",
            theirs["skip"].as_str().unwrap_or(stdout.trim())
        );
        return Ok(());
    };
    let (mut compared, mut same_first, mut same_three, mut largest_gap) = (0usize, 0usize, 0usize, 0f64);
    for pair in pairs {
        let key = (pair["user"].as_i64().unwrap_or(-1), pair["item"].as_i64().unwrap_or(-1));
        let Some((score, top)) = ours.get(&key) else { continue };
        let their_top: Vec<i64> = pair["top"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_i64())
            .collect();
        compared += 1;
        same_first += usize::from(top.first() == their_top.first());
        let mut a = top.clone();
        let mut b = their_top.clone();
        a.sort_unstable();
        b.sort_unstable();
        same_three += usize::from(a == b);
        largest_gap = largest_gap.max((score - pair["score"].as_f64().unwrap_or(f64::NAN)).abs());
    }
    let share = |n: usize| 100.0 * n as f64 / compared.max(1) as f64;
    println!("                          pairs   seconds   same top item   same top 3   largest |score difference|");
    println!("recfusion als_explain    {:>6}   {seconds:>7.2}", ours.len());
    println!(
        "implicit {} explain  {:>6}   {their_seconds:>7.2}   {:>12.1} %   {:>8.1} %   {largest_gap:.2e}",
        theirs["version"].as_str().unwrap_or("?"),
        compared,
        share(same_first),
        share(same_three)
    );
    println!("target: the same top contributors on at least 95 % of the pairs");
    Ok(())
}
