//! Embedding recfusion in a Rust program: one session with every recfusion function.
//! Run with `cargo run --example embed`.

use recfusion::{SessionOptions, new_session};

#[tokio::main]
async fn main() -> datafusion::common::Result<()> {
    let ctx = new_session(&SessionOptions::default())?;
    let df = ctx
        .sql("SELECT array_cosine_similarity([1.0, 0.0], [1.0, 1.0]) AS cosine, vector_to_text(vector_normalize([3, 4])) AS unit")
        .await?;
    df.show().await?;
    Ok(())
}
