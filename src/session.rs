//! Session setup: a DataFusion `SessionContext` with every recfusion function registered,
//! `information_schema` on (so `SHOW FUNCTIONS` and `\d` work), file paths usable as tables,
//! and an optional memory limit.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::catalog::{DynamicFileCatalog, TableProvider, UrlTableFactory};
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion_session::SessionStore;

use datafusion::common::{Result, plan_err};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use recfusion_udfs::models::directory::ModelsDirectory;

use crate::cluster::ClusterOptions;

/// How many of the largest memory consumers an out-of-memory error names.
const TRACKED_CONSUMERS: NonZeroUsize = NonZeroUsize::new(5).expect("5 is not zero");

/// How to build a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Upper bound on the memory queries may use, in bytes; queries that need more spill or fail.
    pub memory_limit: Option<usize>,
    /// Where models kept by name live (default: `$RECFUSION_MODELS`, else
    /// `recfusion/models` in the user's data directory).
    pub models_dir: Option<std::path::PathBuf>,
}

/// A session with recfusion's functions, ready for SQL over files.
pub fn new_session(options: &SessionOptions) -> Result<SessionContext> {
    let ctx = with_url_tables(SessionContext::new_with_state(base_state(options)?));
    recfusion_udfs::register_all(&ctx)?;
    Ok(ctx)
}

/// A session like [`new_session`]'s whose queries run on a cluster.
pub async fn new_cluster_session(options: &SessionOptions, cluster: &ClusterOptions) -> Result<SessionContext> {
    crate::cluster::connect(base_state(options)?, cluster).await
}

/// `ctx` with file paths usable as tables (`SELECT * FROM 'events.parquet'`), as
/// `SessionContext::enable_url_table` gives, except for the names of table functions:
/// DataFusion looks every name in `FROM` up as a table before planning, `models()` and
/// `recommend(…)` included, so a directory called `models` beside the session was read as a
/// table and failed the query.
pub fn with_url_tables(ctx: SessionContext) -> SessionContext {
    let mut functions: HashSet<String> = ctx.state().table_functions().keys().cloned().collect();
    functions.extend(recfusion_udfs::table_functions().iter().map(|f| f.name().to_string()));
    let store = SessionStore::new();
    let factory = Arc::new(FilesButFunctions {
        files: DynamicListTableFactory::new(store),
        functions,
    });
    let catalogs = Arc::new(DynamicFileCatalog::new(
        Arc::clone(ctx.state().catalog_list()),
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let session_id = ctx.session_id();
    let ctx: SessionContext = ctx
        .into_state_builder()
        .with_session_id(session_id)
        .with_catalog_list(catalogs)
        .build()
        .into();
    factory.files.session_store().with_state(ctx.state_weak_ref());
    ctx
}

/// DataFusion's URL tables, never for a table function's name.
#[derive(Debug)]
struct FilesButFunctions {
    files: DynamicListTableFactory,
    functions: HashSet<String>,
}

#[async_trait::async_trait]
impl UrlTableFactory for FilesButFunctions {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if self.functions.contains(url) {
            return Ok(None);
        }
        refuse_special_file(url)?;
        self.files.try_new(url).await
    }
}

/// Fails when `location` is a local FIFO, socket or device: reading one blocks until another
/// process writes (where Ctrl-C cannot reach the blocked read) or never ends. `stat` answers
/// without opening, so this check itself cannot block.
pub fn refuse_special_file(location: &str) -> Result<()> {
    let path = location.strip_prefix("file://").unwrap_or(location);
    if let Ok(metadata) = std::fs::metadata(path)
        && !metadata.is_file()
        && !metadata.is_dir()
    {
        return datafusion::common::plan_err!(
            "'{location}' is not a regular file or a directory (a FIFO, socket or device), so it cannot be read as a table"
        );
    }
    Ok(())
}

fn base_state(options: &SessionOptions) -> Result<SessionState> {
    let mut config = SessionConfig::new().with_information_schema(true);
    estimate_joins_of_joins(&mut config);
    if let Some(dir) = &options.models_dir {
        config = config.with_extension(Arc::new(ModelsDirectory(dir.clone())));
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        // A fair pool gives every spilling operator (sorts, aggregations) its share, so a big
        // ORDER BY spills to disk; a greedy pool lets the first sorter take everything and
        // the next one fail. Tracking names the largest consumers in the error.
        let pool = FairSpillPool::new(limit);
        runtime = runtime.with_memory_pool(Arc::new(TrackConsumersPool::new(pool, TRACKED_CONSUMERS)));
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(Arc::new(runtime.build()?))
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(crate::yield_points::JoinsYield))
        .with_physical_optimizer_rule(Arc::new(recfusion_udfs::files::wide_scans::BoundWideScans))
        .build();
    Ok(state)
}

/// Turns on DataFusion's statistics registry, which estimates a join's output from its inputs'
/// distinct counts and, where those are unknown (as for every in-memory table), as bounded by
/// their product. Without it a join's output is estimated at its smaller input's row count, so the
/// join above builds its hash table on that output: pooling a MovieLens-1M-sized history of
/// 384-dimensional item vectors against per-user profiles (`history JOIN item_vectors JOIN
/// profiles GROUP BY user`) collected 1.35 GB of joined rows and peaked at 6.9 GB, where building
/// on the 6,040 profiles holds 9 MB.
fn estimate_joins_of_joins(config: &mut SessionConfig) {
    config.options_mut().optimizer.use_statistics_registry = true;
}

/// Parses a size such as `512M`, `2G`, `1.5g` or `1048576` into bytes.
pub fn parse_memory_size(text: &str) -> Result<usize> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let multiplier: f64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" => 1024.0,
        "M" | "MB" => 1024.0 * 1024.0,
        "G" | "GB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" => 1024.0f64.powi(4),
        _ => return plan_err!("unknown unit '{unit}' in '{text}' (use K, M, G or T)"),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 => Ok((n * multiplier) as usize),
        _ => plan_err!("expected a positive size such as 512M or 2G, got '{text}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_memory_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory_size("1000").unwrap(), 1000);
        assert!(parse_memory_size("lots").is_err());
        assert!(parse_memory_size("5Q").is_err());
    }
}
