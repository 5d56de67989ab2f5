//! Recommendations from vectors: the table function
//! `recommend(users, items, k [, metric [, exclude [, threshold]]])`.
//!
//! `users` and `items` name tables or views whose first column is an id and second a vector;
//! `exclude` names a table of (user, item) interactions whose pairs are never recommended. It
//! returns one row per (user, rank, item, score), best first. Candidate filters go into the
//! `items` view, so they apply before the top-k and a user gets k items whenever k candidates
//! remain. It runs as its own operator ([`RecommendExec`]): the items become one flat f32
//! matrix, users stream through in blocks scored with one matrix multiply each, and each user
//! keeps a bounded list of its best items ([`topk`]), in parallel on every core.

pub mod interactions;
pub mod knn;
pub mod top_k_agg;
pub mod topk;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Float32Array, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, TableReference, exec_err, plan_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect, execute_stream,
};
use futures::StreamExt;

use crate::vector::Vectors;
use topk::{ItemMatrix, Metric, Selection};

const NAME: &str = "recommend";

/// How `\df` shows the function.
pub const SYNTAX: &str = "recommend(users, items, k [, metric [, exclude [, threshold]]])";
pub const DESCRIPTION: &str = "The k best items for every user by dot, cosine or l2 between user and item vectors \
    (tables or views of (id, vector)), skipping the (user, item) pairs of the exclude table. Rows: \
    (user, rank, item, score).";

/// The `recommend` table function.
#[derive(Debug, Default)]
pub struct Recommend;

/// Options of one call.
#[derive(Debug, Clone)]
struct Options {
    k: usize,
    metric: Metric,
    threshold: Option<f32>,
}

impl TableFunctionImpl for Recommend {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(3..=6).contains(&exprs.len()) {
            return plan_err!(
                "{NAME}: expected recommend(users, items, k [, metric [, exclude [, threshold]]]), got {} arguments",
                exprs.len()
            );
        }
        let session = args.session();
        let users = resolve(
            NAME,
            session,
            &text_argument(NAME, exprs, 0, "users")?.unwrap_or_default(),
            "users",
        )?;
        let items = resolve(
            NAME,
            session,
            &text_argument(NAME, exprs, 1, "items")?.unwrap_or_default(),
            "items",
        )?;
        let k = match literal(exprs, 2) {
            Some(ScalarValue::Int64(Some(k))) if k > 0 => k as usize,
            other => return plan_err!("{NAME}: argument 3 (k) must be a positive integer, got {}", show(other)),
        };
        let metric = match text_argument(NAME, exprs, 3, "metric")? {
            None => Metric::Dot,
            Some(name) => Metric::parse(&name).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{NAME}: argument 4 (metric) must be 'dot', 'cosine' or 'l2', got '{name}'"
                ))
            })?,
        };
        let exclude = match text_argument(NAME, exprs, 4, "exclude")? {
            Some(name) if !name.is_empty() => Some(resolve(NAME, session, &name, "exclude")?),
            _ => None,
        };
        let threshold = match literal(exprs, 5) {
            None | Some(ScalarValue::Null) => None,
            Some(value) => match value.cast_to(&DataType::Float32) {
                Ok(ScalarValue::Float32(Some(t))) if t.is_finite() => Some(t),
                _ => return plan_err!("{NAME}: argument 6 (threshold) must be a number, got {value}"),
            },
        };
        check_columns(&users.schema(), "users", true)?;
        check_columns(&items.schema(), "items", true)?;
        if let Some(exclude) = &exclude {
            check_columns(&exclude.schema(), "exclude", false)?;
        }
        let user_field = users.schema().field(0).clone();
        let item_field = items.schema().field(0).clone();
        let item_name = if item_field.name() == user_field.name() {
            format!("item_{}", item_field.name())
        } else {
            item_field.name().clone()
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new(user_field.name(), user_field.data_type().clone(), true),
            Field::new("rank", DataType::UInt64, false),
            Field::new(item_name, item_field.data_type().clone(), true),
            Field::new("score", DataType::Float32, false),
        ]));
        Ok(Arc::new(RecommendTable {
            users,
            items,
            exclude,
            options: Options { k, metric, threshold },
            schema,
        }))
    }
}

/// Argument `index` as a literal; an expression reads as text naming it, so errors show it.
pub(crate) fn literal(exprs: &[Expr], index: usize) -> Option<ScalarValue> {
    match exprs.get(index)? {
        Expr::Literal(value, _) => Some(value.clone()),
        Expr::Negative(inner) => match inner.as_ref() {
            Expr::Literal(value, _) => value.arithmetic_negate().ok(),
            other => Some(ScalarValue::Utf8(Some(format!("-{other}")))),
        },
        other => Some(ScalarValue::Utf8(Some(other.to_string()))),
    }
}

fn show(value: Option<ScalarValue>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "nothing".to_string())
}

