//! What the MovieLens benchmark programs share: running SQL, and the leave-last-out split of
//! MovieLens 100K (each user's rows ordered by (timestamp, item), the last one held out).

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;

pub async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    recfusion::execute_sql(ctx, sql).await?.collect().await
}

/// The data directory given as the first argument (default `../shared/data/ml-100k`), or
/// `None` after saying so when it holds no `u.data`.
pub fn movielens_dir(args: &[String]) -> Option<PathBuf> {
    let data = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/ml-100k"));
    if data.join("u.data").exists() {
        Some(data)
    } else {
        println!("skipped: no MovieLens data at {} (pass its directory)", data.display());
        None
    }
}

/// Creates `truth` (each user's last item), `train` (user_id, item_id: the rows before it) and
/// `sequence` (the same rows with their timestamp, ts).
pub async fn leave_last_out(ctx: &SessionContext, data: &Path) -> Result<()> {
    let statements = [
        format!(
            "CREATE TABLE ratings AS SELECT column_1 AS user_id, column_2 AS item_id, column_4 AS ts \
             FROM read_csv('{}/u.data', '\\t', 'utf-8', false)",
            data.display()
        ),
        "CREATE TABLE ordered AS SELECT user_id, item_id, ts, \
         ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY ts DESC, item_id DESC) AS from_end FROM ratings"
            .to_string(),
        "CREATE TABLE train AS SELECT user_id, item_id FROM ordered WHERE from_end > 1".to_string(),
        "CREATE TABLE sequence AS SELECT user_id, item_id, ts FROM ordered WHERE from_end > 1".to_string(),
        "CREATE TABLE truth AS SELECT user_id, item_id FROM ordered WHERE from_end = 1".to_string(),
    ];
    for sql in &statements {
        query(ctx, sql).await?;
    }
    Ok(())
}
