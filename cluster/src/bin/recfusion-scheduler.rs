//! `recfusion-scheduler`: a Ballista scheduler that plans recfusion's SQL — every recfusion
//! function and table function call — for `recfusion --cluster df://HOST:PORT`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use clap::Parser;
use recfusion_cluster::{RecfusionLogicalCodec, RecfusionPhysicalCodec};

/// Runs a Ballista scheduler with every recfusion function built in.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Local IP address to bind to.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// Port of the scheduler's gRPC service: clients connect to df://HOST:PORT.
    #[arg(long, default_value_t = 50050)]
    bind_port: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("recfusion-scheduler: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let address: SocketAddr = format!("{}:{}", args.bind_host, args.bind_port).parse().map_err(|e| {
        format!(
            "--bind-host {} --bind-port {}: not an address: {e}",
            args.bind_host, args.bind_port
        )
    })?;
    let max_message = recfusion_cluster::MAX_MESSAGE_BYTES as u32;
    let config = SchedulerConfig {
        bind_host: args.bind_host.clone(),
        bind_port: args.bind_port,
        override_session_builder: Some(Arc::new(recfusion_cluster::scheduler_session)),
        override_config_producer: Some(Arc::new(recfusion_cluster::default_config)),
        override_logical_codec: Some(Arc::new(RecfusionLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RecfusionPhysicalCodec::default())),
        ..SchedulerConfig::default()
    }
    .with_grpc_server_max_decoding_message_size(max_message)
    .with_grpc_server_max_encoding_message_size(max_message)
    .with_grpc_client_max_message_size(max_message);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("setting up the cluster state: {e}"))?;
    eprintln!("recfusion-scheduler listening on {address}");
    ballista_scheduler::scheduler_process::start_server(cluster, address, Arc::new(config))
        .await
        .map_err(|e| e.to_string())
}
