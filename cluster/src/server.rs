//! recfusion's scheduler and executor: Ballista's, with every recfusion function, operator and
//! codec built in, so that `recfusion scheduler` and `recfusion executor` (one binary with the
//! client) make a cluster that runs recfusion's SQL. What each listens on and starts with is
//! logged through the `log` facade, as Ballista logs each job and task.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;

use crate::{MAX_MESSAGE_BYTES, RecfusionLogicalCodec, RecfusionPhysicalCodec};

/// How often an executor tells the scheduler it is alive, and how long the scheduler waits
/// for word before it counts the executor lost and runs its tasks elsewhere. Ballista's
/// defaults (60 s and 180 s) held a query for over three minutes after one executor of two
/// was killed; with these it goes on after about 25 s.
const EXECUTOR_HEARTBEAT_SECONDS: u64 = 5;
const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Where a scheduler listens.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Local IP address to bind to.
    pub bind_host: String,
    /// Port of the gRPC service: clients connect to `df://HOST:PORT`.
    pub bind_port: u16,
}

/// Runs a scheduler until it stops; an error says what could not start.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<(), String> {
    let address: SocketAddr = format!("{}:{}", options.bind_host, options.bind_port)
        .parse()
        .map_err(|e| {
            format!(
                "--bind-host {} --bind-port {}: not an address: {e}",
                options.bind_host, options.bind_port
            )
        })?;
    let max_message = MAX_MESSAGE_BYTES as u32;
    let config = SchedulerConfig {
        bind_host: options.bind_host.clone(),
        bind_port: options.bind_port,
        override_session_builder: Some(Arc::new(crate::scheduler_session)),
        override_config_producer: Some(Arc::new(crate::default_config)),
        override_logical_codec: Some(Arc::new(RecfusionLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RecfusionPhysicalCodec::default())),
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: EXECUTOR_HEARTBEAT_SECONDS,
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT_SECONDS,
        ..SchedulerConfig::default()
    }
    .with_grpc_server_max_decoding_message_size(max_message)
    .with_grpc_server_max_encoding_message_size(max_message)
    .with_grpc_client_max_message_size(max_message);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("setting up the cluster state: {e}"))?;
    log::info!(
        "recfusion scheduler listening on {address} (clients connect to df://HOST:{})",
        options.bind_port
    );
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| format!("serving on {address}: {e}"))
}

/// How an executor joins a scheduler.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Local IP address to bind to.
    pub bind_host: String,
    /// Port of the Arrow Flight service that serves shuffle data to other executors.
    pub bind_port: u16,
    /// Port of the executor's gRPC service.
    pub bind_grpc_port: u16,
    /// Task slots advertised to the scheduler (0: one per core).
    pub vcores: usize,
    /// Directory for shuffle files (default: a new temporary directory).
    pub work_dir: Option<String>,
}

/// Runs an executor until it stops; an error says what could not start.
pub async fn run_executor(options: ExecutorOptions) -> Result<(), String> {
    let vcores = match options.vcores {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let max_message = MAX_MESSAGE_BYTES as u32;
    let functions = crate::function_registry().map_err(|e| e.to_string())?;
    log::info!(
        "recfusion executor: Flight on {}:{}, gRPC on {}:{}, {vcores} task slots, work dir {}, scheduler {}:{}",
        options.bind_host,
        options.bind_port,
        options.bind_host,
        options.bind_grpc_port,
        options.work_dir.as_deref().unwrap_or("(a new temporary directory)"),
        options.scheduler_host,
        options.scheduler_port
    );
    let scheduler = format!("{}:{}", options.scheduler_host, options.scheduler_port);
    let config = ExecutorProcessConfig {
        scheduler_host: options.scheduler_host,
        scheduler_port: options.scheduler_port,
        bind_host: options.bind_host,
        port: options.bind_port,
        grpc_port: options.bind_grpc_port,
        vcores,
        work_dir: options.work_dir,
        grpc_max_decoding_message_size: max_message,
        grpc_max_encoding_message_size: max_message,
        override_function_registry: Some(Arc::new(functions)),
        override_config_producer: Some(Arc::new(crate::default_config)),
        override_logical_codec: Some(Arc::new(RecfusionLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RecfusionPhysicalCodec::default())),
        executor_heartbeat_interval_seconds: EXECUTOR_HEARTBEAT_SECONDS,
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("scheduler {scheduler}: {e}"))
}
