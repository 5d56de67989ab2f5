//! The privacy functions, measured: (1) the noise of each differentially private aggregate over
//! 10,000 releases, its standard deviation beside the theoretical one and beside OpenDP's
//! samplers at the same scale (through `$RECFUSION_PYTHON` with `opendp` installed; skipped with
//! a message otherwise); (2) the error of each release as epsilon grows, which must shrink to
//! nothing; (3) what encryption costs: writing and reading the same table in a plain and an
//! encrypted SQLite file.
//!
//! cargo bench --bench privacy [-- GROUPS ROWS_PER_GROUP]   (default 10000 100)

use std::process::Command;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Float64Type, Int64Type};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use recfusion::{SessionOptions, new_session};
use recfusion_udfs::privacy::{dp_avg_noise_std, dp_count_noise_std, dp_sum_noise_std, dp_vector_mean_noise_std};

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    recfusion::execute_sql(ctx, sql).await?.collect().await
}

/// OpenDP's samplers at the scales recfusion uses: prints one line per function with the
/// standard deviation of 10,000 draws (for the average and the vector mean, of the same
/// noisy-sum-over-noisy-count estimate, with OpenDP's noise in both).
const OPENDP: &str = r#"
import sys, math
try:
    import opendp.prelude as dp
except ImportError as e:
    print("skip", e); sys.exit(0)
import importlib.metadata
dp.enable_features("contrib")
draws = int(sys.argv[1]); rows = int(sys.argv[2])
count_scale, sum_scale, avg_sum_scale, avg_count_scale, sigma, vec_count_scale = map(float, sys.argv[3:9])
exact_count, exact_sum, centred_sum, mid, vector_sum = map(float, sys.argv[9:14])
def std(xs):
    m = sum(xs) / len(xs); return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
int_laplace = lambda scale: dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale)
float_laplace = lambda scale: dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale)
gaussian = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), sigma)
count = int_laplace(count_scale); s = float_laplace(sum_scale)
a_sum = float_laplace(avg_sum_scale); a_count = int_laplace(avg_count_scale); v_count = int_laplace(vec_count_scale)
print("opendp", importlib.metadata.version("opendp"))
print("dp_count", std([count(int(exact_count)) for _ in range(draws)]))
print("dp_sum", std([s(exact_sum) for _ in range(draws)]))
print("dp_avg", std([min(max(mid + a_sum(centred_sum) / max(1, a_count(int(exact_count))), 0.0), 10.0) for _ in range(draws)]))
print("dp_vector_mean", std([gaussian(vector_sum) / max(1, v_count(int(exact_count))) for _ in range(draws)]))
"#;

fn column_f64(batch: &RecordBatch, index: usize) -> Vec<f64> {
    let column = batch.column(index);
    match column.data_type() {
        datafusion::arrow::datatypes::DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|x| *x as f64)
            .collect(),
        _ => column.as_primitive::<Float64Type>().values().to_vec(),
    }
}

