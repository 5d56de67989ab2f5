//! `recfusion-executor`: a Ballista executor that runs recfusion's operators and functions,
//! registering with a `recfusion-scheduler`.

use std::process::ExitCode;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use clap::Parser;
use recfusion_cluster::{RecfusionLogicalCodec, RecfusionPhysicalCodec};

/// Runs a Ballista executor with every recfusion function and operator built in.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Host name or address of the scheduler.
    #[arg(long, default_value = "localhost")]
    scheduler_host: String,
    /// Port of the scheduler.
    #[arg(long, default_value_t = 50050)]
    scheduler_port: u16,
    /// Local IP address to bind to.
    #[arg(long, default_value = "0.0.0.0")]
    bind_host: String,
    /// Port of the Arrow Flight service that serves shuffle data to other executors.
    #[arg(short = 'p', long, default_value_t = 50051)]
    bind_port: u16,
    /// Port of the executor's gRPC service.
    #[arg(long, default_value_t = 50052)]
    bind_grpc_port: u16,
    /// Task slots advertised to the scheduler (0: one per core).
    #[arg(short = 'c', long, default_value_t = 0)]
    vcores: usize,
    /// Directory for shuffle files (default: a new temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let vcores = match args.vcores {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let max_message = recfusion_cluster::MAX_MESSAGE_BYTES as u32;
    let functions = match recfusion_cluster::function_registry() {
        Ok(functions) => functions,
        Err(e) => {
            eprintln!("recfusion-executor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ExecutorProcessConfig {
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        bind_host: args.bind_host,
        port: args.bind_port,
        grpc_port: args.bind_grpc_port,
        vcores,
        work_dir: args.work_dir,
        grpc_max_decoding_message_size: max_message,
        grpc_max_encoding_message_size: max_message,
        override_function_registry: Some(Arc::new(functions)),
        override_config_producer: Some(Arc::new(recfusion_cluster::default_config)),
        override_logical_codec: Some(Arc::new(RecfusionLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(RecfusionPhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    match start_executor_process(Arc::new(config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recfusion-executor: {e}");
            ExitCode::FAILURE
        }
    }
}
