//! Every recfusion function, called with random argument values of every type (NULLs, zero,
//! huge and negative numbers, NaN, empty and hostile text, vectors, lists, table names, paths)
//! in place of the arguments of a valid call, returns a result or an error — never a panic.
//! The values are drawn from a fixed seed, so a failure names a statement that fails again on
//! the next run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use recfusion::udfs::{FunctionKind, function_docs};
use recfusion::{SessionOptions, execute_sql, new_session};

/// How many random calls each function gets.
const CALLS_PER_FUNCTION: usize = 40;

/// A call still running after this long is cancelled (dropping it must not panic either):
/// an argument such as a billion epochs may legitimately run for hours.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// A small deterministic generator (xorshift64*), so the test needs no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// SQL argument values of every type a function may meet.
fn values(dir: &str) -> Vec<String> {
    let fixed = [
        "NULL",
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-7",
        "2147483648",
        "4294967298",
        "9223372036854775807",
        "-9223372036854775808",
        "0.5",
        "-0.5",
        "1e308",
        "1e-308",
        "'NaN'::double",
        "'inf'::double",
        "'-inf'::double",
        "CAST(1 AS TINYINT)",
        "CAST(2.5 AS REAL)",
        "''",
        "'abc'",
        "'cosine'",
        "'dot'",
        "'euclidean'",
        "'[1, 2]'",
        "'[]'",
        "'[1, 2'",
        "'{\"a\": 1}'",
        "'events'",
        "'vectors'",
        "'no_such_table'",
        "'user_id'",
        "'🙂 日本'",
        "true",
        "false",
        "vector('[1, 2]', 2)",
        "vector('[0, 0]', 2)",
        "vector('[1, 2, 3]', 3)",
        "[1.0, 2.0]",
        "[]",
        "[NULL, 1.0]",
        "['a', 'b']",
        "make_array(1, 2)",
        "TIMESTAMP '2024-01-01 00:00:00'",
        "DATE '2024-01-01'",
        "INTERVAL '1 day'",
        "user_id",
        "item_id",
        "weight",
        "vec",
    ];
    let paths = [
        format!("'{dir}/model'"),
        format!("'{dir}/trained'"),
        format!("'{dir}/model.json'"),
        format!("'{dir}'"),
        "'/nonexistent/directory/model'".to_string(),
        format!("'{dir}/scratch.csv'"),
    ];
    fixed.iter().map(|v| v.to_string()).chain(paths).collect()
}

const SETUP: &[&str] = &[
    "CREATE TABLE events AS SELECT * FROM (VALUES
        (1, 10, 1.0, TIMESTAMP '2024-01-01 00:00:00', 'a red apple'),
        (1, 11, 2.0, TIMESTAMP '2024-01-02 00:00:00', 'green pear'),
        (1, 12, 1.0, TIMESTAMP '2024-01-03 00:00:00', 'a plum'),
        (2, 10, 1.0, TIMESTAMP '2024-01-01 00:00:00', 'a red apple'),
        (2, 12, 3.0, TIMESTAMP '2024-01-04 00:00:00', 'a plum'),
        (3, 11, 1.0, TIMESTAMP '2024-01-02 00:00:00', 'green pear'),
        (3, 13, 1.0, TIMESTAMP '2024-01-05 00:00:00', ''),
        (3, 10, 0.5, TIMESTAMP '2024-01-06 00:00:00', 'a red apple')
    ) AS t(user_id, item_id, weight, ts, title)",
    "CREATE VIEW pairs AS SELECT user_id, item_id, weight FROM events",
    "CREATE VIEW user_items AS SELECT user_id, item_id FROM events",
    "CREATE VIEW user_ids AS SELECT DISTINCT user_id FROM events",
    "CREATE VIEW sequences AS SELECT user_id, item_id, ts FROM events",
    "CREATE VIEW titles AS SELECT DISTINCT item_id, title FROM events",
    "CREATE TABLE vectors AS SELECT * FROM (VALUES
        (1, vector('[1, 0]', 2)), (2, vector('[0, 1]', 2)), (3, vector('[0.5, 0.5]', 2))
    ) AS t(user_id, vec)",
    "CREATE TABLE item_vectors AS SELECT * FROM (VALUES
        (10, vector('[1, 0]', 2)), (11, vector('[0, 1]', 2)), (12, vector('[1, 1]', 2)), (13, vector('[0, 0]', 2))
    ) AS t(item_id, vec)",
    "CREATE TABLE features AS SELECT * FROM (VALUES (1, 30.0, 'fr'), (2, 41.0, 'de'), (3, 25.0, 'fr'))
        AS t(user_id, age, country)",
    "CREATE VIEW candidates AS SELECT user_id, item_id, weight AS score FROM events",
    "CREATE VIEW lists AS SELECT user_id, item_id, 'a' AS method, row_number() OVER (PARTITION BY user_id ORDER BY item_id) AS rank FROM events",
    "CREATE TABLE blend AS SELECT * FROM (VALUES ('a', 1.0)) AS t(method, weight)",
];

