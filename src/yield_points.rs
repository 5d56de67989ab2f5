//! Joins that give way: a cross or nested-loop join can emit millions of batches from one
//! batch of its input without ever waiting, so the task running it never yields to tokio and
//! cannot be aborted — Ctrl-C printed "cancelled" while a core stayed busy. This physical
//! optimizer rule puts DataFusion's `CooperativeExec` above every join, which spends tokio's
//! cooperative budget per batch and so yields now and then; an aborted query then stops at the
//! next batch.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::SchedulingType;

#[derive(Debug, Default)]
pub struct JoinsYield;

/// Joins whose output is not bounded by polls of their inputs.
fn emits_unboundedly(plan: &dyn ExecutionPlan) -> bool {
    matches!(
        plan.name(),
        "CrossJoinExec" | "NestedLoopJoinExec" | "HashJoinExec" | "SortMergeJoinExec" | "SymmetricHashJoinExec"
    ) && plan.properties().scheduling_type != SchedulingType::Cooperative
}

impl PhysicalOptimizerRule for JoinsYield {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if emits_unboundedly(node.as_ref()) {
                let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(node));
                return Ok(Transformed::yes(wrapped));
            }
            Ok(Transformed::no(node))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "joins_yield"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
