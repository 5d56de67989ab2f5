//! An in-process cluster: one scheduler and N executors on loopback, with real gRPC, Flight
//! and shuffle files — what `recfusion --local-cluster N` and the tests run on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ballista_core::RuntimeProducer;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;

/// Starts a scheduler and `executors` executors of `vcores` task slots each in this process;
/// returns the scheduler's address. They run until the process ends. With `memory_limit`,
/// each executor's queries share a pool of an equal part of it, as one process's do.
pub async fn start_local_cluster(executors: usize, vcores: usize, memory_limit: Option<usize>) -> Result<SocketAddr> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| DataFusionError::Execution(format!("local cluster: {what}: {e}"));
    let address = ballista_scheduler::standalone::new_standalone_scheduler_with_builder(
        Arc::new(crate::scheduler_session),
        Arc::new(crate::default_config),
        crate::codec(),
    )
    .await
    .map_err(|e| failed("starting the scheduler", &e))?;
    let url = format!("http://localhost:{}", address.port());
    for _ in 0..executors {
        let scheduler = connect(&url)
            .await
            .map_err(|e| failed("connecting to the scheduler", &e))?;
        ballista_executor::new_standalone_executor_from_builder(
            scheduler,
            vcores.max(1),
            Arc::new(crate::default_config),
            runtime(memory_limit.map(|limit| limit / executors.max(1))),
            crate::codec(),
            crate::function_registry()?,
        )
        .await
        .map_err(|e| failed("starting an executor", &e))?;
    }
    Ok(address)
}

async fn connect(
    url: &str,
) -> std::result::Result<SchedulerGrpcClient<tonic::transport::Channel>, tonic::transport::Error> {
    let mut attempts = 0;
    loop {
        match SchedulerGrpcClient::connect(url.to_string()).await {
            Ok(client) => return Ok(client),
            Err(e) if attempts >= 50 => return Err(e),
            Err(_) => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The runtime of an executor's tasks: one memory pool per executor, fair between spilling
/// operators, as a single process's `-m` is.
fn runtime(memory_limit: Option<usize>) -> RuntimeProducer {
    let pool: Option<Arc<dyn MemoryPool>> = memory_limit.map(|limit| Arc::new(FairSpillPool::new(limit)) as _);
    Arc::new(move |_| {
        let mut builder = RuntimeEnvBuilder::new();
        if let Some(pool) = &pool {
            builder = builder.with_memory_pool(Arc::clone(pool));
        }
        Ok(Arc::new(builder.build()?))
    })
}