fn std(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

fn mean_abs_error(values: &[f64], exact: f64) -> f64 {
    values.iter().map(|x| (x - exact).abs()).sum::<f64>() / values.len() as f64
}

/// The first coordinate of each released vector.
fn first_coordinates(batch: &RecordBatch, index: usize) -> Vec<f64> {
    let vectors = batch.column(index).as_fixed_size_list();
    (0..vectors.len())
        .map(|row| f64::from(vectors.value(row).as_primitive::<Float32Type>().value(0)))
        .collect()
}

/// Every group has the same rows: user u has x = u mod 11 (in [0, 10]) and the vector
/// [0.6, 0.8, 0, 0] scaled by (u mod 5) / 4 (norm at most 1, so clipping at 1 changes nothing).
async fn create_groups(ctx: &SessionContext, groups: usize, rows: usize) -> Result<()> {
    query(
        ctx,
        &format!(
            "CREATE TABLE draws AS SELECT value AS user_id, value / {rows} AS g, CAST((value % {rows}) % 11 AS DOUBLE) AS x, \
             arrow_cast(make_array(0.6 * ((value % {rows}) % 5) / 4.0, 0.8 * ((value % {rows}) % 5) / 4.0, 0.0, 0.0), \
                        'FixedSizeList(4, Float32)') AS v \
             FROM generate_series(0, {}) ",
            groups * rows - 1
        ),
    )
    .await?;
    Ok(())
}

async fn releases(ctx: &SessionContext, table: &str, epsilon: f64, delta: f64) -> Result<RecordBatch> {
    let batches = query(
        ctx,
        &format!(
            "SELECT dp_count({epsilon}), dp_sum(x, 0, 10, {epsilon}), dp_avg(x, 0, 10, {epsilon}), \
                    dp_vector_mean(v, 1.0, {epsilon}, {delta}) FROM {table} GROUP BY g"
        ),
    )
    .await?;
    Ok(datafusion::arrow::compute::concat_batches(
        &batches[0].schema(),
        &batches,
    )?)
}

async fn seconds(ctx: &SessionContext, sql: &str) -> Result<f64> {
    let started = Instant::now();
    query(ctx, sql).await?;
    Ok(started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let groups: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rows: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let ctx = new_session(&SessionOptions::default())?;
    create_groups(&ctx, groups, rows).await?;
    let exact = query(
        &ctx,
        "SELECT count(*), sum(x), avg(x), sum(x - 5), sum(CAST(v[1] AS DOUBLE)) FROM draws WHERE g = 0",
    )
    .await?;
    let exact: Vec<f64> = (0..5).map(|i| column_f64(&exact[0], i)[0]).collect();
    let [exact_count, exact_sum, exact_avg, centred_sum, vector_sum] =
        [exact[0], exact[1], exact[2], exact[3], exact[4]];
    let (epsilon, delta) = (1.0, 1e-6);

    // The theory: the noise's own standard deviation, and for the ratios the delta method.
    let count_std = dp_count_noise_std(epsilon).expect("scale");
    let sum_std = dp_sum_noise_std(0.0, 10.0, epsilon).expect("scale");
    let (avg_sum_std, avg_count_std) = dp_avg_noise_std(0.0, 10.0, epsilon).expect("scale");
    let avg_std = ((avg_sum_std / exact_count).powi(2)
        + (centred_sum / exact_count).powi(2) * (avg_count_std / exact_count).powi(2))
    .sqrt();
    let (vector_sum_std, vector_count_std) = dp_vector_mean_noise_std(1.0, 4, epsilon, delta).expect("scale");
    let vector_std = ((vector_sum_std / exact_count).powi(2)
        + (vector_sum / exact_count).powi(2) * (vector_count_std / exact_count).powi(2))
    .sqrt();

    let started = Instant::now();
    let released = releases(&ctx, "draws", epsilon, delta).await?;
    let release_seconds = started.elapsed().as_secs_f64();
    let ours = [
        std(&column_f64(&released, 0)),
        std(&column_f64(&released, 1)),
        std(&column_f64(&released, 2)),
        std(&first_coordinates(&released, 3)),
    ];

    let python = std::env::var("RECFUSION_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let to_arg = |x: f64| format!("{x:e}");
    let opendp = Command::new(&python)
        .args(["-c", OPENDP])
        .arg(released.num_rows().to_string())
        .arg(rows.to_string())
        .args(
            [
                1.0 / epsilon,
                10.0 / epsilon,
                5.0 / (epsilon / 2.0),
                1.0 / (epsilon / 2.0),
                vector_sum_std,
                1.0 / (epsilon / 2.0),
                exact_count,
                exact_sum,
                centred_sum,
                5.0,
                vector_sum,
            ]
            .map(to_arg),
        )
        .output();
    let opendp = opendp
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let theirs = |name: &str| {
        opendp
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
    };
    let opendp_version = opendp
        .lines()
        .find_map(|l| l.strip_prefix("opendp "))
        .map(str::to_string);

    println!(
        "noise of {} releases (each of {rows} rows, every row its own privacy unit), epsilon {epsilon}, delta {delta}: {release_seconds:.2} s for all",
        released.num_rows()
    );
    match &opendp_version {
        Some(version) => println!("OpenDP {version} draws the same number of releases at the same scales"),
        None => println!("OpenDP: skipped ({})", opendp.trim()),
    }
    println!(
        "{:<16} {:>12} {:>14} {:>8} {:>12} {:>8}",
        "function", "theory std", "recfusion std", "ratio", "OpenDP std", "ratio"
    );
    let names = ["dp_count", "dp_sum", "dp_avg", "dp_vector_mean"];
    let theory = [count_std, sum_std, avg_std, vector_std];
    for ((name, theory), ours) in names.iter().zip(theory).zip(ours) {
        let (opendp_std, opendp_ratio) = match theirs(name) {
            Some(s) => (format!("{s:.6}"), format!("{:.3}", s / theory)),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{name:<16} {theory:>12.6} {ours:>14.6} {:>8.3} {opendp_std:>12} {opendp_ratio:>8}",
            ours / theory
        );
    }

    println!(
        "\nmean |release - exact| over 1,000 releases as epsilon grows (exact: count {exact_count}, sum {exact_sum}, avg {exact_avg:.4})"
    );
    query(&ctx, "CREATE TABLE few AS SELECT * FROM draws WHERE g < 1000").await?;
    println!(
        "{:>10} {:>12} {:>12} {:>12} {:>16}",
        "epsilon", "dp_count", "dp_sum", "dp_avg", "dp_vector_mean[1]"
    );
    for epsilon in [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 1e6] {
        let released = releases(&ctx, "few", epsilon, delta).await?;
        println!(
            "{epsilon:>10} {:>12.4} {:>12.4} {:>12.6} {:>16.8}",
            mean_abs_error(&column_f64(&released, 0), exact_count),
            mean_abs_error(&column_f64(&released, 1), exact_sum),
            mean_abs_error(&column_f64(&released, 2), exact_avg),
            mean_abs_error(&first_coordinates(&released, 3), vector_sum / exact_count),
        );
    }

    println!(
        "\nwhat encryption costs: the same 1,000,000-row table written to and read from a plain and an encrypted SQLite file"
    );
    let dir = tempfile::tempdir()?;
    // SAFETY: the benchmark's own variable, set before anything reads it.
    unsafe { std::env::set_var("RECFUSION_BENCH_KEY", "a passphrase for the benchmark") };
    query(
        &ctx,
        "CREATE TABLE recs AS SELECT value / 10 AS user_id, value % 10 + 1 AS rank, value % 1682 AS item_id, \
         1.0 / (value % 10 + 1) AS score FROM generate_series(0, 999999)",
    )
    .await?;
    println!(
        "{:<10} {:>10} {:>18} {:>16}",
        "file", "write s", "attach + count s", "file MB"
    );
    for (label, options) in [("plain", ""), ("encrypted", " (KEY_ENV 'RECFUSION_BENCH_KEY')")] {
        let path = dir.path().join(format!("{label}.sqlite"));
        let name = format!("bench_{label}");
        query(&ctx, &format!("ATTACH '{}' AS {name}{options}", path.display())).await?;
        let write = seconds(&ctx, &format!("CREATE TABLE {name}.recs AS SELECT * FROM recs")).await?;
        query(&ctx, &format!("DETACH {name}")).await?;
        let started = Instant::now();
        query(&ctx, &format!("ATTACH '{}' AS {name}_again{options}", path.display())).await?;
        query(&ctx, &format!("SELECT count(*) FROM {name}_again.recs")).await?;
        let read = started.elapsed().as_secs_f64();
        let megabytes = std::fs::metadata(&path)?.len() as f64 / 1e6;
        println!("{label:<10} {write:>10.3} {read:>18.3} {megabytes:>16.1}");
    }
    Ok(())
}
