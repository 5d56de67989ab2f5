//! Recommendations from vectors: the table function
//! `recommend(users, items, k [, metric [, exclude [, threshold [, explain_with [, explain_top]]]]])`.
//!
//! `users` and `items` name tables or views whose first column is an id and second a vector;
//! `exclude` names a table of (user, item) interactions whose pairs are never recommended. It
//! returns one row per (user, rank, item, score), best first. Candidate filters go into the
//! `items` view, so they apply before the top-k and a user gets k items whenever k candidates
//! remain. It runs as its own operator ([`RecommendExec`]): the items become one flat f32
//! matrix, users stream through in blocks scored with one matrix multiply each, and each user
//! keeps a bounded list of its best items ([`selection`]), in parallel on every core. With an
//! `explain_with` history a `because` column says which history items made each score
//! ([`super::because`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, Float32Array, RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, sort_to_indices, take, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, HashMap, Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Documentation;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{Distribution, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, Partitioning, PlanProperties, collect,
    execute_stream,
};
use datafusion_macros::user_doc;
use futures::StreamExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use super::because::{History, because_type};
use super::selection::{self, ItemMatrix, Metric, Selection};
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, NamedTable, Planned, Run, TableCall, TableFunction, expect_same_ids};
use crate::vector::Vectors;

const NAME: &str = "recommend";

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "The k best items for every user by dot, cosine or l2 between user and item vectors (tables or views of (id, vector)), skipping the (user, item) pairs of the exclude table and, with a threshold, scores not above it (l2: distances not below it). Equal scores are ordered by item id. Rows: (user, rank, item, score), and with explain_with a because column: the user's history items that contribute most to the score, each with its contribution and share — exact for a profile pooled from those items (mean, decayed mean, attention pool), whose dot score is Σ_j a_j·(z_j·v).",
    syntax_example = "recommend(users, items, k [, metric => 'dot'] [, exclude => 'table'] [, threshold => number] [, explain_with => 'table'] [, explain_top => 3] [, user => 'column', user_vector => 'column', item => 'column', item_vector => 'column', exclude_user => 'column', exclude_item => 'column', history_user => 'column', history_item => 'column', history_vector => 'column', history_weight => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM recommend('profiles', 'item_vectors', 10, exclude => 'events',
                          user_vector => 'profile', exclude_user => 'user_id', exclude_item => 'item_id');
