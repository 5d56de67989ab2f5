//! Every recfusion plan node survives the trip to a scheduler and on to an executor: a query
//! using each kind of function is encoded with recfusion's codecs and decoded again, and the
//! logical and physical plans read the same after as before.

use std::sync::Arc;

use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use datafusion_proto::bytes::{
    logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use recfusion_cluster::{RecfusionLogicalCodec, RecfusionPhysicalCodec};

async fn run(ctx: &SessionContext, sql: &str) {
    ctx.sql(sql).await.unwrap().collect().await.unwrap();
}

async fn session(dir: &str) -> SessionContext {
    let ctx = SessionContext::new();
    recfusion_udfs::register_all(&ctx).unwrap();
    let setup = [
        "CREATE TABLE events AS SELECT * FROM (VALUES (10, 1, 100), (10, 2, 200), (10, 3, 250), (20, 2, 100), \
         (20, 3, 300), (30, 1, 50), (30, 3, 60)) AS t(user_id, item_id, ts)",
        "CREATE TABLE seen AS SELECT user_id, item_id FROM events",
        "CREATE TABLE items AS SELECT item_id, arrow_cast(vec, 'FixedSizeList(2, Float32)') AS vec FROM (VALUES \
         (1, [1.0, 0.0]), (2, [0.0, 1.0]), (3, [0.7, 0.7])) AS t(item_id, vec)",
        "CREATE TABLE users AS SELECT user_id, arrow_cast(vec, 'FixedSizeList(2, Float32)') AS vec FROM (VALUES \
         (10, [1.0, 0.2]), (20, [0.1, 1.0])) AS t(user_id, vec)",
        "CREATE TABLE profiles AS SELECT * FROM (VALUES (10, 31), (20, 45), (30, 22)) AS t(user_id, age)",
        "CREATE VIEW user_ids AS SELECT user_id FROM users",
        "CREATE VIEW nothing AS SELECT * FROM seen WHERE false",
        "CREATE TABLE texts AS SELECT * FROM (VALUES (1, 'red shoes'), (2, 'blue hat')) AS t(item_id, title)",
    ];
    for sql in setup {
        run(&ctx, sql).await;
    }
    let models = [
        format!("SELECT * FROM train_als('seen', '{dir}/als.safetensors', 2, 2)"),
        format!("SELECT * FROM train_sasrec('events', '{dir}/sasrec.safetensors', 4, 1, 5)"),
        format!("SELECT * FROM train_two_tower('seen', '{dir}/tt.safetensors', 'profiles', 4)"),
    ];
    for sql in models {
        run(&ctx, &sql).await;
    }
    ctx
}

fn queries(dir: &str) -> Vec<String> {
    let table_functions = [
        "SELECT * FROM recommend('users', 'items', 2, 'cosine', 'seen')".to_string(),
        "SELECT * FROM item_knn('seen', 2, 10, 0, 'user_ids')".to_string(),
        // an empty input keeps its columns
        "SELECT * FROM item_knn('nothing', 2)".to_string(),
        "SELECT * FROM user_knn('seen', 2)".to_string(),
        "SELECT * FROM content_knn('seen', 'items', 2)".to_string(),
        "SELECT * FROM similar_items('items', 2, 'dot')".to_string(),
        format!("SELECT * FROM train_als('seen', '{dir}/plan.safetensors', 4, 3, 0.01, 2.0, 7)"),
        format!("SELECT * FROM train_item2vec('events', '{dir}/plan.safetensors', 8)"),
        format!("SELECT * FROM train_sasrec('events', '{dir}/plan.safetensors', 8, 2, 20)"),
        format!("SELECT * FROM sasrec_profiles('{dir}/sasrec.safetensors', 'events')"),
        format!("SELECT * FROM train_two_tower('seen', '{dir}/plan.safetensors', 'profiles', 8)"),
        format!("SELECT * FROM two_tower_profiles('{dir}/tt.safetensors', 'profiles')"),
        format!("SELECT * FROM train_attention_query('events', '{dir}/plan.safetensors', 'items', 10)"),
        format!("SELECT * FROM model_vectors('{dir}/als.safetensors', 'users')"),
        format!("SELECT * FROM model_info('{dir}/als.safetensors')"),
        "SELECT * FROM embed_texts('texts', 32)".to_string(),
        "SELECT * FROM read_csv('../examples/data/items.csv')".to_string(),
    ];
    let others = [
        // scalar functions, an aggregate with state, a join and a window around a table function
        "SELECT item_id, vector_to_text(vector_normalize(vec), 3), array_cosine_similarity(vec, vec) FROM items"
            .to_string(),
        "SELECT user_id, vector_mean(i.vec), attention_pool(i.vec, i.vec) FROM seen s JOIN items i USING (item_id) \
         GROUP BY user_id"
            .to_string(),
        "SELECT r.user_id, r.item_id, row_number() OVER (PARTITION BY r.user_id ORDER BY r.score DESC) \
         FROM recommend('users', 'items', 3) r JOIN items i ON r.item_id = i.item_id"
            .to_string(),
    ];
    table_functions.into_iter().chain(others).collect()
}

#[tokio::test]
async fn every_plan_node_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let ctx = session(&dir).await;
    let task = ctx.task_ctx();
    let logical_codec = RecfusionLogicalCodec::default();
    let physical_codec = RecfusionPhysicalCodec::default();
    for sql in queries(&dir) {
        let plan = ctx.sql(&sql).await.unwrap().into_optimized_plan().unwrap();
        let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &logical_codec)
            .unwrap_or_else(|e| panic!("encoding the logical plan of {sql}: {e}"));
        let decoded = logical_plan_from_bytes_with_extension_codec(&bytes, &task, &logical_codec)
            .unwrap_or_else(|e| panic!("decoding the logical plan of {sql}: {e}"));
        assert_eq!(
            plan.display_indent_schema().to_string(),
            decoded.display_indent_schema().to_string(),
            "{sql}"
        );

        let physical = ctx.state().create_physical_plan(&plan).await.unwrap();
        let bytes = physical_plan_to_bytes_with_extension_codec(Arc::clone(&physical), &physical_codec)
            .unwrap_or_else(|e| panic!("encoding the physical plan of {sql}: {e}"));
        let decoded = physical_plan_from_bytes_with_extension_codec(&bytes, &task, &physical_codec)
            .unwrap_or_else(|e| panic!("decoding the physical plan of {sql}: {e}"));
        assert_eq!(
            displayable(physical.as_ref()).indent(true).to_string(),
            displayable(decoded.as_ref()).indent(true).to_string(),
            "{sql}"
        );
        assert_eq!(physical.schema(), decoded.schema(), "{sql}");
    }
}

#[tokio::test]
async fn an_in_memory_table_travels_by_value() {
    let ctx = SessionContext::new();
    recfusion_udfs::register_all(&ctx).unwrap();
    run(
        &ctx,
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)",
    )
    .await;
    let plan = ctx.sql("SELECT * FROM t").await.unwrap().logical_plan().clone();
    let codec = RecfusionLogicalCodec::default();
    let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &codec).unwrap();
    let decoded = logical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap();
    let before = ctx.execute_logical_plan(plan).await.unwrap().collect().await.unwrap();
    let after = ctx
        .execute_logical_plan(decoded)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn an_in_memory_table_over_the_cap_is_refused_by_name() {
    let ctx = SessionContext::new();
    let rows = recfusion_cluster::MEMORY_TABLE_CAP / 8 + 1024;
    run(
        &ctx,
        &format!("CREATE TABLE big AS SELECT value FROM generate_series(1, {rows})"),
    )
    .await;
    let plan = ctx.sql("SELECT * FROM big").await.unwrap().logical_plan().clone();
    let error = logical_plan_to_bytes_with_extension_codec(&plan, &RecfusionLogicalCodec::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("'big'") && error.contains("--cluster-dir"), "{error}");
}
