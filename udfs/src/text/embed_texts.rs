//! `embed_texts(table [, dim | model_dir])`: text embeddings of a whole (id, text) table —
//! `embed_text`'s hashed n-grams weighted by inverse document frequency over the table (which
//! needs the table whole), or a local sentence-transformer's embeddings, streamed by
//! [`EmbedTextsExec`]: windows of texts read, embedded in batches of similar length on every
//! core and sent on, so memory is bounded by the window, not the table, with a progress bar and
//! prompt cancellation.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Documentation;
use datafusion::physical_expr::{Distribution, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, Partitioning, PlanProperties,
    StatisticsArgs, StatisticsContext,
};
use datafusion_macros::user_doc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::bert::SentenceModel;
use super::{DEFAULT_DIM, bert, hashed, vectors};
use crate::models::progress::Progress;
use crate::models::training::session_progress_mode;
use crate::table_function::{Arguments, Planned, Run, TableCall, TableFunction};
use crate::vector::vector_type;

const NAME: &str = "embed_texts";

#[user_doc(
    doc_section(label = "Text Functions"),
    description = "Text embeddings of a whole (id, text) table: TF-IDF — embed_text's hashed words, word pairs and character n-grams weighted by inverse document frequency over the table, L2-normalised — or, with a directory instead of dim, the sentence-transformer there (as embed_text runs it), in batches of texts of similar length on every core; the rows stream through in windows of 4,096 texts, so a catalogue of any size embeds in the memory of one window. NULL for a text without words. Rows: (id, vector).",
    syntax_example = "embed_texts(table [, dim => 256 | model_dir => 'dir'] [, id => 'column', text => 'column'])",
    sql_example = r#"```sql
