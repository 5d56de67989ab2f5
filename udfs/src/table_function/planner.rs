//! Physical planning of table function calls: [`TableCallPlanner`] turns a [`TableCallNode`]
//! into its operator; [`TableCallQueryPlanner`] uses it for the queries that hold one.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use datafusion::arrow::datatypes::SchemaRef;

use super::{ComputeExec, TableCall, TableCallNode, TableFunction};

/// Plans [`TableCallNode`]s; add it to a session's own `DefaultPhysicalPlanner` when the
/// session has a query planner of its own.
#[derive(Debug, Default)]
pub struct TableCallPlanner;

#[async_trait]
impl ExtensionPlanner for TableCallPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<TableCallNode>() else {
            return Ok(None);
        };
        let schema = Arc::clone(node.schema.inner());
        operator(&node.call, &node.function, physical_inputs, schema).map(Some)
    }
}

/// The operator that runs `call` over `inputs`: the function's own, or a [`ComputeExec`].
/// Planning and decoding a shipped plan both build operators here, so they cannot differ.
pub fn operator(
    call: &TableCall,
    function: &Arc<dyn TableFunction>,
    inputs: &[Arc<dyn ExecutionPlan>],
    schema: SchemaRef,
) -> Result<Arc<dyn ExecutionPlan>> {
    if let Some(operator) = function.own_operator(call, inputs, &schema)? {
        return Ok(operator);
    }
    Ok(Arc::new(ComputeExec::new(
        call.clone(),
        Arc::clone(function),
        inputs.to_vec(),
        schema,
    )))
}

/// A query planner that plans queries holding table function calls with
/// [`TableCallPlanner`], and hands every other query to the session's previous planner.
#[derive(Debug)]
pub struct TableCallQueryPlanner {
    previous: Arc<dyn QueryPlanner + Send + Sync>,
}

impl TableCallQueryPlanner {
    pub fn wrapping(previous: Arc<dyn QueryPlanner + Send + Sync>) -> Self {
        Self { previous }
    }
}

#[async_trait]
impl QueryPlanner for TableCallQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !has_table_call(logical_plan)? {
            return self.previous.create_physical_plan(logical_plan, session).await;
        }
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(TableCallPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

fn has_table_call(plan: &LogicalPlan) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Extension(extension) = node
            && extension.node.as_any().is::<TableCallNode>()
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}
