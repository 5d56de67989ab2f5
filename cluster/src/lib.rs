//! recfusion on an Apache DataFusion Ballista cluster: what a scheduler, an executor and a
//! client need to run recfusion's SQL — every function ([`function_registry`],
//! [`scheduler_session`]), the codecs of its plan nodes ([`codec`]), the session settings they
//! share ([`cluster_config`]) — the scheduler and executor themselves ([`server`]), and an
//! in-process cluster for trying it on one machine ([`local`]).

pub mod codec;
pub mod local;
pub mod server;

use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaCodec;
use datafusion::common::Result;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

pub use codec::{MEMORY_TABLE_CAP, RecfusionLogicalCodec, RecfusionPhysicalCodec};

/// The largest gRPC message between client, scheduler and executors: plans carry in-memory
/// tables of up to [`MEMORY_TABLE_CAP`] each.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// Ballista's settings with recfusion's codecs, as client, scheduler and executors use them.
///
/// The static distributed planner, not the adaptive one: the adaptive planner replaces the
/// session's physical optimizer rules with its own list, which brings back `LimitPushdown`
/// (see [`scheduler_session`]).
pub fn cluster_config(config: SessionConfig) -> SessionConfig {
    config
        .upgrade_for_ballista()
        .set_bool(ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED, false)
        .with_ballista_logical_extension_codec(Arc::new(RecfusionLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(RecfusionPhysicalCodec::default()))
        .with_ballista_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
}

/// The configuration a scheduler or executor starts its sessions from.
pub fn default_config() -> SessionConfig {
    cluster_config(SessionConfig::new_with_ballista())
}

/// Both codecs, for a scheduler or executor.
pub fn codec() -> BallistaCodec {
    BallistaCodec::new(
        Arc::new(RecfusionLogicalCodec::default()),
        Arc::new(RecfusionPhysicalCodec::default()),
    )
}

/// The scheduler's session: Ballista's, with every recfusion function and the planner of
/// recfusion's table function calls and the bound on wide scans' batches, without the
/// `LimitPushdown` rule: it moves a `LIMIT`
/// into the scan of an in-memory table, and Ballista 55 drops that limit when it hands the
/// scan's partitions to tasks (`SELECT … FROM t LIMIT 1` returned every row). The `LIMIT`
/// stays an operator of its own instead.
pub fn scheduler_session(config: SessionConfig) -> Result<SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    let mut rules: Vec<_> = state
        .physical_optimizers()
        .iter()
        .filter(|rule| rule.name() != "LimitPushdown")
        .cloned()
        .collect();
    rules.push(Arc::new(recfusion_udfs::files::wide_scans::BoundWideScans));
    let state = SessionStateBuilder::new_from_existing(state)
        .with_physical_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    recfusion_udfs::register_all(&ctx)?;
    Ok(ctx.state())
}

/// The functions an executor resolves by name in the plans it runs: those of the scheduler's
/// session — DataFusion's (Ballista's default registry leaves out the nested ones, such as
/// `make_array`) and every recfusion scalar and aggregate function. Table function calls
/// travel as plan nodes.
pub fn function_registry() -> Result<BallistaFunctionRegistry> {
    Ok(BallistaFunctionRegistry::from(&scheduler_session(default_config())?))
}
