//! Scans of very wide files in short batches. DataFusion's CSV and JSON readers size each
//! batch's buffers by rows × columns (the CSV decoder keeps an offset per cell of the batch), so
//! a file of 50,000 columns read in batches of 8,192 rows took some 19 GB for a 6 MB file, far
//! past `-m`, which does not see those buffers. This physical optimizer rule gives every file
//! scan at most [`BATCH_CELLS`] cells per batch: narrow files keep the session's batch size.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// The most cells (rows × columns) a scan's batch may hold: 8,192 rows of 128 columns.
pub const BATCH_CELLS: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct BoundWideScans;

impl PhysicalOptimizerRule for BoundWideScans {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let session_rows = usize::from(config.execution.batch_size);
        plan.transform_up(|node| {
            let Some(scan) = node
                .downcast_ref::<DataSourceExec>()
                .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
            else {
                return Ok(Transformed::no(node));
            };
            let columns = scan.file_schema().fields().len().max(1);
            let rows = (BATCH_CELLS / columns).max(1);
            if rows >= scan.batch_size.unwrap_or(session_rows) {
                return Ok(Transformed::no(node));
            }
            let mut bounded = scan.clone();
            bounded.batch_size = Some(rows);
            let bounded: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(bounded);
            Ok(Transformed::yes(bounded))
        })
        .map(|transformed| transformed.data)
    }

    fn name(&self) -> &str {
        "bound_wide_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
