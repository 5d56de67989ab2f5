//! iALS training speed and quality on MovieLens 100K, recfusion against the `implicit` library
//! in the same run: both train on the same leave-last-out training rows with the same factors,
//! iterations, regularisation and alpha, then recommend 10 unseen items per user; the program
//! prints each one's training time and test HR@10 / NDCG@10 (the evaluation protocol of
//! README's MovieLens benchmark) for five seeds, then the means: one seed's NDCG@10 varies by
//! ±0.003, as much as the gap one seed can show between the two.
//! `implicit` runs through `python3` when installed (skipped with a message otherwise).
//!
//! cargo bench --bench als [-- DATA_DIR [FACTORS ITERATIONS REGULARIZATION ALPHA]]
//! (default ../shared/data/ml-100k, 64 factors, 20 iterations, 0.1, 1.0)

use std::process::Command;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use recfusion::{SessionOptions, new_session};

mod common;
use common::query;

const PYTHON: &str = r#"
import sys, time
try:
    import numpy as np, scipy.sparse, implicit
    from implicit.cpu.als import AlternatingLeastSquares
except ImportError as e:
    print("skip", e); sys.exit(0)
path, factors, iterations, reg, alpha = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
rows = [tuple(map(int, line.split("\t"))) for line in open(path + "/u.data")]
by_user = {}
for u, i, r, ts in rows:
    by_user.setdefault(u, []).append((ts, i))
train, test = [], {}
for u, events in by_user.items():
    events.sort()
    test[u] = events[-1][1]
    train += [(u, i) for ts, i in events[:-1]]
users = sorted(by_user); items = sorted({i for _, i, _, _ in rows})
uix = {u: k for k, u in enumerate(users)}; iix = {i: k for k, i in enumerate(items)}
m = scipy.sparse.csr_matrix((np.ones(len(train), dtype=np.float32),
                             ([uix[u] for u, _ in train], [iix[i] for _, i in train])), shape=(len(users), len(items)))
model = AlternatingLeastSquares(factors=factors, iterations=iterations, regularization=reg, alpha=alpha, random_state=int(sys.argv[6]))
started = time.perf_counter()
model.fit(m, show_progress=False)
seconds = time.perf_counter() - started
ids, _ = model.recommend(np.arange(len(users)), m, N=10, filter_already_liked_items=True)
hits, ndcg = 0, 0.0
for k, u in enumerate(users):
    recommended = [items[j] for j in ids[k]]
    if test[u] in recommended:
        hits += 1; ndcg += 1.0 / np.log2(recommended.index(test[u]) + 2)
print("implicit", implicit.__version__, seconds, hits / len(users), ndcg / len(users))
"#;

fn float(batches: &[RecordBatch], column: usize) -> f64 {
    batches[0].column(column).as_primitive::<Float64Type>().value(0)
}

/// The seeds both libraries train with.
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

/// Trains recfusion's iALS with `settings` (factors, iterations, regularization, alpha) and
/// `seed`; returns training seconds, test HR@10 and NDCG@10.
async fn train_and_score(
    ctx: &SessionContext,
    model: &std::path::Path,
    settings: [&String; 4],
    seed: u64,
) -> Result<[f64; 3]> {
    let [factors, iterations, regularization, alpha] = settings;
    let report = query(
        ctx,
        &format!(
            "SELECT seconds FROM train_als('train', '{}', {factors}, {iterations}, {regularization}, {alpha}, {seed})",
            model.display()
        ),
    )
    .await?;
    for side in ["users", "items"] {
        query(
            ctx,
            &format!(
                "CREATE OR REPLACE TABLE {side} AS SELECT * FROM model_vectors('{}', '{side}')",
                model.display()
            ),
        )
        .await?;
    }
    let quality = query(
        ctx,
        "SELECT avg(hit_at_k(l.items, [t.item_id], 10)), avg(ndcg_at_k(l.items, [t.item_id], 10)) \
         FROM truth t LEFT JOIN (SELECT user_id, array_agg(item_id ORDER BY rank) AS items \
                                 FROM recommend('users', 'items', 10, 'dot', 'train') GROUP BY user_id) l USING (user_id)",
    )
    .await?;
    Ok([float(&report, 0), float(&quality, 0), float(&quality, 1)])
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(data) = common::movielens_dir(&args) else {
        return Ok(());
    };
    let number = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_string());
    let (factors, iterations, regularization, alpha) =
        (number(1, "64"), number(2, "20"), number(3, "0.1"), number(4, "1.0"));
    let model = std::env::temp_dir().join(format!("recfusion-als-bench-{}.safetensors", std::process::id()));
    let ctx = new_session(&SessionOptions::default())?;
    common::leave_last_out(&ctx, &data).await?;
    println!(
        "iALS on {}: {factors} factors, {iterations} iterations, regularization {regularization}, alpha {alpha}",
        data.display()
    );
    println!("                          seed   train s   test HR@10   test NDCG@10");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for seed in SEEDS {
        let run = train_and_score(&ctx, &model, [&factors, &iterations, &regularization, &alpha], seed).await?;
        println!(
            "recfusion train_als     {seed:>6}   {:>7.3}   {:>10.4}   {:>12.4}",
            run[0], run[1], run[2]
        );
        ours.push(run);
        let output = Command::new("python3")
            .args(["-c", PYTHON])
            .arg(&data)
            .args([&factors, &iterations, &regularization, &alpha, &seed.to_string()])
            .output();
        let stdout = output
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        match stdout.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["implicit", version, figures @ ..] if figures.len() == 3 => {
                let run: Vec<f64> = figures.iter().map(|f| f.parse().unwrap_or(f64::NAN)).collect();
                println!(
                    "implicit {version} ALS     {seed:>6}   {:>7.3}   {:>10.4}   {:>12.4}",
                    run[0], run[1], run[2]
                );
                theirs.push([run[0], run[1], run[2]]);
            }
            _ => println!("implicit: skipped ({})", stdout.trim()),
        }
    }
    let mean = |runs: &[[f64; 3]], i: usize| runs.iter().map(|r| r[i]).sum::<f64>() / runs.len() as f64;
    let spread = |runs: &[[f64; 3]], i: usize| {
        let m = mean(runs, i);
        (runs.iter().map(|r| (r[i] - m).powi(2)).sum::<f64>() / runs.len() as f64).sqrt()
    };
    for (name, runs) in [("recfusion mean", &ours), ("implicit mean", &theirs)] {
        if !runs.is_empty() {
            println!(
                "{name:<22}  ±sd   {:>7.3}   {:>10.4}   {:>6.4} ± {:.4}",
                mean(runs, 0),
                mean(runs, 1),
                mean(runs, 2),
                spread(runs, 2)
            );
        }
    }
    if !theirs.is_empty() {
        println!(
            "recfusion trains in {:.2}x implicit's time (mean of {} seeds)",
            mean(&ours, 0) / mean(&theirs, 0),
            SEEDS.len()
        );
    }
    let _ = std::fs::remove_file(&model);
    let _ = std::fs::remove_file(model.with_extension("safetensors.json"));
    Ok(())
}