/// One valid call of every function: the property test replaces some of its arguments with
/// random values, so the calls reach past argument checking into the computations.
fn valid_calls(dir: &str) -> Vec<(&'static str, Vec<String>)> {
    let calls: Vec<(&'static str, Vec<&str>)> = vec![
        ("als_explain", vec!["'DIR/als_model'", "'pairs'", "'user_items'", "3"]),
        ("array_cosine_similarity", vec!["vec", "vector('[1, 2]', 2)"]),
        ("array_inner_product", vec!["vec", "vec"]),
        ("attention_pool", vec!["vec", "vector('[1, 0]', 2)", "-0.5"]),
        (
            "attention_weights",
            vec!["user_id", "vec", "vector('[1, 0]', 2)", "0.1"],
        ),
        ("average_precision_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        ("bar", vec!["user_id", "0", "3", "10"]),
        ("calibration_kl", vec!["vec", "vector('[1, 2]', 2)"]),
        ("content_knn", vec!["'pairs'", "'item_vectors'", "2", "'user_ids'"]),
        ("decayed_mean", vec!["vec", "user_id", "7"]),
        ("dp_avg", vec!["weight", "0", "5", "1.0", "user_id", "7"]),
        ("dp_count", vec!["1.0", "user_id"]),
        ("dp_sum", vec!["weight", "0", "5", "1.0"]),
        ("dp_vector_mean", vec!["vec", "1.0", "1.0", "1e-6", "user_id"]),
        ("embed_text", vec!["'a red apple'", "16"]),
        ("embed_texts", vec!["'titles'", "16"]),
        ("fuse_ranks", vec!["'lists'", "'blend'", "5", "10"]),
        ("gini_index", vec!["weight"]),
        ("hit_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        ("intra_list_diversity", vec!["vec"]),
        ("item_knn", vec!["'pairs'", "2", "10", "1.0", "'user_ids'"]),
        ("item_popularity", vec!["'user_items'", "0.8"]),
        ("model_info", vec!["'DIR'"]),
        ("model_vectors", vec!["'MODEL'", "'items'"]),
        ("models", vec![]),
        ("ndcg_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        ("novelty", vec!["0.5"]),
        ("precision_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        ("pseudonymize", vec!["user_id", "'fuzz'"]),
        ("read_csv", vec!["'DIR/events.csv'", "','", "'utf-8'", "true"]),
        ("recall_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        ("reciprocal_rank_at_k", vec!["[1, 2, 3]", "[2]", "3"]),
        (
            "rerank_calibrated",
            vec!["'candidates'", "'item_vectors'", "'user_items'", "2", "0.5"],
        ),
        ("rerank_mmr", vec!["'candidates'", "'item_vectors'", "2", "0.5"]),
        (
            "recommend",
            vec!["'vectors'", "'item_vectors'", "2", "'cosine'", "'user_items'", "0.1"],
        ),
        (
            "sasrec_profiles",
            vec!["'DIR/text_sasrec'", "'sequences'", "false", "'item_vectors'"],
        ),
        ("similar_items", vec!["'item_vectors'", "2", "'dot'"]),
        ("top_k", vec!["item_id", "weight", "2"]),
        (
            "train_als",
            vec!["'pairs'", "'DIR/trained'", "4", "2", "0.1", "1.0", "7"],
        ),
        (
            "train_attention_query",
            vec!["'sequences'", "'DIR/trained'", "'item_vectors'", "3", "7"],
        ),
        (
            "train_item2vec",
            vec!["'pairs'", "'DIR/trained'", "4", "2", "2", "2", "7"],
        ),
        (
            "train_sasrec",
            vec![
                "'sequences'",
                "'DIR/sasrec'",
                "4",
                "1",
                "5",
                "1",
                "1",
                "0.1",
                "7",
                "0.01",
                "3",
                "'item_vectors'",
                "0.2",
            ],
        ),
        (
            "train_two_tower",
            vec!["'user_items'", "'DIR/tower'", "'features'", "4", "1", "7"],
        ),
        ("two_tower_profiles", vec!["'DIR/tower'", "'features'"]),
        ("user_knn", vec!["'pairs'", "2", "10", "1.0", "'user_ids'"]),
        ("vector", vec!["'[1, 2]'", "2"]),
        ("vector_mean", vec!["vec"]),
        ("vector_normalize", vec!["vec"]),
        ("vector_to_text", vec!["vec", "3"]),
    ];
    let model = format!("{dir}/model");
    calls
        .into_iter()
        .map(|(name, arguments)| {
            let arguments = arguments
                .into_iter()
                .map(|a| a.replace("MODEL", &model).replace("DIR", dir))
                .collect();
            (name, arguments)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_returns_a_result_or_an_error_for_any_arguments() {
    // The key pseudonymize's valid call names. SAFETY: set before the session exists, while
    // the runtime's worker threads are idle and nothing reads the environment.
    unsafe { std::env::set_var("RECFUSION_KEY_FUZZ", "a key for the property test") };
    let dir = tempfile::tempdir().expect("temporary directory");
    let dir_text = dir.path().display().to_string();
    // Random text lands in path arguments; relative paths must not write into the checkout.
    // (This binary holds one test, so changing its directory affects nothing else.)
    std::env::set_current_dir(dir.path()).expect("enter the temporary directory");
    // Read by read_csv's valid call; not among the random values, so no call overwrites it.
    std::fs::write(dir.path().join("events.csv"), "user_id,item_id\n1,10\n2,\n").expect("write csv");
    std::fs::write(dir.path().join("scratch.csv"), "a;b\n1;\n").expect("write csv");
    let options = SessionOptions {
        models_dir: Some(dir.path().join("models")),
        ..SessionOptions::default()
    };
    let ctx = new_session(&options).expect("session");
    for statement in SETUP {
        execute_sql(&ctx, statement)
            .await
            .expect("setup")
            .collect()
            .await
            .expect("setup");
    }
    // Trained models for the functions that read one.
    for train in [
        format!("SELECT * FROM train_item2vec('pairs', '{dir_text}/model', 4, 2)"),
        format!("SELECT * FROM train_als('pairs', '{dir_text}/als_model', 4, 2)"),
        format!("SELECT * FROM train_sasrec('sequences', '{dir_text}/sasrec', 4, 1, 5, 1, 1)"),
        format!(
            "SELECT * FROM train_sasrec('sequences', '{dir_text}/text_sasrec', 4, 1, 5, 1, 1, item_features => 'item_vectors')"
        ),
        format!("SELECT * FROM train_two_tower('user_items', '{dir_text}/tower', 'features', 4, 1)"),
    ] {
        execute_sql(&ctx, &train)
            .await
            .expect("train")
            .collect()
            .await
            .expect("train");
    }

    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorded = Arc::clone(&panics);
    std::panic::set_hook(Box::new(move |info| {
        recorded.lock().map(|mut list| list.push(info.to_string())).ok();
    }));

    let values = values(&dir_text);
    let valid = valid_calls(&dir_text);
    let mut random = Random(0x5eed_2026_1128);
    let mut failures = Vec::new();
    let mut outcomes = [0usize; 3]; // results, errors, cancelled
    let mut unnamed = Vec::new();
    for function in function_docs() {
        let Some((_, seed)) = valid.iter().find(|(name, _)| *name == function.name) else {
            panic!("{} has no valid call in valid_calls(): add one", function.name);
        };
        for call_number in 0..CALLS_PER_FUNCTION {
            // The first call is the valid one; then one or two arguments are replaced, and
            // now and then one is dropped or added.
            let mut arguments = seed.clone();
            if call_number > 0 {
                for _ in 0..1 + random.below(2) {
                    let position = random.below(arguments.len() + 1);
                    let value = values[random.below(values.len())].clone();
                    match (position < arguments.len(), random.below(8)) {
                        (true, 0) => {
                            arguments.truncate(position);
                        }
                        (true, _) => arguments[position] = value,
                        (false, _) => arguments.push(value),
                    }
                }
            }
            let call = format!("{}({})", function.name, arguments.join(", "));
            let sql = match function.kind {
                FunctionKind::Table => format!("SELECT * FROM {call} LIMIT 20"),
                FunctionKind::Scalar | FunctionKind::Aggregate => {
                    format!("SELECT {call} FROM vectors JOIN pairs USING (user_id)")
                }
            };
            let before = panics.lock().map(|list| list.len()).unwrap_or(0);
            let run = async {
                let frame = execute_sql(&ctx, &sql).await?;
                frame.collect().await
            };
            let outcome = tokio::time::timeout(CALL_TIMEOUT, run).await;
            match &outcome {
                Ok(Ok(_)) => outcomes[0] += 1,
                Ok(Err(error)) => {
                    outcomes[1] += 1;
                    if !error.to_string().contains(function.name.as_str()) {
                        unnamed.push(format!("{sql}\n    {error}"));
                    }
                }
                Err(_) => outcomes[2] += 1,
            }
            if call_number == 0 && !matches!(outcome, Ok(Ok(_))) {
                failures.push(format!("the valid call failed: {sql}: {outcome:?}"));
            }
            let after = panics.lock().map(|list| list[before..].to_vec()).unwrap_or_default();
            if !after.is_empty() {
                failures.push(format!("{sql}\n    {}", after.join("\n    ")));
            }
        }
    }
    let _ = std::panic::take_hook();
    let [results, errors, cancelled] = outcomes;
    eprintln!("{results} results, {errors} errors, {cancelled} cancelled after {CALL_TIMEOUT:?}");
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
    assert!(
        unnamed.is_empty(),
        "errors that do not name the function:\n{}",
        unnamed.join("\n")
    );
    assert!(
        results > function_docs().len() && errors > 0,
        "the random calls should meet both results and errors"
    );
}
