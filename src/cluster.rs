//! Running on an Apache DataFusion Ballista cluster, from the client's side: connecting a
//! session ([`connect`]), what stays at the client ([`ClientPlanner`]: reading attached SQLite
//! tables, appending to in-memory tables), and where tables created in the session live
//! ([`create_table`]: with the query, or as Parquet under the cluster directory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use ballista::prelude::SessionContextExt;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, TableReference, plan_err};
use datafusion::config::{ConfigExtension, ExtensionOptions};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::logical_expr::{
    CreateMemoryTable, DmlStatement, Expr, LogicalPlan, LogicalPlanBuilder, TableScan, TableScanBuilder, WriteOp, lit,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use recfusion_udfs::table_function::planner::TableCallPlanner;

pub use recfusion_cluster::MEMORY_TABLE_CAP;

/// Where a session runs its queries.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The scheduler, `df://host:port`.
    pub url: String,
    /// Where tables created in the session that are too large to travel with a query are
    /// written as Parquet: a directory every executor reads at the same path.
    pub dir: Option<PathBuf>,
    /// Partitions a query is split into (default: 16, Ballista's).
    pub target_partitions: Option<usize>,
}

/// Marks a session as a cluster client, in its configuration.
#[derive(Debug, Clone, Default)]
struct ClusterClient {
    dir: Option<PathBuf>,
}

impl ExtensionOptions for ClusterClient {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        plan_err!("recfusion.cluster.{key} cannot be set")
    }
    fn entries(&self) -> Vec<datafusion::config::ConfigEntry> {
        Vec::new()
    }
}

impl ConfigExtension for ClusterClient {
    const PREFIX: &'static str = "recfusion_cluster";
}

/// A session whose queries run on the cluster at `options.url`, built from `state` (a
/// session as [`crate::new_session`] builds it, before its functions are registered).
pub async fn connect(state: SessionState, options: &ClusterOptions) -> Result<SessionContext> {
    reach_scheduler(&options.url).await?;
    let mut config = recfusion_cluster::cluster_config(state.config().clone());
    config = config
        .with_target_partitions(options.target_partitions.unwrap_or(16))
        .with_option_extension(ClusterClient {
            dir: options.dir.clone(),
        });
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build();
    let ctx = crate::session::with_url_tables(SessionContext::remote_with_state(&options.url, state).await?);
    // Connecting replaced the session's function lists with Ballista's: ours go in after.
    recfusion_udfs::register_functions(&ctx)?;
    let state_ref = ctx.state_ref();
    let mut state = state_ref.write();
    let planner = ClientPlanner {
        cluster: Arc::clone(state.query_planner()),
    };
    *state = SessionStateBuilder::new_from_existing(state.clone())
        .with_query_planner(Arc::new(planner))
        .build();
    drop(state);
    Ok(ctx)
}

/// Fails with a sentence, not at the first query with a transport error, when nothing listens
/// at the scheduler's address.
async fn reach_scheduler(url: &str) -> Result<()> {
    let address = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .trim_end_matches('/');
    let address = if address.contains(':') {
        address.to_string()
    } else {
        format!("{address}:50050")
    };
    let attempt = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(&address),
    );
    match attempt.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            plan_err!("cannot reach the scheduler at {address}: {e} (is `recfusion scheduler` running there?)")
        }
        Err(_) => plan_err!("cannot reach the scheduler at {address}: no answer in 10 s"),
    }
}

fn client(ctx: &SessionContext) -> Option<ClusterClient> {
    ctx.state()
        .config()
        .options()
        .extensions
        .get::<ClusterClient>()
        .cloned()
}

/// Plans a cluster client's statements: most go to the cluster. A statement over attached
/// SQLite tables and in-memory tables only runs here, where the SQLite file is; tables only
/// this process can read (SQLite tables, `generate_series`) in a statement that also reads
/// files are read here first and travel with the query, up to [`MEMORY_TABLE_CAP`] each; an
/// `INSERT` into an in-memory table runs its query on the cluster and appends the rows here.
#[derive(Debug)]
pub struct ClientPlanner {
    cluster: Arc<dyn QueryPlanner + Send + Sync>,
}