/// A string argument (`None` when absent or NULL).
pub(crate) fn text_argument(function: &str, exprs: &[Expr], index: usize, role: &str) -> Result<Option<String>> {
    match literal(exprs, index) {
        None | Some(ScalarValue::Null) => Ok(None),
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
            Ok(Some(s))
        }
        Some(other) => plan_err!(
            "{function}: argument {} ({role}) must be a string (a table or view name), got {other}",
            index + 1
        ),
    }
}

/// The table or view `name`, as the session resolves it.
pub(crate) fn resolve(function: &str, session: &dyn Session, name: &str, role: &str) -> Result<Arc<dyn TableProvider>> {
    let defaults = &session.config_options().catalog;
    let reference = TableReference::from(name).resolve(&defaults.default_catalog, &defaults.default_schema);
    let schema = session
        .catalog_list()
        .catalog(&reference.catalog)
        .and_then(|catalog| catalog.schema(&reference.schema));
    let table = match schema {
        // Catalog lookups are async for remote catalogs; ours answer at once.
        Some(schema) => futures::executor::block_on(schema.table(&reference.table))?,
        None => None,
    };
    table.ok_or_else(|| DataFusionError::Plan(format!("{function}: {role} table '{name}' not found")))
}

/// The first columns hold an id and, for users and items, a vector.
fn check_columns(schema: &SchemaRef, role: &str, vectors: bool) -> Result<()> {
    if schema.fields().len() < 2 {
        let expected = if vectors { "(id, vector)" } else { "(user, item)" };
        return plan_err!("{NAME}: the {role} table needs its first two columns to be {expected}");
    }
    if vectors {
        crate::vector::check_vector_type(NAME, 2, schema.field(1).data_type()).map_err(|_| {
            DataFusionError::Plan(format!(
                "{NAME}: the second column of the {role} table must be a vector, got {}",
                schema.field(1).data_type()
            ))
        })?;
    }
    Ok(())
}

#[derive(Debug)]
struct RecommendTable {
    users: Arc<dyn TableProvider>,
    items: Arc<dyn TableProvider>,
    exclude: Option<Arc<dyn TableProvider>>,
    options: Options,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for RecommendTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let first_two = vec![0, 1];
        let users = self.users.scan(state, Some(&first_two), &[], None).await?;
        let items = self.items.scan(state, Some(&first_two), &[], None).await?;
        let exclude = match &self.exclude {
            Some(table) => Some(table.scan(state, Some(&first_two), &[], None).await?),
            None => None,
        };
        let exec: Arc<dyn ExecutionPlan> = Arc::new(RecommendExec::new(
            users,
            items,
            exclude,
            self.options.clone(),
            Arc::clone(&self.schema),
        ));
        project(exec, &self.schema, projection)
    }
}

/// `exec` with only the `projection` columns of its `schema`.
pub(crate) fn project(
    exec: Arc<dyn ExecutionPlan>,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    match projection {
        Some(columns) if *columns != (0..schema.fields().len()).collect::<Vec<_>>() => {
            let exprs = columns
                .iter()
                .map(|&i| {
                    let field = schema.field(i);
                    let column: Arc<dyn PhysicalExpr> =
                        Arc::new(datafusion::physical_expr::expressions::Column::new(field.name(), i));
                    (column, field.name().clone())
                })
                .collect::<Vec<_>>();
            Ok(Arc::new(
                datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, exec)?,
            ))
        }
        _ => Ok(exec),
    }
}

/// The top-k operator: items and exclusions are read whole, users stream through.
#[derive(Debug)]
pub struct RecommendExec {
    users: Arc<dyn ExecutionPlan>,
    items: Arc<dyn ExecutionPlan>,
    exclude: Option<Arc<dyn ExecutionPlan>>,
    options: Options,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RecommendExec {
    fn new(
        users: Arc<dyn ExecutionPlan>,
        items: Arc<dyn ExecutionPlan>,
        exclude: Option<Arc<dyn ExecutionPlan>>,
        options: Options,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            users,
            items,
            exclude,
            options,
            schema,
            properties,
        }
    }
}

impl DisplayAs for RecommendExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "RecommendExec: k={}, metric={:?}, threshold={:?}, exclude={}",
            self.options.k,
            self.options.metric,
            self.options.threshold,
            self.exclude.is_some()
        )
    }
}