> CREATE TABLE item_text AS SELECT * FROM embed_texts('items', dim => 256, id => 'item_id', text => 'title');
```"#,
    argument(name = "table", description = "A table or view of (id, text) rows."),
    argument(
        name = "dim | model_dir",
        description = "Number of dimensions, an integer from 1 to 65536 (default 256); or the directory of a sentence-transformer model, a text."
    ),
    argument(name = "id", description = "The column that holds the id (default: the first)."),
    argument(name = "text", description = "The column that holds the text (default: the second).")
)]
#[derive(Debug, Default)]
pub struct EmbedTexts;

/// Options of one call.
#[derive(Debug, Serialize, Deserialize)]
struct Options {
    dim: usize,
    /// The sentence-transformer's directory; TF-IDF when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_dir: Option<String>,
}

/// Texts per progress step and cancellation check with a model.
const MODEL_STEP: usize = 512;

/// Texts read before a model embeds them: what the model path holds at once besides the
/// model, so memory is bounded by this window (and its vectors), whatever the table's size.
/// Within it texts are embedded longest first, in batches of about one length.
const WINDOW: usize = 8 * MODEL_STEP;

impl TableFunction for EmbedTexts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn documentation(&self) -> &Documentation {
        self.doc().expect("documented")
    }

    fn plan(&self, args: &Arguments) -> Result<Planned> {
        args.expect_count(1..=2)?;
        let texts = args.required_input(0, "texts", Some("id, text"))?;
        let (dim, model_dir) = match args.is_text(1) {
            true => {
                let dir = args.required_text(1, "model_dir", "a model directory")?;
                (bert::config(NAME, std::path::Path::new(&dir))?.hidden_size, Some(dir))
            }
            false => match args.positive_integer(1, "dim", Some(DEFAULT_DIM))? {
                dim if dim <= 65536 => (dim, None),
                dim => {
                    return Err(args.invalid(1, "dim", "an integer from 1 to 65536", ScalarValue::from(dim as u64)));
                }
            },
        };
        let input = texts.table.provider.schema();
        if input.fields().len() < 2 {
            return plan_err!("{NAME}: the table needs (id, text) columns");
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new(input.field(0).name(), input.field(0).data_type().clone(), true),
            Field::new("vector", vector_type(dim), true),
        ]));
        Planned::new(vec![texts], &Options { dim, model_dir }, schema)
    }

    fn compute(&self, inputs: &[RecordBatch], run: &Run) -> Result<RecordBatch> {
        let Options { dim, model_dir } = run.call.options()?;
        if model_dir.is_some() {
            return crate::table_function::computed_by_own_operator(NAME);
        }
        let texts = cast(inputs[0].column(1), &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let documents: Vec<_> = (0..texts.len())
            .map(|row| match texts.is_valid(row) {
                true => hashed::features(texts.value(row)),
                false => Default::default(),
            })
            .collect();
        let weights = hashed::idf(&documents);
        let rows = documents
            .iter()
            .map(|d| hashed::embed(d, dim, Some(&weights)))
            .collect();
        Ok(RecordBatch::try_new(
            Arc::clone(run.schema),
            vec![Arc::clone(inputs[0].column(0)), vectors(rows, dim)?],
        )?)
    }

    /// With a model, the streaming [`EmbedTextsExec`]; TF-IDF needs the table whole.
    fn own_operator(
        &self,
        call: &TableCall,
        inputs: &[Arc<dyn ExecutionPlan>],
        schema: &SchemaRef,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Options { dim, model_dir } = call.options()?;
        let (Some(model_dir), [input]) = (model_dir, inputs) else {
            return Ok(None);
        };
        Ok(Some(Arc::new(EmbedTextsExec::new(
            call.clone(),
            (model_dir, dim),
            Arc::clone(input),
            Arc::clone(schema),
        ))))
    }
}

/// `embed_texts` with a model: reads the (id, text) rows a window at a time, embeds each
/// window and sends its rows on before reading the next, so only a window's texts and vectors
/// are held (and accounted in the session's memory pool), not the table's. One partition: the
/// model runs on every core already.
#[derive(Debug)]
pub struct EmbedTextsExec {
    call: TableCall,
    model_dir: String,
    dim: usize,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl EmbedTextsExec {
    fn new(
        call: TableCall,
        (model_dir, dim): (String, usize),
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self {
            call,
            model_dir,
            dim,
            input,
            schema,
            properties,
        }
    }

    /// The call this operator runs.
    pub fn call(&self) -> &TableCall {
        &self.call
    }
}

impl DisplayAs for EmbedTextsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "EmbedTextsExec: {}, window={WINDOW}", self.call)
    }
}

impl ExecutionPlan for EmbedTextsExec {
    fn name(&self) -> &str {
        "EmbedTextsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![Distribution::SinglePartition])
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("{NAME}: one input, got {}", children.len());
        }
        Ok(Arc::new(Self::new(
            self.call.clone(),
            (self.model_dir.clone(), self.dim),
            children.remove(0),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return exec_err!("{NAME}: one partition, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let (input, schema, dir, dim) = (
            Arc::clone(&self.input),
            Arc::clone(&self.schema),
            self.model_dir.clone(),
            self.dim,
        );
        // For the progress bar: the rows the input says it has, when it knows.
        let statistics = StatisticsContext::new().compute(input.as_ref(), &StatisticsArgs::new());
        let expected_rows = match statistics.map(|s| s.num_rows) {
            Ok(Precision::Exact(rows) | Precision::Inexact(rows)) => rows,
            _ => 0,
        };
        builder.spawn(async move {
            let blocking = |e: tokio::task::JoinError| DataFusionError::Execution(format!("{NAME}: {e}"));
            let model = tokio::task::spawn_blocking(move || bert::load(NAME, std::path::Path::new(&dir)))
                .await
                .map_err(blocking)??;
            let reservation = MemoryConsumer::new(format!("EmbedTextsExec[{NAME}]")).register(context.memory_pool());
            let mut progress = Progress::counting(
                NAME,
                "batch",
                session_progress_mode(&context),
                expected_rows.div_ceil(MODEL_STEP),
            );
            let input_schema = input.schema();
            let mut rows = input.execute(0, Arc::clone(&context))?;
            let (mut window, mut held, mut embedded, mut steps) = (Vec::new(), 0, 0, 0);
            loop {
                let next = rows
                    .next()
                    .await
                    .transpose()
                    .map_err(|e| e.context(format!("{NAME}: reading the texts table")))?;
                let end = next.is_none();
                if let Some(batch) = next {
                    reservation.try_grow(batch.get_array_memory_size())?;
                    held += batch.num_rows();
                    window.push(batch);
                }
                if held == 0 && end {
                    break;
                }
                if held < WINDOW && !end {
                    continue;
                }
                let texts = concat_batches(&input_schema, &std::mem::take(&mut window))?;
                held = 0;
                let (model, schema, watcher) = (Arc::clone(&model), Arc::clone(&schema), sender.clone());
                let (output, kept) = tokio::task::spawn_blocking(move || {
                    let output = embed_window(&model, &texts, dim, &schema, &mut progress, steps, || {
                        watcher.is_closed()
                    });
                    (output, progress)
                })
                .await
                .map_err(blocking)?;
                progress = kept;
                let (output, window_texts) = output.inspect_err(|_| {
                    if sender.is_closed() {
                        progress.cancelled();
                    }
                })?;
                steps += window_texts.div_ceil(MODEL_STEP);
                embedded += window_texts;
                reservation.try_resize(output.get_array_memory_size())?;
                if sender.send(Ok(output)).await.is_err() {
                    progress.cancelled();
                    return Ok(());
                }
                reservation.free();
                if end {
                    break;
                }
            }
            progress.finish(&format!("{embedded} texts embedded"));
            Ok(())
        });
        Ok(builder.build())
    }
}

/// The (id, vector) rows of one window of (id, text) rows, in its order: texts with words
/// embedded longest first, [`MODEL_STEP`] at a time, each step a progress step after `steps`
/// earlier ones, checking `cancelled` between steps. Also returns how many texts it embedded.
fn embed_window(
    model: &SentenceModel,
    window: &RecordBatch,
    dim: usize,
    schema: &SchemaRef,
    progress: &mut Progress,
    steps: usize,
    cancelled: impl Fn() -> bool,
) -> Result<(RecordBatch, usize)> {
    let texts = cast(window.column(1), &DataType::Utf8)?;
    let texts = texts.as_string::<i32>();
    let has_words = |row: usize| texts.is_valid(row) && texts.value(row).chars().any(char::is_alphanumeric);
    let mut wanted: Vec<usize> = (0..texts.len()).filter(|&row| has_words(row)).collect();
    wanted.sort_by_key(|&row| std::cmp::Reverse(texts.value(row).len()));
    let mut rows: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    for (step, chunk) in wanted.chunks(MODEL_STEP).enumerate() {
        if cancelled() {
            return exec_err!("{NAME}: cancelled");
        }
        let inputs: Vec<&str> = chunk.iter().map(|&row| texts.value(row)).collect();
        for (&row, vector) in chunk.iter().zip(model.embed(NAME, &inputs)?) {
            rows[row] = Some(vector);
        }
        progress.update(steps + step + 1, None);
    }
    let ids: ArrayRef = Arc::clone(window.column(0));
    let output = RecordBatch::try_new(Arc::clone(schema), vec![ids, vectors(rows, dim)?])?;
    Ok((output, wanted.len()))
}