#[async_trait]
impl QueryPlanner for ClientPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let LogicalPlan::Dml(DmlStatement {
            target,
            op: WriteOp::Insert(op),
            input,
            ..
        }) = logical_plan
        {
            let provider = source_as_provider(target)?;
            if provider.downcast_ref::<MemTable>().is_some() {
                let rows = self.create_physical_plan(input, session).await?;
                return provider.insert_into(session, rows, *op).await;
            }
        }
        let tables = Tables::of(logical_plan)?;
        let here = DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(TableCallPlanner)]);
        if tables.on_cluster.is_empty() && !tables.held_here.is_empty() {
            return here.create_physical_plan(logical_plan, session).await;
        }
        let logical_plan = &one_row_as_values(logical_plan)?;
        if tables.held_here.is_empty() {
            return self.cluster.create_physical_plan(logical_plan, session).await;
        }
        let mut read = HashMap::new();
        for scan in tables.held_here {
            let rows = here
                .create_physical_plan(&LogicalPlan::TableScan(scan.clone()), session)
                .await?;
            let batches = collect(rows, session.task_ctx()).await?;
            let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
            if bytes > MEMORY_TABLE_CAP {
                return plan_err!(
                    "the table '{}' is read by this process only (an attached SQLite table or a table \
                     function's rows) and holds more than {} MB, the most that travels to the cluster with a \
                     query; write it where every executor can read it first, e.g. COPY (SELECT * FROM {}) TO \
                     'DIR/{}.parquet', and read that file",
                    scan.table_name,
                    MEMORY_TABLE_CAP >> 20,
                    scan.table_name,
                    scan.table_name.table()
                );
            }
            let schema = Arc::clone(scan.projected_schema.inner());
            read.insert(
                scan.table_name.clone(),
                Arc::new(MemTable::try_new(schema, vec![batches])?),
            );
        }
        let shipped = logical_plan
            .clone()
            .transform_up_with_subqueries(|node| match &node {
                LogicalPlan::TableScan(scan) if read.contains_key(&scan.table_name) => {
                    let table = Arc::clone(&read[&scan.table_name]) as Arc<dyn TableProvider>;
                    let scan = TableScanBuilder::new(scan.table_name.clone(), provider_as_source(table)).build()?;
                    Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
                }
                _ => Ok(Transformed::no(node)),
            })?
            .data;
        self.cluster.create_physical_plan(&shipped, session).await
    }
}

/// The plan with every one-row relation (`SELECT 'd', 99`) made a one-row `VALUES`: on a
/// Ballista 55 cluster of several executors, a union of a table and a one-row relation never
/// finishes (the one-row leaf, restricted per task, loses its partition), while `VALUES`
/// travels as data and is restricted correctly.
fn one_row_as_values(plan: &LogicalPlan) -> Result<LogicalPlan> {
    let rewritten = plan.clone().transform_up_with_subqueries(|node| match &node {
        LogicalPlan::EmptyRelation(empty) if empty.produce_one_row && empty.schema.fields().is_empty() => {
            let values = LogicalPlanBuilder::values(vec![vec![lit(true)]])?
                .project(Vec::<Expr>::new())?
                .build()?;
            Ok(Transformed::yes(values))
        }
        _ => Ok(Transformed::no(node)),
    })?;
    Ok(rewritten.data)
}

/// The tables a plan scans: those read on the cluster, and those only this process can read
/// (in-memory tables travel with the query, so they are neither).
#[derive(Default)]
struct Tables {
    on_cluster: Vec<TableReference>,
    held_here: Vec<TableScan>,
}

