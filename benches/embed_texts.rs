//! Embedding a catalogue with a pretrained language model: `embed_texts(table, 'model_dir')`
//! against sentence-transformers' `encode` (PyTorch on the CPU, batch 64) on the same 10,000
//! MovieLens-like titles with genres, the same model and the same number of threads; prints
//! both throughputs and peak RSS (each side runs as a process of its own under
//! `/usr/bin/time`). Each side runs three times, alternating, and the medians are compared:
//! one run of either varies by a fifth on these shared machines. Both time the embedding alone:
//! recfusion its `embed_texts` statement (model loading included), sentence-transformers its
//! `encode` call (model loaded before).
//! sentence-transformers runs through `$RECFUSION_PYTHON` (default `python3`) when installed.
//!
//! cargo bench --bench embed_texts -- MODEL_DIR [TEXTS [THREADS]]   (default 10000, all cores)

use std::path::Path;
use std::process::Command;

/// Deterministic MovieLens-like titles: "Adjective Noun (year) Genre|Genre".
fn titles(count: usize) -> Vec<String> {
    const ADJECTIVES: [&str; 16] = [
        "Last", "Silent", "Golden", "Broken", "Secret", "Wild", "Dark", "Lost", "Little", "Great", "Hidden", "Crimson",
        "Frozen", "Electric", "Midnight", "Distant",
    ];
    const NOUNS: [&str; 16] = [
        "River",
        "Empire",
        "Garden",
        "Detective",
        "Journey",
        "Kingdom",
        "Storm",
        "Island",
        "Letter",
        "Summer",
        "Machine",
        "Harbor",
        "Promise",
        "Circus",
        "Frontier",
        "Orchestra",
    ];
    const GENRES: [&str; 18] = [
        "Action",
        "Adventure",
        "Animation",
        "Children's",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ];
    let mut state = 0x2026_1203_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let sequel = match next(5) {
                0 => " II",
                1 => ": The Return",
                _ => "",
            };
            let genres: Vec<&str> = (0..1 + next(3)).map(|_| GENRES[next(GENRES.len())]).collect();
            format!(
                "{} {}{sequel} ({}) {}",
                ADJECTIVES[next(ADJECTIVES.len())],
                NOUNS[next(NOUNS.len())],
                1930 + next(70),
                genres.join("|")
            )
        })
        .collect()
}

const PYTHON: &str = r#"
import sys, time, csv
try:
    import torch
    from sentence_transformers import SentenceTransformer
except ImportError as e:
    print("skip", e); sys.exit(0)
model_dir, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
texts = [row[1] for row in csv.reader(open(path, newline="", encoding="utf-8"))][1:]
model = SentenceTransformer(model_dir, device="cpu")
started = time.perf_counter()
vectors = model.encode(texts, batch_size=64, convert_to_numpy=True)
seconds = time.perf_counter() - started
print("sentence-transformers", __import__("sentence_transformers").__version__, "torch", torch.__version__, seconds)
"#;

/// Runs `command` under `/usr/bin/time`, returning its stdout, peak RSS in MB and stderr.
fn run_measured(command: &mut Command) -> (String, f64, String) {
    let output = command.output().expect("run the command");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_kb = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("peak_kb=")?.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    if !output.status.success() {
        eprintln!("{stderr}");
    }
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        peak_kb / 1024.0,
        stderr.into_owned(),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(model) = args.first() else {
        println!("skipped: pass the model directory (cargo bench --bench embed_texts -- MODEL_DIR)");
        return;
    };
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let threads: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let csv = dir.path().join("titles.csv");
    let mut file = String::from("item_id,title\n");
    for (id, title) in titles(count).iter().enumerate() {
        file.push_str(&format!("{id},\"{}\"\n", title.replace('"', "\"\"")));
    }
    std::fs::write(&csv, file).expect("write the titles");
    println!(
        "{count} MovieLens-like titles with genres, model {}, {threads} threads",
        Path::new(model).display()
    );

    let sql = format!(
        "CREATE TABLE titles AS SELECT * FROM '{csv}'; \
         SELECT count(*) AS texts, count(vector) AS vectors FROM embed_texts('titles', model_dir => '{model}')",
        csv = csv.display()
    );
    let python = std::env::var("RECFUSION_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut embedded, mut peer) = (String::new(), None);
    for _ in 0..ROUNDS {
        let (output, rss, stderr) = run_measured(
            Command::new("/usr/bin/time")
                .args([
                    "-f",
                    "peak_kb=%M",
                    env!("CARGO_BIN_EXE_recfusion"),
                    "--format",
                    "csv",
                    "-c",
                    &sql,
                ])
                .env("RAYON_NUM_THREADS", threads.to_string()),
        );
        embedded = output.lines().last().unwrap_or_default().to_string();
        // The footer of the last statement, the embedding: "… Elapsed 15.521 seconds."
        let seconds = stderr
            .lines()
            .rev()
            .find_map(|l| {
                l.split("Elapsed ")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(f64::NAN);
        ours.push((seconds, rss));
        let (output, rss, _) = run_measured(
            Command::new("/usr/bin/time")
                .args(["-f", "peak_kb=%M", &python, "-c", PYTHON])
                .args([model, &csv.display().to_string(), &threads.to_string()]),
        );
        match output.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["sentence-transformers", version, "torch", torch, seconds] => {
                peer = Some(format!("sentence-transformers {version} (torch {torch})"));
                theirs.push((seconds.parse().unwrap_or(f64::NAN), rss));
            }
            _ => {
                println!("sentence-transformers: skipped ({})", output.trim());
                break;
            }
        }
    }
    println!(
        "{:<44} {:>10} {:>10} {:>12}   texts/s of each run",
        "", "seconds", "texts/s", "peak RSS MB"
    );
    let row = |name: &str, runs: &[(f64, f64)], note: &str| {
        let seconds = median(runs.iter().map(|r| r.0));
        let rss = median(runs.iter().map(|r| r.1));
        let each: Vec<String> = runs.iter().map(|r| format!("{:.1}", count as f64 / r.0)).collect();
        println!(
            "{name:<44} {seconds:>10.2} {:>10.1} {rss:>12.0}   {} ({note})",
            count as f64 / seconds,
            each.join(", ")
        );
        seconds
    };
    let our_seconds = row("recfusion embed_texts", &ours, &format!("{embedded} texts,vectors"));
    if let Some(peer) = peer {
        let their_seconds = row(&peer, &theirs, "encode");
        println!(
            "recfusion's throughput: {:.2}× sentence-transformers' (medians of {ROUNDS} runs each)",
            their_seconds / our_seconds
        );
    }
}

/// Runs of each side, alternating.
const ROUNDS: usize = 3;

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
