//! Table functions that need their inputs whole (neighbourhood models, training): a table
//! provider whose plan reads every input table, runs a computation on a blocking thread, and
//! streams the result out in batches.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties, collect};

/// Turns the input tables, each as one batch, into the output batch. Long computations ask
/// [`Interrupt::cancelled`] now and then and stop when the statement was cancelled.
pub type Computation = Arc<dyn Fn(&[RecordBatch], &Interrupt) -> Result<RecordBatch> + Send + Sync>;

/// Tells a running computation whether anyone still wants its result (Ctrl-C drops the query).
pub struct Interrupt(Box<dyn Fn() -> bool + Send + Sync>);

impl Interrupt {
    pub fn cancelled(&self) -> bool {
        (self.0)()
    }
}

/// Reads its inputs whole, then runs a [`Computation`] off the async threads.
pub struct ComputeExec {
    name: &'static str,
    detail: String,
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    compute: Computation,
}

impl fmt::Debug for ComputeExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl ComputeExec {
    pub fn new(
        name: &'static str,
        detail: String,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        schema: SchemaRef,
        compute: Computation,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            name,
            detail,
            inputs,
            schema,
            properties,
            compute,
        }
    }
}

/// A table function's result that is computed from whole input tables when scanned.
pub struct ComputeTable {
    pub name: &'static str,
    pub detail: String,
    pub inputs: Vec<Arc<dyn TableProvider>>,
    pub schema: SchemaRef,
    pub compute: Computation,
}

impl fmt::Debug for ComputeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

#[async_trait]
impl TableProvider for ComputeTable {
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
        let mut inputs = Vec::new();
        for table in &self.inputs {
            inputs.push(table.scan(state, None, &[], None).await?);
        }
        let exec = Arc::new(ComputeExec::new(
            self.name,
            self.detail.clone(),
            inputs,
            Arc::clone(&self.schema),
            Arc::clone(&self.compute),
        ));
        crate::recommend::project(exec, &self.schema, projection)
    }
}

impl DisplayAs for ComputeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.detail)
    }
}

impl ExecutionPlan for ComputeExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            self.name,
            self.detail.clone(),
            children,
            Arc::clone(&self.schema),
            Arc::clone(&self.compute),
        )))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let name = self.name;
        if partition != 0 {
            return exec_err!("{name}: one partition, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let inputs = self.inputs.clone();
        let compute = Arc::clone(&self.compute);
        builder.spawn(async move {
            let mut tables = Vec::new();
            for input in inputs {
                let input_schema = input.schema();
                let batches = collect(input, Arc::clone(&context)).await?;
                tables.push(concat_batches(&input_schema, &batches)?);
            }
            let batch_size = context.session_config().batch_size();
            let watcher = sender.clone();
            let interrupt = Interrupt(Box::new(move || watcher.is_closed()));
            let output = tokio::task::spawn_blocking(move || compute(&tables, &interrupt))
                .await
                .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))??;
            let mut start = 0;
            while start < output.num_rows() {
                let length = batch_size.min(output.num_rows() - start);
                if sender.send(Ok(output.slice(start, length))).await.is_err() {
                    break;
                }
                start += length;
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
