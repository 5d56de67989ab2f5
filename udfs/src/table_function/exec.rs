//! The physical operator of table functions that need their inputs whole (neighbourhood
//! models, training, model files): [`ComputeExec`] reads every input as one batch, runs the
//! function's computation on a blocking thread, and streams the result out in batches. Inputs,
//! the function's working memory and the output are accounted in the session's memory pool, so
//! a memory limit stops a call that would exceed it with an error naming `ComputeExec[function]`.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Distribution, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, Partitioning, PlanProperties, collect,
};

use super::{TableCall, TableFunction};

/// Tells a running computation whether anyone still wants its result (Ctrl-C drops the query).
pub struct Interrupt(Box<dyn Fn() -> bool + Send + Sync>);

impl Interrupt {
    pub fn new(cancelled: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Box::new(cancelled))
    }

    pub fn cancelled(&self) -> bool {
        (self.0)()
    }
}

/// What a computation gets besides its inputs: the call, its output schema, the task's
/// context (session settings) and a way to learn that it was cancelled.
pub struct Run<'a> {
    pub call: &'a TableCall,
    pub schema: &'a SchemaRef,
    pub context: &'a TaskContext,
    pub interrupt: Interrupt,
    reservation: &'a MemoryReservation,
}

impl Run<'_> {
    /// Accounts `bytes` more of working memory in the session's memory pool: an error naming
    /// the operator when the pool cannot give them.
    pub fn reserve(&self, bytes: usize) -> Result<()> {
        self.reservation.try_grow(bytes)
    }

    /// The error of a computation that was cancelled, after writing nothing.
    pub fn cancelled(&self) -> Result<()> {
        if self.interrupt.cancelled() {
            return exec_err!("{}: cancelled", self.call.function);
        }
        Ok(())
    }
}

/// Reads its inputs whole, then runs the function's computation off the async threads.
#[derive(Debug)]
pub struct ComputeExec {
    call: TableCall,
    function: Arc<dyn TableFunction>,
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl ComputeExec {
    pub fn new(
        call: TableCall,
        function: Arc<dyn TableFunction>,
        inputs: Vec<Arc<dyn ExecutionPlan>>,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            call,
            function,
            inputs,
            schema,
            properties,
        }
    }

    pub fn call(&self) -> &TableCall {
        &self.call
    }
}

impl DisplayAs for ComputeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ComputeExec: {}", self.call)
    }
}

impl ExecutionPlan for ComputeExec {
    fn name(&self) -> &str {
        "ComputeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    /// Every input is read whole, so each must arrive as one partition.
    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![Distribution::SinglePartition; self.inputs.len()])
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            self.call.clone(),
            Arc::clone(&self.function),
            children,
            Arc::clone(&self.schema),
        )))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let name = self.function.name();
        if partition != 0 {
            return exec_err!("{name}: one partition, asked for {partition}");
        }
        let mut builder = RecordBatchReceiverStream::builder(Arc::clone(&self.schema), 2);
        let sender = builder.tx();
        let inputs = self.inputs.clone();
        let (call, function, schema) = (self.call.clone(), Arc::clone(&self.function), Arc::clone(&self.schema));
        builder.spawn(async move {
            let reservation = MemoryConsumer::new(format!("ComputeExec[{name}]")).register(context.memory_pool());
            let mut tables = Vec::new();
            for (input, (role, table)) in inputs.into_iter().zip(&call.inputs) {
                let input_schema = input.schema();
                let batches = collect(input, Arc::clone(&context))
                    .await
                    .map_err(|e| e.context(format!("{name}: reading the {role} table '{table}'")))?;
                reservation.try_grow(batches.iter().map(RecordBatch::get_array_memory_size).sum())?;
                tables.push(concat_batches(&input_schema, &batches)?);
            }
            let batch_size = context.session_config().batch_size();
            let watcher = sender.clone();
            tokio::task::spawn_blocking(move || {
                let run = Run {
                    call: &call,
                    schema: &schema,
                    context: &context,
                    interrupt: Interrupt::new(move || watcher.is_closed()),
                    reservation: &reservation,
                };
                function.compute_in_parts(&tables, &run, &mut |part| {
                    let mut start = 0;
                    while start < part.num_rows() {
                        let length = batch_size.min(part.num_rows() - start);
                        if sender.blocking_send(Ok(part.slice(start, length))).is_err() {
                            return Ok(false);
                        }
                        start += length;
                    }
                    Ok(true)
                })
            })
            .await
            .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))?
        });
        Ok(builder.build())
    }
}
