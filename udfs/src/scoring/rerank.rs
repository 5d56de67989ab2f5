//! Re-ranking a recommender's candidate lists, `(user, item, score)` rows, into lists of k that
//! trade a little score for something else:
//!
//! - `rerank_mmr(candidates, item_vectors, k [, lambda])`: maximal marginal relevance
//!   (Carbonell & Goldstein 1998): each next item maximises `λ·s(i) − (1 − λ)·max_j cos(i, j)`
//!   over the items j already chosen, so a list covers more than one corner of the catalogue;
//! - `rerank_calibrated(candidates, item_genres, history, k [, lambda])`: Steck's calibrated
//!   recommendations (RecSys 2018): each next item maximises `(1 − λ)·Σ s(i) − λ·KL(p ‖ q̃)` of
//!   the list so far, p the genre distribution of the user's history, q the list's, and
//!   `q̃ = (1 − α)·q + α·p` with α = 0.01, so the list's genres match the user's spread of
//!   interests.
//!
//! Scores `s` are min-max normalised within each user's candidates, so λ means the same
//! whatever scale a recommender scores on. Both run as [`RerankExec`]: candidates stream
//! through hash-partitioned and sorted by user (DataFusion adds both, spilling the sort when it
//! must), one user's list at a time; item vectors (and each user's genre distribution) are read
//! whole, once, in the session's memory pool.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use datafusion::arrow::compute::{cast, concat_batches, interleave};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, HashMap, Result, exec_err, plan_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Documentation;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr, PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, Partitioning, PlanProperties, collect,
};
use datafusion_macros::user_doc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::evaluate::calibration_kl::smoothed_kl;
use crate::table_function::interactions::IdIndex;
use crate::table_function::{Arguments, Input, Planned, Run, TableCall, TableFunction, expect_same_ids};
use crate::vector::Vectors;

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "Re-ranks each user's candidate list ((user, item, score) rows, e.g. recommend()'s top 50) by maximal marginal relevance (Carbonell & Goldstein 1998): each next item maximises λ·s(i) − (1 − λ)·max cos(i, j) over the items j already in the list, s the candidate's score min-max normalised within the user's candidates. λ = 1 keeps the recommender's order; lower trades score for a list whose items differ more. An item without a vector is similar to none. Rows: (user, rank, item, score, original_rank).",
    syntax_example = "rerank_mmr(candidates, item_vectors, k [, lambda => 0.5] [, user => 'column', item => 'column', score => 'column', vector_item => 'column', vector => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM rerank_mmr('candidates', 'item_vectors', 10, lambda => 0.7);
```"#,
    argument(
        name = "candidates",
        description = "A table or view of (user, item, score) rows: each user's candidates."
    ),
    argument(name = "item_vectors", description = "A table or view of (item, vector) rows."),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "lambda",
        description = "From 0 to 1: the weight of the score against dissimilarity (default 0.5)."
    ),
    argument(
        name = "user",
        description = "The column of candidates that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of candidates that holds the item id (default: the second)."
    ),
    argument(
        name = "score",
        description = "The column of candidates that holds the score (default: the third)."
    ),
    argument(
        name = "vector_item",
        description = "The column of item_vectors that holds the item id (default: the first)."
    ),
    argument(
        name = "vector",
        description = "The column of item_vectors that holds the vector (default: the second)."
    )
)]
#[derive(Debug, Default)]
pub struct RerankMmr;

#[user_doc(
    doc_section(label = "Recommendation Functions"),
    description = "Re-ranks each user's candidate list ((user, item, score) rows) so the list's genres match the user's history (Steck, Calibrated Recommendations, RecSys 2018): each next item maximises (1 − λ)·Σ s(i) − λ·KL(p ‖ q̃) of the list so far, p the genre distribution of the user's history (Σ weight·p(g|i) over its items), q the list's, q̃ = 0.99·q + 0.01·p, s the candidate's score min-max normalised within the user's candidates, and p(g|i) the item's genre vector divided by its sum. λ = 0 keeps the recommender's order. A user without history keeps it too; an item without genres adds none. Rows: (user, rank, item, score, original_rank).",
    syntax_example = "rerank_calibrated(candidates, item_genres, history, k [, lambda => 0.5] [, user => 'column', item => 'column', score => 'column', genre_item => 'column', genres => 'column', history_user => 'column', history_item => 'column', history_weight => 'column'])",
    sql_example = r#"```sql