impl ExecutionPlan for RecommendExec {
    fn name(&self) -> &str {
        "RecommendExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        let mut children = vec![&self.users, &self.items];
        children.extend(self.exclude.as_ref());
        children
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let exclude = (children.len() == 3).then(|| children.remove(2));
        let items = children.remove(1);
        let users = children.remove(0);
        Ok(Arc::new(RecommendExec::new(
            users,
            items,
            exclude,
            self.options.clone(),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("{NAME}: RecommendExec has one partition, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let (users, items, exclude) = (Arc::clone(&self.users), Arc::clone(&self.items), self.exclude.clone());
        let options = self.options.clone();
        let schema = Arc::clone(&self.schema);
        builder.spawn(async move {
            let catalog = Arc::new(Catalog::load(items, exclude, &options, Arc::clone(&context)).await?);
            let mut users = execute_stream(users, context)?;
            while let Some(batch) = users.next().await {
                let batch = batch?;
                let (catalog, options, schema) = (Arc::clone(&catalog), options.clone(), Arc::clone(&schema));
                let output = tokio::task::spawn_blocking(move || catalog.recommend(&batch, &options, &schema))
                    .await
                    .map_err(|e| DataFusionError::Execution(format!("{NAME}: {e}")))??;
                if sender.send(Ok(output)).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// The candidate items and each user's excluded items, ready for scoring.
struct Catalog {
    ids: ArrayRef,
    matrix: ItemMatrix,
    dim: Option<usize>,
    /// Excluded item indices by user id.
    excluded: HashMap<ScalarValue, Vec<u32>>,
    user_id_type: Option<DataType>,
}

impl Catalog {
    async fn load(
        items: Arc<dyn ExecutionPlan>,
        exclude: Option<Arc<dyn ExecutionPlan>>,
        options: &Options,
        context: Arc<TaskContext>,
    ) -> Result<Self> {
        let schema = items.schema();
        let batches = collect(items, Arc::clone(&context)).await?;
        let items = concat_batches(&schema, &batches)?;
        // In id order, so that ties (broken by position) are broken by id, whatever order
        // the rows arrive in.
        let order = sort_to_indices(items.column(0), None, None)?;
        let items = take_record_batch(&items, &order)?;
        let vectors = Vectors::try_new(NAME, 2, items.column(1))?;
        let dim = vectors.dim();
        let matrix = ItemMatrix::new(
            (0..vectors.len()).map(|row| vectors.row(row)),
            dim.unwrap_or(0),
            options.metric,
        );
        let ids = Arc::clone(items.column(0));
        let mut excluded: HashMap<ScalarValue, Vec<u32>> = HashMap::new();
        let mut user_id_type = None;
        if let Some(exclude) = exclude {
            let index: HashMap<ScalarValue, u32> = (0..ids.len())
                .map(|row| Ok((ScalarValue::try_from_array(&ids, row)?, row as u32)))
                .collect::<Result<_>>()?;
            let mut pairs = execute_stream(exclude, context)?;
            while let Some(batch) = pairs.next().await {
                let batch = batch?;
                let items_of_batch = cast(batch.column(1), ids.data_type())?;
                user_id_type.get_or_insert_with(|| batch.column(0).data_type().clone());
                for row in 0..batch.num_rows() {
                    let item = ScalarValue::try_from_array(&items_of_batch, row)?;
                    if let Some(&j) = index.get(&item) {
                        let user = ScalarValue::try_from_array(batch.column(0), row)?;
                        excluded.entry(user).or_default().push(j);
                    }
                }
            }
        }
        Ok(Self {
            ids,
            matrix,
            dim,
            excluded,
            user_id_type,
        })
    }

    fn recommend(&self, users: &RecordBatch, options: &Options, schema: &SchemaRef) -> Result<RecordBatch> {
        let vectors = Vectors::try_new(NAME, 1, users.column(1))?;
        if let (Some(user_dim), Some(item_dim)) = (vectors.dim(), self.dim)
            && user_dim != item_dim
            && !self.matrix.is_empty()
        {
            return exec_err!("{NAME}: user vectors have {user_dim} dimensions but item vectors have {item_dim}");
        }
        let user_ids = users.column(0);
        let lookup_ids = match &self.user_id_type {
            Some(t) if t != user_ids.data_type() => cast(user_ids, t)?,
            _ => Arc::clone(user_ids),
        };
        let exclusions: Vec<&[u32]> = (0..users.num_rows())
            .map(|row| {
                let key = ScalarValue::try_from_array(&lookup_ids, row)?;
                Ok(self.excluded.get(&key).map(|v| v.as_slice()).unwrap_or(&[]))
            })
            .collect::<Result<_>>()?;
        let rows: Vec<Option<&[f32]>> = (0..vectors.len()).map(|row| vectors.row(row)).collect();
        let selection = Selection {
            k: options.k,
            threshold: options.threshold,
        };
        let best = topk::top_k(&rows, &self.matrix, selection, |u| exclusions[u]);
        let total: usize = best.iter().map(Vec::len).sum();
        let mut user_rows = Vec::with_capacity(total);
        let mut ranks = Vec::with_capacity(total);
        let mut item_rows = Vec::with_capacity(total);
        let mut scores = Vec::with_capacity(total);
        for (user, list) in best.iter().enumerate() {
            for (rank, &(item, score)) in list.iter().enumerate() {
                user_rows.push(user as u32);
                ranks.push(rank as u64 + 1);
                item_rows.push(item);
                scores.push(score);
            }
        }
        let columns: Vec<ArrayRef> = vec![
            take(user_ids.as_ref(), &UInt32Array::from(user_rows), None)?,
            Arc::new(UInt64Array::from(ranks)),
            take(self.ids.as_ref(), &UInt32Array::from(item_rows), None)?,
            Arc::new(Float32Array::from(scores)),
        ];
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}