```"#,
    argument(name = "users", description = "A table or view of (user id, vector) rows."),
    argument(
        name = "items",
        description = "A table or view of (item id, vector) rows: the candidates."
    ),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "metric",
        description = "'dot' (default), 'cosine' or 'l2' (score = distance, smaller first)."
    ),
    argument(
        name = "exclude",
        description = "A table or view of (user, item) pairs never recommended, e.g. what each user has seen."
    ),
    argument(
        name = "threshold",
        description = "Keep only scores above it (l2: distances below it)."
    ),
    argument(
        name = "explain_with",
        description = "A table or view of (user, item, vector[, weight]) rows — the history each user's profile was pooled from, with the pooling weights (default 1/n, the mean) — that adds the because column. Dot and cosine only."
    ),
    argument(
        name = "explain_top",
        description = "How many history items because lists per recommended item, largest contribution first (default 3)."
    ),
    argument(
        name = "user",
        description = "The column of users that holds the user id (default: the first)."
    ),
    argument(
        name = "user_vector",
        description = "The column of users that holds the user's vector (default: the second)."
    ),
    argument(
        name = "item",
        description = "The column of items that holds the item id (default: the first)."
    ),
    argument(
        name = "item_vector",
        description = "The column of items that holds the item's vector (default: the second)."
    ),
    argument(
        name = "exclude_user",
        description = "The column of exclude that holds the user id (default: the first)."
    ),
    argument(
        name = "exclude_item",
        description = "The column of exclude that holds the item id (default: the second)."
    ),
    argument(
        name = "history_user",
        description = "The column of explain_with that holds the user id (default: the first)."
    ),
    argument(
        name = "history_item",
        description = "The column of explain_with that holds the item id (default: the second)."
    ),
    argument(
        name = "history_vector",
        description = "The column of explain_with that holds the history item's vector (default: the third)."
    ),
    argument(
        name = "history_weight",
        description = "The column of explain_with that holds the item's pooling weight (default: the fourth, if any)."
    )
)]
#[derive(Debug, Default)]
pub struct Recommend;

/// Options of one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Options {
    k: usize,
    metric: Metric,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    threshold: Option<f32>,
    /// How many history items `because` lists, when the call explains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explain_top: Option<usize>,
}

impl TableFunction for Recommend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(3..=8)?;
        let users = args.required_input(0, "users", Some("user, user_vector"))?;
        let items = args.required_input(1, "items", Some("item, item_vector"))?;
        let k = args.positive_integer(2, "k", None)?;
        let metric = match args.text(3, "metric")? {
            None => Metric::Dot,
            Some(name) => Metric::parse(&name)
                .ok_or_else(|| args.invalid(3, "metric", "'dot', 'cosine' or 'l2'", format!("'{name}'")))?,
        };
        let exclude = args.input(4, "exclude", Some("exclude_user, exclude_item"))?;
        let threshold = args
            .optional_number(5, "threshold", f64::NEG_INFINITY..=f64::INFINITY)?
            .map(|t| t as f32);
        let history = args.input(
            6,
            "explain_with",
            Some("history_user, history_item, history_vector[, history_weight]"),
        )?;
        let explain_top = match &history {
            Some(_) => Some(args.positive_integer(7, "explain_top", Some(3))?),
            None => None,
        };
        check_columns(NAME, &users.table, "users", true)?;
        check_columns(NAME, &items.table, "items", true)?;
        if let Some(exclude) = &exclude {
            check_columns(NAME, &exclude.table, "exclude", false)?;
            let (u, i, e) = (
                users.table.provider.schema(),
                items.table.provider.schema(),
                exclude.table.provider.schema(),
            );
            expect_same_ids(NAME, ("users", u.field(0)), ("exclude", e.field(0)))?;
            expect_same_ids(NAME, ("items", i.field(0)), ("exclude", e.field(1)))?;
        }
        let user_field = users.table.provider.schema().field(0).clone();
        let item_field = items.table.provider.schema().field(0).clone();
        if let Some(history) = &history {
            if metric == Metric::L2 {
                return plan_err!(
                    "{NAME}: explain_with splits dot and cosine scores into history items' parts; an l2 distance is not such a sum"
                );
            }
            let h = history.table.provider.schema();
            if h.fields().len() < 3 {
                return plan_err!("{NAME}: the explain_with table needs (user, item, vector[, weight]) columns");
            }
            expect_same_ids(NAME, ("users", &user_field), ("explain_with", h.field(0)))?;
            expect_same_ids(NAME, ("items", &item_field), ("explain_with", h.field(1)))?;
            crate::vector::check_vector_type(NAME, 3, h.field(2).data_type()).map_err(|_| {
                DataFusionError::Plan(format!(
                    "{NAME}: the third column of the explain_with table must be a vector, got {}",
                    h.field(2).data_type()
                ))
            })?;
            if let Some(weight) = h.fields().get(3)
                && !weight.data_type().is_numeric()
            {
                return plan_err!(
                    "{NAME}: the fourth column of the explain_with table (weight) must be a number, got {}",
                    weight.data_type()
                );
            }
        }
        let item_name = if item_field.name() == user_field.name() {
            format!("item_{}", item_field.name())
        } else {
            item_field.name().clone()
        };
        let mut fields = vec![
            Field::new(user_field.name(), user_field.data_type().clone(), true),
            Field::new("rank", DataType::UInt64, false),
            Field::new(item_name, item_field.data_type().clone(), true),
            Field::new("score", DataType::Float32, false),
        ];
        if let Some(history) = &history {
            let item_type = history.table.provider.schema().field(1).data_type().clone();
            fields.push(Field::new("because", because_type(&item_type), true));
        }
        let mut inputs = vec![users, items];
        inputs.extend(exclude);
        inputs.extend(history);
        let options = Options {
            k,
            metric,
            threshold,
            explain_top,
        };
        Planned::new(inputs, &options, Arc::new(Schema::new(fields)))
    }

    fn compute(&self, _inputs: &[RecordBatch], _run: &Run) -> Result<RecordBatch> {
        crate::table_function::computed_by_own_operator(NAME)
    }

    fn own_operator(
        &self,
        call: &TableCall,
        inputs: &[Arc<dyn ExecutionPlan>],
        schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let options: Options = call.options()?;
        Ok(Some(Arc::new(RecommendExec::new(
            call.clone(),
            options,
            inputs.to_vec(),
            Arc::clone(schema),
        )?)))
    }
}

/// The first columns hold an id and, for users and items, a vector.
pub(super) fn check_columns(function: &str, table: &NamedTable, role: &str, vectors: bool) -> Result<()> {
    let schema = table.provider.schema();
    if schema.fields().len() < 2 {
        let expected = if vectors { "(id, vector)" } else { "(user, item)" };
        return plan_err!("{function}: the {role} table needs its first two columns to be {expected}");
    }
    if vectors {
        crate::vector::check_vector_type(function, 2, schema.field(1).data_type()).map_err(|_| {
            DataFusionError::Plan(format!(
                "{function}: the second column of the {role} table must be a vector, got {}",
                schema.field(1).data_type()
            ))
        })?;
    }
    Ok(())
}

/// The top-k operator: items and exclusions are read whole (once, shared by every partition),
/// users stream through, one output partition per partition of the users input.
#[derive(Debug)]
pub struct RecommendExec {
    call: TableCall,
    options: Options,
    users: Arc<dyn ExecutionPlan>,
    items: Arc<dyn ExecutionPlan>,
    exclude: Option<Arc<dyn ExecutionPlan>>,
    history: Option<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    catalog: Arc<OnceCell<Arc<Catalog>>>,
    /// The users met so far by every partition: a user listed twice would get two lists.
    users_seen: Arc<Mutex<HashSet<Box<[u8]>>>>,
}

impl RecommendExec {
    fn new(
        call: TableCall,
        options: Options,
        mut inputs: Vec<Arc<dyn ExecutionPlan>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let (explains, excludes) = (call.has_input("explain_with"), call.has_input("exclude"));
        let expected = 2 + usize::from(explains) + usize::from(excludes);
        if inputs.len() != expected {
            return exec_err!(
                "{NAME}: expected users, items and optionally exclude and explain_with inputs, got {}",
                inputs.len()
            );
        }
        let history = explains.then(|| inputs.remove(expected - 1));
        let exclude = excludes.then(|| inputs.remove(2));
        let items = inputs.remove(1);
        let users = inputs.remove(0);
        let partitions = users.properties().output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            call,
            options,
            users,
            items,
            exclude,
            history,
            schema,
            properties,
            catalog: Arc::new(OnceCell::new()),
            users_seen: Arc::new(Mutex::new(HashSet::new())),
        })
    }
}

impl RecommendExec {
    /// The call this operator runs.
    pub fn call(&self) -> &TableCall {
        &self.call
    }
}

impl DisplayAs for RecommendExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RecommendExec: {}", self.call)
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
        children.extend(self.history.as_ref());
        children
    }

    /// Users stream through partitioned by id, so a user listed twice meets its duplicate in
    /// the same partition even when partitions run in different processes (a cluster's
    /// tasks); items and exclusions are read whole.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let users = match self.users.schema().fields().first() {
            Some(user) => Distribution::KeyPartitioned(vec![Arc::new(Column::new(user.name(), 0))]),
            None => Distribution::UnspecifiedDistribution,
        };
        let mut required = vec![users, Distribution::SinglePartition];
        required.extend(self.exclude.as_ref().map(|_| Distribution::SinglePartition));
        required.extend(self.history.as_ref().map(|_| Distribution::SinglePartition));
        InputDistributionRequirements::new(required)
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(RecommendExec::new(
            self.call.clone(),
            self.options.clone(),
            children,
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let partitions = self.properties.output_partitioning().partition_count();
        if partition >= partitions {
            return exec_err!("{NAME}: RecommendExec has {partitions} partitions, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let (users, items) = (Arc::clone(&self.users), Arc::clone(&self.items));
        let (exclude, history) = (self.exclude.clone(), self.history.clone());
        let user_type = users.schema().field(0).data_type().clone();
        let options = self.options.clone();
        let schema = Arc::clone(&self.schema);
        let catalog = Arc::clone(&self.catalog);
        let users_seen = Arc::clone(&self.users_seen);
        builder.spawn(async move {
            let catalog = catalog
                .get_or_try_init(|| async {
                    Catalog::load(items, exclude, history, &user_type, &options, Arc::clone(&context))
                        .await
                        .map(Arc::new)
                })
                .await?;
            let scoring = MemoryConsumer::new(format!("RecommendExec[{partition}]")).register(context.memory_pool());
            let mut users = users.execute(partition, context)?;
            while let Some(batch) = users.next().await {
                let batch = batch.map_err(|e| reading(e, "users"))?;
                check_new_users(batch.column(0), &users_seen)?;
                scoring.try_resize(catalog.scoring_bytes(batch.num_rows(), &options))?;
                let (catalog, options, schema) = (Arc::clone(catalog), options.clone(), Arc::clone(&schema));
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

/// An error met while reading the `role` input, saying so.
fn reading(error: DataFusionError, role: &str) -> DataFusionError {
    error.context(format!("{NAME}: reading the {role} table"))
}

/// The first id of sorted `ids` that equals the one before it.
pub(super) fn first_repeated(ids: &ArrayRef) -> Result<Option<ScalarValue>> {
    let rows = RowConverter::new(vec![SortField::new(ids.data_type().clone())])?.convert_columns(&[Arc::clone(ids)])?;
    for row in 1..ids.len() {
        if ids.is_valid(row) && rows.row(row) == rows.row(row - 1) {
            return Ok(Some(ScalarValue::try_from_array(ids, row)?));
        }
    }
    Ok(None)
}

/// Fails on a user id met before, in this batch or an earlier one of any partition.
fn check_new_users(ids: &ArrayRef, seen: &Mutex<HashSet<Box<[u8]>>>) -> Result<()> {
    let rows = RowConverter::new(vec![SortField::new(ids.data_type().clone())])?.convert_columns(&[Arc::clone(ids)])?;
    let mut seen = seen
        .lock()
        .map_err(|_| DataFusionError::Execution(format!("{NAME}: a partition failed")))?;
    for row in (0..ids.len()).filter(|&row| ids.is_valid(row)) {
        if !seen.insert(Box::from(rows.row(row).as_ref())) {
            let id = ScalarValue::try_from_array(ids, row)?;
            return exec_err!("{NAME}: user {id} appears more than once in the users table; give each user one vector");
        }
    }
    Ok(())
}

/// The candidate items and each user's excluded items, ready for scoring.
#[derive(Debug)]
struct Catalog {
    ids: ArrayRef,
    matrix: ItemMatrix,
    dim: Option<usize>,
    exclusions: Option<Exclusions>,
    history: Option<History>,
    /// The memory all of the above holds, accounted in the session's pool.
    _reservation: MemoryReservation,
}

/// Each user's excluded items, as sorted item indices, by the user id's row-format bytes.
#[derive(Debug)]
struct Exclusions {
    converter: RowConverter,
    user_type: DataType,
    items: HashMap<Box<[u8]>, Vec<u32>>,
}

impl Exclusions {
    /// Reads the (user, item) pairs of `exclude`, keeping those whose item is one of `ids`,
    /// growing `reservation` as the lists grow.
    async fn load(
        exclude: Arc<dyn ExecutionPlan>,
        ids: &ArrayRef,
        reservation: &MemoryReservation,
        context: Arc<TaskContext>,
    ) -> Result<Self> {
        reservation.try_grow(ids.len() * EXCLUDED_USER_BYTES)?;
        let item_index = IdIndex::by_row(ids)?;
        let user_type = exclude.schema().field(0).data_type().clone();
        let converter = RowConverter::new(vec![SortField::new(user_type.clone())])?;
        let mut items: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut pairs = execute_stream(exclude, context)?;
        while let Some(batch) = pairs.next().await {
            let batch = batch.map_err(|e| reading(e, "exclude"))?;
            let item_rows = item_index.lookup(batch.column(1))?;
            let users = batch.column(0);
            let user_rows = converter.convert_columns(&[Arc::clone(users)])?;
            let (users_before, mut pairs_added) = (items.len(), 0);
            for (row, item) in item_rows.into_iter().enumerate() {
                let Some(item) = item.filter(|_| users.is_valid(row)) else {
                    continue;
                };
                let user = user_rows.row(row).data();
                match items.get_mut(user) {
                    Some(list) => list.push(item),
                    None => {
                        items.insert(Box::from(user), vec![item]);
                    }
                }
                pairs_added += 1;
            }
            reservation
                .try_grow((items.len() - users_before) * EXCLUDED_USER_BYTES + pairs_added * size_of::<u32>())?;
        }
        let lists: Vec<&mut Vec<u32>> = items.values_mut().collect();
        lists.into_par_iter().for_each(|list| {
            list.sort_unstable();
            list.dedup();
        });
        Ok(Self {
            converter,
            user_type,
            items,
        })
    }

    /// `ids` in the row format the lists are keyed by.
    fn user_rows(&self, ids: &ArrayRef) -> Result<Rows> {
        let ids = cast(ids, &self.user_type)?;
        Ok(self.converter.convert_columns(&[ids])?)
    }

    /// The excluded items of the user whose id converts to `user`, ascending.
    fn of(&self, user: &[u8]) -> &[u32] {
        self.items.get(user).map_or(&[], Vec::as_slice)
    }
}

/// What one user's entry of the exclusions costs besides its items: the id and the list.
const EXCLUDED_USER_BYTES: usize = 96;

impl Catalog {
    async fn load(
        items: Arc<dyn ExecutionPlan>,
        exclude: Option<Arc<dyn ExecutionPlan>>,
        history: Option<Arc<dyn ExecutionPlan>>,
        user_type: &DataType,
        options: &Options,
        context: Arc<TaskContext>,
    ) -> Result<Self> {
        let reservation = MemoryConsumer::new("RecommendExec").register(context.memory_pool());
        let schema = items.schema();
        let batches = collect(items, Arc::clone(&context))
            .await
            .map_err(|e| reading(e, "items"))?;
        reservation.try_grow(batches.iter().map(RecordBatch::get_array_memory_size).sum())?;
        let items = concat_batches(&schema, &batches)?;
        drop(batches);
        // In id order, so that ties (broken by position) are broken by id, whatever order
        // the rows arrive in.
        let order = sort_to_indices(items.column(0), None, None)?;
        let items = take_record_batch(&items, &order)?;
        if let Some(id) = first_repeated(items.column(0))? {
            return exec_err!("{NAME}: item {id} appears more than once in the items table; give each item one vector");
        }
        let vectors = Vectors::try_new(NAME, 2, items.column(1))?;
        vectors.expect_finite(NAME, "items", items.column(0))?;
        let dim = vectors.dim();
        // The flat matrix and its norms, before they are built.
        reservation.try_grow(vectors.len() * (dim.unwrap_or(0) + 2) * size_of::<f32>())?;
        let matrix = ItemMatrix::new(
            (0..vectors.len()).map(|row| vectors.row(row)),
            dim.unwrap_or(0),
            options.metric,
        );
        let ids = Arc::clone(items.column(0));
        let exclusions = match exclude {
            Some(exclude) => Some(Exclusions::load(exclude, &ids, &reservation, Arc::clone(&context)).await?),
            None => None,
        };
        let history = match history {
            Some(history) => Some(History::load(history, user_type, dim, &reservation, context).await?),
            None => None,
        };
        Ok(Self {
            ids,
            matrix,
            dim,
            exclusions,
            history,
            _reservation: reservation,
        })
    }

    /// The memory scoring `users` users at once takes: the kernel's working memory and the
    /// output.
    fn scoring_bytes(&self, users: usize, options: &Options) -> usize {
        let scores = selection::working_bytes(users, self.matrix.len());
        let rows = users.saturating_mul(options.k.min(self.matrix.len()));
        let output = rows * (size_of::<u64>() + 2 * size_of::<u32>() + size_of::<f32>());
        // Each row's explanation: (history row, contribution, share) per listed item.
        let because = match &self.history {
            Some(_) => rows.saturating_mul(options.explain_top.unwrap_or(0)) * 3 * size_of::<u32>(),
            None => 0,
        };
        scores + output + because
    }

    fn recommend(&self, users: &RecordBatch, options: &Options, schema: &SchemaRef) -> Result<RecordBatch> {
        let vectors = Vectors::try_new(NAME, 1, users.column(1))?;
        vectors.expect_finite(NAME, "users", users.column(0))?;
        if let (Some(user_dim), Some(item_dim)) = (vectors.dim(), self.dim)
            && user_dim != item_dim
            && !self.matrix.is_empty()
        {
            return exec_err!("{NAME}: user vectors have {user_dim} dimensions but item vectors have {item_dim}");
        }
        let user_ids = users.column(0);
        let converted;
        let exclusions: Vec<&[u32]> = match &self.exclusions {
            Some(exclusions) => {
                converted = exclusions.user_rows(user_ids)?;
                (0..users.num_rows())
                    .map(|row| match user_ids.is_valid(row) {
                        true => exclusions.of(converted.row(row).data()),
                        false => &[],
                    })
                    .collect()
            }
            None => vec![&[]; users.num_rows()],
        };
        let rows: Vec<Option<&[f32]>> = (0..vectors.len()).map(|row| vectors.row(row)).collect();
        let selection = Selection {
            k: options.k,
            threshold: options.threshold,
        };
        let best = selection::top_k(&rows, &self.matrix, selection, |u| exclusions[u]);
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
        let because = match &self.history {
            None => None,
            Some(history) => {
                let top = options.explain_top.unwrap_or(3);
                let converted = history.user_rows(user_ids)?;
                let lists: Vec<Vec<(u32, f32, f32)>> = (0..total)
                    .into_par_iter()
                    .map(|at| {
                        let user = user_rows[at] as usize;
                        let own = match user_ids.is_valid(user) {
                            true => history.of(converted.row(user).data()),
                            false => &[],
                        };
                        history.contributions(own, &self.matrix, item_rows[at], top)
                    })
                    .collect();
                Some(history.column(&lists)?)
            }
        };
        let mut columns: Vec<ArrayRef> = vec![
            take(user_ids.as_ref(), &UInt32Array::from(user_rows), None)?,
            Arc::new(UInt64Array::from(ranks)),
            take(self.ids.as_ref(), &UInt32Array::from(item_rows), None)?,
            Arc::new(Float32Array::from(scores)),
        ];
        columns.extend(because);
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}