impl Tables {
    fn of(plan: &LogicalPlan) -> Result<Self> {
        let mut tables = Self::default();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let provider = source_as_provider(&scan.source)?;
                if provider.downcast_ref::<MemTable>().is_some() {
                } else if provider.downcast_ref::<ListingTable>().is_some()
                    || provider.downcast_ref::<ViewTable>().is_some()
                {
                    tables.on_cluster.push(scan.table_name.clone());
                } else {
                    tables.held_here.push(scan.clone());
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(tables)
    }
}

/// `CREATE TABLE … AS` on a cluster client: the query runs on the cluster and its rows stream
/// back; up to [`MEMORY_TABLE_CAP`] they are kept here as an in-memory table (which travels
/// with each query that reads it), beyond it they go on into a Parquet file under the cluster
/// directory, which becomes the table. `None` when `ctx` is not a cluster client.
pub async fn create_table(ctx: &SessionContext, create: &CreateMemoryTable) -> Result<Option<DataFrame>> {
    let Some(client) = client(ctx) else {
        return Ok(None);
    };
    let name = &create.name;
    if ctx.table_exist(name.clone())? {
        if create.if_not_exists {
            return ctx.read_empty().map(Some);
        }
        if !create.or_replace {
            return plan_err!("Table '{name}' already exists");
        }
    }
    let input = DataFrame::new(ctx.state(), create.input.as_ref().clone());
    let mut rows = input.execute_stream().await?;
    // The types of the rows as they come back, which can differ from the plan's (text comes
    // back as Utf8, lists with the cluster's field names).
    let mut schema = rows.schema();
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut held_bytes = 0;
    let mut file: Option<ParquetFile> = None;
    while let Some(batch) = rows.next().await {
        let batch = batch?;
        if held.is_empty() && file.is_none() {
            schema = batch.schema();
        }
        if let Some(file) = &mut file {
            file.write(&batch)?;
            continue;
        }
        held_bytes += batch.get_array_memory_size();
        held.push(batch);
        if held_bytes > MEMORY_TABLE_CAP {
            let Some(dir) = &client.dir else {
                return plan_err!(
                    "CREATE TABLE {name}: the result holds more than {} MB, the most a table created in this \
                     session can carry to the cluster with a query; start recfusion with --cluster-dir DIR, a \
                     directory every executor reads at the same path, and larger tables are kept there as Parquet",
                    MEMORY_TABLE_CAP >> 20
                );
            };
            let mut opened = ParquetFile::create(dir, name, &schema)?;
            for batch in held.drain(..) {
                opened.write(&batch)?;
            }
            file = Some(opened);
        }
    }
    let provider: Arc<dyn TableProvider> = match file {
        Some(file) => {
            let path = file.finish()?;
            let table = ctx
                .read_parquet(path.display().to_string(), ParquetReadOptions::default())
                .await?;
            table.into_view()
        }
        None => {
            let partitions = ctx.state().config().target_partitions().max(1);
            Arc::new(MemTable::try_new(schema, spread(held, partitions))?)
        }
    };
    if create.or_replace {
        ctx.deregister_table(name.clone())?;
    }
    ctx.register_table(name.clone(), provider)?;
    ctx.read_empty().map(Some)
}

/// Batches dealt round-robin into `partitions` partitions, so the cluster reads them in
/// parallel.
fn spread(batches: Vec<RecordBatch>, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let mut spread = vec![Vec::new(); partitions.min(batches.len()).max(1)];
    let count = spread.len();
    for (n, batch) in batches.into_iter().enumerate() {
        spread[n % count].push(batch);
    }
    spread
}

/// A table's Parquet file under the cluster directory, written under a hidden name until
/// complete.
struct ParquetFile {
    writer: Option<ArrowWriter<std::fs::File>>,
    partial: PathBuf,
    path: PathBuf,
}

// A statement that fails part-way leaves no file behind.
impl Drop for ParquetFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

impl ParquetFile {
    fn create(dir: &Path, name: &TableReference, schema: &SchemaRef) -> Result<Self> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            DataFusionError::Execution(format!(
                "CREATE TABLE {name}: {what} in the cluster directory {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(|e| failed("cannot create the directory", &e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let file_name = format!("{}-{}-{stamp}.parquet", name.table(), std::process::id());
        let path = dir.join(&file_name);
        let partial = dir.join(format!(".{file_name}.partial"));
        let file = std::fs::File::create(&partial).map_err(|e| failed("cannot create a file", &e))?;
        let writer = ArrowWriter::try_new(file, Arc::clone(schema), None)?;
        Ok(Self {
            writer: Some(writer),
            partial,
            path,
        })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match &mut self.writer {
            Some(writer) => Ok(writer.write(batch)?),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> Result<PathBuf> {
        if let Some(writer) = self.writer.take() {
            let closed = writer.close().map_err(DataFusionError::from).and_then(|_| {
                std::fs::rename(&self.partial, &self.path)
                    .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.path.display())))
            });
            if let Err(error) = closed {
                let _ = std::fs::remove_file(&self.partial);
                return Err(error);
            }
        }
        Ok(self.path.clone())
    }
}
