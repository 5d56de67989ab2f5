//! SASRec training speed, memory and quality on MovieLens 100K: `train_sasrec` on each user's
//! time-ordered ratings but the last (README's leave-last-out protocol), at the MovieLens
//! benchmark's two settings — the last 50 items and the last 200, learning rate 0.003, 64 dims,
//! 2 blocks, dropout 0.2, at most 30 epochs with early stopping, and the last 200 again trained
//! to convergence (at most 200 epochs, patience 10) — printing epochs run,
//! seconds, epochs per second, the peak resident memory of the training alone, and validation
//! and test NDCG@10, next to the targets they answer to.
//!
//! Then the PyTorch peer, when `$RECFUSION_PYTHON` (default `python3`) has torch: the same
//! architecture and training in `benches/sasrec_torch.py`, on the same sequences, the same
//! thread count, both sides for the same fixed number of epochs at max_len 200 (no early
//! stopping), printing epochs/s, peak RSS and validation NDCG@10 side by side.
//!
//! cargo bench --bench sasrec [-- DATA_DIR]   (default ../shared/data/ml-100k)

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::common::Result;
use recfusion::{SessionOptions, new_session};

mod common;
use common::query;

/// The recfusion binary's allocator: its settings ([`recfusion::allocation::tune_process`]) are
/// part of how fast training runs, so the figures here are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The process's peak resident memory since the last reset, in MB (Linux; NaN elsewhere).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Starts a new peak: Linux resets VmHWM to the current RSS when "5" is written here.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() -> Result<()> {
    recfusion::allocation::tune_process();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(data) = common::movielens_dir(&args) else {
        return Ok(());
    };
    let model = std::env::temp_dir().join(format!("recfusion-sasrec-bench-{}.safetensors", std::process::id()));
    let ctx = new_session(&SessionOptions::default())?;
    common::leave_last_out(&ctx, &data).await?;
    println!("SASRec on {} (64 dims, 2 blocks, dropout 0.2)", data.display());
    println!(
        "max_len   lr      most   patience   epochs   train s   epochs/s   peak RSS MB   val NDCG@10   test NDCG@10"
    );
    for (max_len, learning_rate, most, patience) in [(50, 0.003, 30, 15), (200, 0.003, 30, 15), (200, 0.003, 200, 10)] {
        reset_peak_rss();
        let report = query(
            &ctx,
            &format!(
                "SELECT epochs, seconds, validation_ndcg10 FROM train_sasrec('sequence', '{}', 64, {most}, {max_len}, 2, 1, 0.2, 42, {learning_rate}, {patience})",
                model.display()
            ),
        )
        .await?;
        let peak = peak_rss_mb();
        let epochs = report[0].column(0).as_primitive::<Int64Type>().value(0);
        let seconds = report[0].column(1).as_primitive::<Float64Type>().value(0);
        let validation = report[0].column(2).as_primitive::<Float64Type>().value(0);
        for (table, side) in [
            ("profiles", "sasrec_profiles('{model}', 'sequence')"),
            ("vectors", "model_vectors('{model}', 'items')"),
        ] {
            let source = side.replace("{model}", &model.display().to_string());
            query(
                &ctx,
                &format!("CREATE OR REPLACE TABLE {table} AS SELECT * FROM {source}"),
            )
            .await?;
        }
        let test = query(
            &ctx,
            "SELECT avg(ndcg_at_k(l.items, [t.item_id], 10)) FROM truth t LEFT JOIN \
             (SELECT user_id, array_agg(item_id ORDER BY rank) AS items \
              FROM recommend('profiles', 'vectors', 10, 'dot', 'train') GROUP BY user_id) l USING (user_id)",
        )
        .await?;
        let test = test[0].column(0).as_primitive::<Float64Type>().value(0);
        println!(
            "{max_len:>7}   {learning_rate:<5}   {most:>4}   {patience:>8}   {epochs:>6}   {seconds:>7.1}   {:>8.2}   {peak:>11.0}   {validation:>11.4}   {test:>12.4}",
            epochs as f64 / seconds
        );
    }
    println!("targets: max_len 200 at ≥ 0.88 epochs/s (2× 0.44); trained to convergence, test NDCG@10 ≥ 0.100");
    against_pytorch(&ctx, &model).await?;
    let _ = std::fs::remove_file(&model);
    let _ = std::fs::remove_file(model.with_extension("safetensors.json"));
    Ok(())
}

/// Epochs each side trains for in the comparison with PyTorch.
const PEER_EPOCHS: usize = 10;

/// recfusion and the PyTorch script side by side at max_len 200, `PEER_EPOCHS` epochs each.
async fn against_pytorch(ctx: &datafusion::prelude::SessionContext, model: &std::path::Path) -> Result<()> {
    let python = std::env::var("RECFUSION_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let has_torch = std::process::Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        println!("PyTorch peer skipped: {python} has no torch (set RECFUSION_PYTHON to a Python that has it)");
        return Ok(());
    }
    let sequences = std::env::temp_dir().join(format!("recfusion-sasrec-sequences-{}.csv", std::process::id()));
    query(
        ctx,
        &format!(
            "COPY (SELECT user_id, item_id, ts FROM sequence) TO '{}' STORED AS CSV OPTIONS ('format.has_header' 'true')",
            sequences.display()
        ),
    )
    .await?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "against PyTorch: max_len 200, 64 dims, 2 blocks, 1 head, dropout 0.2, lr 0.003, batch 128, {PEER_EPOCHS} epochs, {threads} threads"
    );
    println!("side         epochs   train s   epochs/s   peak RSS MB   val NDCG@10");
    reset_peak_rss();
    let report = query(
        ctx,
        &format!(
            "SELECT epochs, seconds, validation_ndcg10 FROM train_sasrec('sequence', model => '{}', dim => 64, \
             max_epochs => {PEER_EPOCHS}, patience => {PEER_EPOCHS}, max_len => 200, layers => 2, heads => 1, \
             dropout => 0.2, seed => 42, learning_rate => 0.003)",
            model.display()
        ),
    )
    .await?;
    let peak = peak_rss_mb();
    let epochs = report[0].column(0).as_primitive::<Int64Type>().value(0);
    let seconds = report[0].column(1).as_primitive::<Float64Type>().value(0);
    let validation = report[0].column(2).as_primitive::<Float64Type>().value(0);
    let ours = epochs as f64 / seconds;
    println!("recfusion    {epochs:>6}   {seconds:>7.1}   {ours:>8.3}   {peak:>11.0}   {validation:>11.4}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sasrec_torch.py");
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(&sequences)
        .args([
            "--max-len",
            "200",
            "--epochs",
            &PEER_EPOCHS.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .output()
        .expect("run the PyTorch script");
    let _ = std::fs::remove_file(&sequences);
    let line = String::from_utf8_lossy(&output.stdout);
    let Ok(peer) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        println!("PyTorch peer failed: {}", String::from_utf8_lossy(&output.stderr));
        return Ok(());
    };
    let number = |key: &str| peer[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "PyTorch      {:>6}   {:>7.1}   {:>8.3}   {:>11.0}   {:>11.4}",
        number("epochs"),
        number("seconds"),
        number("epochs_per_s"),
        number("peak_rss_mb"),
        number("validation_ndcg10")
    );
    println!(
        "recfusion / PyTorch: {:.2}x the epochs/s (target ≥ 2x), validation NDCG@10 {:+.4} (target within 0.005)",
        ours / number("epochs_per_s"),
        validation - number("validation_ndcg10")
    );
    Ok(())
}