> SELECT * FROM rerank_calibrated('candidates', 'item_genres', 'events', 10, lambda => 0.5);
```"#,
    argument(
        name = "candidates",
        description = "A table or view of (user, item, score) rows: each user's candidates."
    ),
    argument(
        name = "item_genres",
        description = "A table or view of (item, genres) rows: a vector of non-negative genre weights per item, e.g. 0/1 flags."
    ),
    argument(
        name = "history",
        description = "A table or view of (user, item[, weight]) rows: what each user's interests are."
    ),
    argument(name = "k", description = "How many items per user: a positive integer."),
    argument(
        name = "lambda",
        description = "From 0 to 1: the weight of calibration against the score (default 0.5)."
    ),
    argument(
        name = "user",
        description = "The column of candidates that holds the user id (default: the first)."
    ),
    argument(
        name = "item",
        description = "The column of candidates that holds the item id (default: the second)."
    ),
    argument(
        name = "score",
        description = "The column of candidates that holds the score (default: the third)."
    ),
    argument(
        name = "genre_item",
        description = "The column of item_genres that holds the item id (default: the first)."
    ),
    argument(
        name = "genres",
        description = "The column of item_genres that holds the genre vector (default: the second)."
    ),
    argument(
        name = "history_user",
        description = "The column of history that holds the user id (default: the first)."
    ),
    argument(
        name = "history_item",
        description = "The column of history that holds the item id (default: the second)."
    ),
    argument(
        name = "history_weight",
        description = "The column of history that holds the weight (default: the third, if any; 1 when absent)."
    )
)]
#[derive(Debug, Default)]
pub struct RerankCalibrated;

/// Which re-ranking a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Method {
    Mmr,
    Calibrated,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Mmr => "rerank_mmr",
            Method::Calibrated => "rerank_calibrated",
        }
    }
}

/// Options of one call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Options {
    method: Method,
    k: usize,
    lambda: f64,
}

const CANDIDATES: &str = "user, item, score";

fn plan(method: Method, args: &Arguments) -> Result<Planned> {
    let name = method.name();
    let (items_role, items_columns, k_at) = match method {
        Method::Mmr => ("item_vectors", "vector_item, vector", 2),
        Method::Calibrated => ("item_genres", "genre_item, genres", 3),
    };
    args.expect_count(k_at + 1..=k_at + 2)?;
    let candidates = args.required_input(0, "candidates", Some(CANDIDATES))?;
    let items = args.required_input(1, items_role, Some(items_columns))?;
    let history = match method {
        Method::Calibrated => {
            Some(args.required_input(2, "history", Some("history_user, history_item[, history_weight]"))?)
        }
        Method::Mmr => None,
    };
    let k = args.positive_integer(k_at, "k", None)?;
    let lambda = args.number(k_at + 1, "lambda", 0.0..=1.0, 0.5)?;
    let c = candidates.table.provider.schema();
    let i = items.table.provider.schema();
    if !c.field(2).data_type().is_numeric() {
        return plan_err!(
            "{name}: the third column of the candidates table (score) must be a number, got {}",
            c.field(2).data_type()
        );
    }
    expect_same_ids(name, ("candidates", c.field(1)), (items_role, i.field(0)))?;
    crate::vector::check_vector_type(name, 2, i.field(1).data_type()).map_err(|_| {
        DataFusionError::Plan(format!(
            "{name}: the second column of the {items_role} table must be a vector, got {}",
            i.field(1).data_type()
        ))
    })?;
    if let Some(history) = &history {
        let h = history.table.provider.schema();
        expect_same_ids(name, ("candidates", c.field(0)), ("history", h.field(0)))?;
        expect_same_ids(name, ("candidates", c.field(1)), ("history", h.field(1)))?;
    }
    let item_name = if c.field(1).name() == c.field(0).name() {
        format!("item_{}", c.field(1).name())
    } else {
        c.field(1).name().clone()
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new(c.field(0).name(), c.field(0).data_type().clone(), true),
        Field::new("rank", DataType::UInt64, false),
        Field::new(item_name, c.field(1).data_type().clone(), true),
        Field::new("score", DataType::Float32, true),
        Field::new("original_rank", DataType::UInt64, false),
    ]));
    let mut inputs: Vec<Input> = vec![candidates, items];
    inputs.extend(history);
    Planned::new(inputs, &Options { method, k, lambda }, schema)
}

fn own_operator(
    call: &TableCall,
    inputs: &[Arc<dyn ExecutionPlan>],
    schema: &SchemaRef,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let options: Options = call.options()?;
    Ok(Some(Arc::new(RerankExec::new(
        call.clone(),
        options,
        inputs.to_vec(),
        Arc::clone(schema),
    )?)))
}

impl TableFunction for RerankMmr {
    fn name(&self) -> &'static str {
        Method::Mmr.name()
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        plan(Method::Mmr, args)
    }

    fn compute(&self, _inputs: &[RecordBatch], _run: &Run) -> Result<RecordBatch> {
        crate::table_function::computed_by_own_operator(self.name())
    }

    fn own_operator(
        &self,
        call: &TableCall,
        inputs: &[Arc<dyn ExecutionPlan>],
        schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        own_operator(call, inputs, schema)
    }
}

impl TableFunction for RerankCalibrated {
    fn name(&self) -> &'static str {
        Method::Calibrated.name()
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        plan(Method::Calibrated, args)
    }

    fn compute(&self, _inputs: &[RecordBatch], _run: &Run) -> Result<RecordBatch> {
        crate::table_function::computed_by_own_operator(self.name())
    }

    fn own_operator(
        &self,
        call: &TableCall,
        inputs: &[Arc<dyn ExecutionPlan>],
        schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        own_operator(call, inputs, schema)
    }
}

/// The re-ranking operator: candidates stream through partitioned and sorted by user; the item
/// table (and the history) are read whole, once, shared by every partition.
#[derive(Debug)]
pub struct RerankExec {
    call: TableCall,
    options: Options,
    candidates: Arc<dyn ExecutionPlan>,
    items: Arc<dyn ExecutionPlan>,
    history: Option<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    catalog: Arc<OnceCell<Arc<Catalog>>>,
}

impl RerankExec {
    fn new(
        call: TableCall,
        options: Options,
        mut inputs: Vec<Arc<dyn ExecutionPlan>>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let expected = if options.method == Method::Calibrated { 3 } else { 2 };
        if inputs.len() != expected {
            return exec_err!(
                "{}: expected {expected} inputs, got {}",
                options.method.name(),
                inputs.len()
            );
        }
        let history = (expected == 3).then(|| inputs.remove(2));
        let items = inputs.remove(1);
        let candidates = inputs.remove(0);
        let partitions = candidates.properties().output_partitioning().partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            call,
            options,
            candidates,
            items,
            history,
            schema,
            properties,
            catalog: Arc::new(OnceCell::new()),
        })
    }

    /// The call this operator runs.
    pub fn call(&self) -> &TableCall {
        &self.call
    }

    fn user_column(&self) -> Arc<dyn PhysicalExpr> {
        let name = self.candidates.schema().field(0).name().clone();
        Arc::new(Column::new(&name, 0))
    }
}

impl DisplayAs for RerankExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RerankExec: {}", self.call)
    }
}

impl ExecutionPlan for RerankExec {
    fn name(&self) -> &str {
        "RerankExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        let mut children = vec![&self.candidates, &self.items];
        children.extend(self.history.as_ref());
        children
    }

    /// A user's candidates meet in one partition, in a run: partitioned and sorted by user.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let mut required = vec![
            Distribution::KeyPartitioned(vec![self.user_column()]),
            Distribution::SinglePartition,
        ];
        required.extend(self.history.as_ref().map(|_| Distribution::SinglePartition));
        InputDistributionRequirements::new(required)
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let by_user = LexRequirement::new(vec![PhysicalSortRequirement::new(self.user_column(), None)]);
        let mut required = vec![by_user.map(OrderingRequirements::new), None];
        required.extend(self.history.as_ref().map(|_| None));
        required
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(RerankExec::new(
            self.call.clone(),
            self.options.clone(),
            children,
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let name = self.options.method.name();
        let partitions = self.properties.output_partitioning().partition_count();
        if partition >= partitions {
            return exec_err!("{name}: RerankExec has {partitions} partitions, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let (candidates, items, history) = (
            Arc::clone(&self.candidates),
            Arc::clone(&self.items),
            self.history.clone(),
        );
        let options = self.options.clone();
        let schema = Arc::clone(&self.schema);
        let catalog = Arc::clone(&self.catalog);
        let user_type = candidates.schema().field(0).data_type().clone();
        builder.spawn(async move {
            let catalog = catalog
                .get_or_try_init(|| async {
                    Catalog::load(items, history, &user_type, &options, Arc::clone(&context))
                        .await
                        .map(Arc::new)
                })
                .await?;
            let reservation = MemoryConsumer::new(format!("RerankExec[{partition}]")).register(context.memory_pool());
            let mut lists = Lists::new(&user_type)?;
            let mut input = candidates.execute(partition, context)?;
            while let Some(batch) = input.next().await {
                let batch = batch.map_err(|e| e.context(format!("{name}: reading the candidates table")))?;
                let (catalog, options, schema) = (Arc::clone(catalog), options.clone(), Arc::clone(&schema));
                let (output, kept) = tokio::task::spawn_blocking(move || {
                    let output = lists.take(batch, &catalog, &options, &schema, false);
                    (output, lists)
                })
                .await
                .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?;
                lists = kept;
                reservation.try_resize(lists.memory_size())?;
                if let Some(output) = output?
                    && sender.send(Ok(output)).await.is_err()
                {
                    return Ok(());
                }
            }
            let empty = RecordBatch::new_empty(candidates.schema());
            if let Some(output) = lists.take(empty, catalog, &options, &schema, true)? {
                let _ = sender.send(Ok(output)).await;
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// What re-ranking reads whole: the items' vectors (unit length, for MMR's cosine) or genre
/// distributions (for calibration), and each user's genre distribution.
#[derive(Debug)]
struct Catalog {
    index: IdIndex,
    /// Row-major, `dim` per item of `index`; zeros for an item without a vector.
    vectors: Vec<f32>,
    dim: usize,
    /// Each user's history genre distribution, by the user id's row-format bytes.
    interests: HashMap<Box<[u8]>, Vec<f64>>,
    _reservation: MemoryReservation,
}

impl Catalog {
    async fn load(
        items: Arc<dyn ExecutionPlan>,
        history: Option<Arc<dyn ExecutionPlan>>,
        user_type: &DataType,
        options: &Options,
        context: Arc<TaskContext>,
    ) -> Result<Self> {
        let name = options.method.name();
        let reservation = MemoryConsumer::new("RerankExec").register(context.memory_pool());
        let schema = items.schema();
        let batches = collect(items, Arc::clone(&context)).await?;
        let batch = concat_batches(&schema, &batches)?;
        drop(batches);
        reservation.try_grow(batch.get_array_memory_size())?;
        let (index, _, first_rows) = IdIndex::build(batch.column(0))?;
        let table = Vectors::try_new(name, 2, batch.column(1))?;
        let dim = table.dim().unwrap_or(0);
        reservation.try_grow(first_rows.len() * dim * size_of::<f32>())?;
        let mut vectors = Vec::with_capacity(first_rows.len() * dim);
        for &row in &first_rows {
            let start = vectors.len();
            match table.row(row as usize) {
                Some(v) => vectors.extend_from_slice(v),
                None => vectors.extend(std::iter::repeat_n(0.0, dim)),
            }
            let item = &mut vectors[start..];
            let norm = match options.method {
                Method::Mmr => item.iter().map(|x| x * x).sum::<f32>().sqrt(),
                Method::Calibrated => {
                    if let Some(negative) = item.iter().find(|x| **x < 0.0 || !x.is_finite()) {
                        return exec_err!(
                            "{name}: genre vectors hold non-negative weights, got {negative} for an item"
                        );
                    }
                    item.iter().sum::<f32>()
                }
            };
            if norm > 0.0 {
                item.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let user_converter = RowConverter::new(vec![SortField::new(user_type.clone())])?;
        let mut interests: HashMap<Box<[u8]>, Vec<f64>> = HashMap::new();
        if let Some(history) = history {
            let mut rows = datafusion::physical_plan::execute_stream(history, context)?;
            while let Some(batch) = rows.next().await {
                let batch = batch.map_err(|e| e.context(format!("{name}: reading the history table")))?;
                let items = index.lookup(batch.column(1))?;
                let users = cast(batch.column(0), user_type)?;
                let keys = user_converter.convert_columns(&[Arc::clone(&users)])?;
                let weights = match batch.columns().get(2) {
                    Some(w) => Some(cast(w, &DataType::Float32)?),
                    None => None,
                };
                let before = interests.len();
                for (row, item) in items.into_iter().enumerate() {
                    let Some(item) = item.filter(|_| users.is_valid(row)) else {
                        continue;
                    };
                    let weight = match &weights {
                        Some(w) if w.is_valid(row) => f64::from(w.as_primitive::<Float32Type>().value(row)),
                        Some(_) => continue,
                        None => 1.0,
                    };
                    if !weight.is_finite() || weight < 0.0 {
                        return exec_err!("{name}: history weights must be finite and non-negative, got {weight}");
                    }
                    let genres = &vectors[item as usize * dim..(item as usize + 1) * dim];
                    let interest = interests
                        .entry(Box::from(keys.row(row).data()))
                        .or_insert_with(|| vec![0.0; dim]);
                    interest
                        .iter_mut()
                        .zip(genres)
                        .for_each(|(p, g)| *p += weight * f64::from(*g));
                }
                reservation.try_grow((interests.len() - before) * (dim * size_of::<f64>() + 64))?;
            }
            for interest in interests.values_mut() {
                let total: f64 = interest.iter().sum();
                if total > 0.0 {
                    interest.iter_mut().for_each(|p| *p /= total);
                }
            }
        }
        Ok(Self {
            index,
            vectors,
            dim,
            interests,
            _reservation: reservation,
        })
    }

    fn vector(&self, item: u32) -> &[f32] {
        &self.vectors[item as usize * self.dim..(item as usize + 1) * self.dim]
    }

    /// The order in which to list `candidates` (item index, normalised score), best first, at
    /// most `k`.
    fn rerank(&self, user: &[u8], candidates: &[(Option<u32>, f64)], options: &Options) -> Vec<usize> {
        let k = options.k.min(candidates.len());
        match options.method {
            Method::Mmr => self.mmr(candidates, k, options.lambda),
            Method::Calibrated => match self.interests.get(user) {
                Some(interest) => self.calibrated(interest, candidates, k, options.lambda),
                None => (0..k).collect(),
            },
        }
    }

    fn mmr(&self, candidates: &[(Option<u32>, f64)], k: usize, lambda: f64) -> Vec<usize> {
        let mut most_similar = vec![0.0f64; candidates.len()];
        let mut taken = vec![false; candidates.len()];
        let mut order = Vec::with_capacity(k);
        for _ in 0..k {
            let value = |c: usize| lambda * candidates[c].1 - (1.0 - lambda) * most_similar[c];
            let Some(best) = (0..candidates.len())
                .filter(|&c| !taken[c])
                .max_by(|&a, &b| value(a).total_cmp(&value(b)).then(b.cmp(&a)))
            else {
                break;
            };
            taken[best] = true;
            order.push(best);
            if let Some(picked) = candidates[best].0 {
                let picked = self.vector(picked);
                for (c, &(item, _)) in candidates.iter().enumerate() {
                    if let (false, Some(item)) = (taken[c], item) {
                        let similarity: f32 = self.vector(item).iter().zip(picked).map(|(a, b)| a * b).sum();
                        most_similar[c] = most_similar[c].max(f64::from(similarity));
                    }
                }
            }
        }
        order
    }

    fn calibrated(&self, interest: &[f64], candidates: &[(Option<u32>, f64)], k: usize, lambda: f64) -> Vec<usize> {
        let mut genres = vec![0.0f64; self.dim];
        let (mut score, mut taken, mut order) = (0.0f64, vec![false; candidates.len()], Vec::with_capacity(k));
        for listed in 0..k {
            let value = |c: usize| {
                let (item, s) = candidates[c];
                let added = item.map(|i| self.vector(i));
                let sum = |g: usize| genres[g] + added.map_or(0.0, |a| f64::from(a[g]));
                let divergence = smoothed_kl(interest, sum, (listed + 1) as f64);
                (1.0 - lambda) * (score + s) - lambda * divergence
            };
            let Some(best) = (0..candidates.len())
                .filter(|&c| !taken[c])
                .max_by(|&a, &b| value(a).total_cmp(&value(b)).then(b.cmp(&a)))
            else {
                break;
            };
            taken[best] = true;
            order.push(best);
            score += candidates[best].1;
            if let Some(item) = candidates[best].0 {
                genres
                    .iter_mut()
                    .zip(self.vector(item))
                    .for_each(|(g, v)| *g += f64::from(*v));
            }
        }
        order
    }
}

/// A batch of candidates with its rows' item indices and scores.
struct Candidates {
    batch: RecordBatch,
    items: Vec<Option<u32>>,
    /// NULL and NaN scores as −∞.
    scores: Vec<f64>,
}

/// The candidates of the users met so far whose lists are not complete: the batches they are
/// in, and the current user's rows.
struct Lists {
    user_type: DataType,
    converter: RowConverter,
    batches: Vec<Candidates>,
    /// The user whose rows come last, and those rows: (batch, row).
    current: Option<(OwnedRow, Vec<(usize, usize)>)>,
}

impl Lists {
    fn new(user_type: &DataType) -> Result<Self> {
        Ok(Self {
            user_type: user_type.clone(),
            converter: RowConverter::new(vec![SortField::new(user_type.clone())])?,
            batches: Vec::new(),
            current: None,
        })
    }

    fn memory_size(&self) -> usize {
        self.batches
            .iter()
            .map(|c| c.batch.get_array_memory_size() + c.items.len() * (size_of::<Option<u32>>() + size_of::<f64>()))
            .sum()
    }

    /// Adds `batch` (rows sorted by user) and re-ranks the lists it completes: every user but
    /// the last, whose rows may go on in the next batch — and that one too at the `end`.
    fn take(
        &mut self,
        batch: RecordBatch,
        catalog: &Catalog,
        options: &Options,
        schema: &SchemaRef,
        end: bool,
    ) -> Result<Option<RecordBatch>> {
        let users = cast(batch.column(0), &self.user_type)?;
        let keys = self.converter.convert_columns(&[users])?;
        let at = self.batches.len();
        if batch.num_rows() > 0 {
            let items = catalog.index.lookup(batch.column(1))?;
            let scores = cast(batch.column(2), &DataType::Float64)?;
            let scores = scores.as_primitive::<Float64Type>();
            let scores = (0..batch.num_rows())
                .map(|row| match scores.is_valid(row) && !scores.value(row).is_nan() {
                    true => scores.value(row),
                    false => f64::NEG_INFINITY,
                })
                .collect();
            self.batches.push(Candidates { batch, items, scores });
        }
        let mut finished: Vec<(OwnedRow, Vec<(usize, usize)>)> = Vec::new();
        for row in 0..keys.num_rows() {
            let key = keys.row(row);
            match &mut self.current {
                Some((user, rows)) if user.row() == key => rows.push((at, row)),
                _ => {
                    if let Some(done) = self.current.take() {
                        finished.push(done);
                    }
                    self.current = Some((key.owned(), vec![(at, row)]));
                }
            }
        }
        if end && let Some(done) = self.current.take() {
            finished.push(done);
        }
        let output = self.output(&finished, catalog, options, schema)?;
        // Only the batches the unfinished user's rows are in are still needed.
        let keep_from = self
            .current
            .as_ref()
            .and_then(|(_, rows)| rows.first().map(|&(b, _)| b))
            .unwrap_or(self.batches.len());
        if keep_from > 0 {
            self.batches.drain(..keep_from);
            if let Some((_, rows)) = &mut self.current {
                rows.iter_mut().for_each(|(b, _)| *b -= keep_from);
            }
        }
        Ok(output)
    }

    fn output(
        &self,
        finished: &[(OwnedRow, Vec<(usize, usize)>)],
        catalog: &Catalog,
        options: &Options,
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>> {
        let mut picked: Vec<(usize, usize)> = Vec::new();
        let mut ranks = Vec::new();
        let mut original = Vec::new();
        for (user, rows) in finished {
            // The recommender's order: by score, then by item (the catalogue's id order, an
            // item it lacks last), then as the rows came.
            let item_order = |&(b, row): &(usize, usize)| self.batches[b].items[row].unwrap_or(u32::MAX);
            let score = |&(b, row): &(usize, usize)| self.batches[b].scores[row];
            let mut ordered = rows.clone();
            ordered.sort_by(|a, b| score(b).total_cmp(&score(a)).then(item_order(a).cmp(&item_order(b))));
            let finite = ordered.iter().map(score).filter(|s| s.is_finite());
            let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| (l.min(s), h.max(s)));
            let candidates: Vec<(Option<u32>, f64)> = ordered
                .iter()
                .map(|place| {
                    let s = score(place);
                    let normalised = match s.is_finite() {
                        false => 0.0,
                        true if high > low => (s - low) / (high - low),
                        true => 1.0,
                    };
                    (self.batches[place.0].items[place.1], normalised)
                })
                .collect();
            for (rank, position) in catalog
                .rerank(user.row().data(), &candidates, options)
                .into_iter()
                .enumerate()
            {
                picked.push(ordered[position]);
                ranks.push(rank as u64 + 1);
                original.push(position as u64 + 1);
            }
        }
        if picked.is_empty() {
            return Ok(None);
        }
        let column = |index: usize| -> Result<ArrayRef> {
            let arrays: Vec<&dyn Array> = self.batches.iter().map(|c| c.batch.column(index).as_ref()).collect();
            Ok(interleave(&arrays, &picked)?)
        };
        let columns: Vec<ArrayRef> = vec![
            cast(&column(0)?, schema.field(0).data_type())?,
            Arc::new(UInt64Array::from(ranks)),
            cast(&column(1)?, schema.field(2).data_type())?,
            cast(&column(2)?, &DataType::Float32)?,
            Arc::new(UInt64Array::from(original)),
        ];
        Ok(Some(RecordBatch::try_new(Arc::clone(schema), columns)?))
    }
}
