//! The `recfusion` command: runs SQL given with `-c` and `-f` in order, or the interactive
//! shell when neither is given; `recfusion scheduler` and `recfusion executor` run the servers
//! of a cluster, `recfusion docs` prints the function reference.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser};
use recfusion::cluster::ClusterOptions;
use recfusion::exec::{PrintOptions, Runner, ScriptFileError};
use recfusion::print::PrintFormat;
use recfusion::script::parse_definition;
use recfusion::session::{SessionOptions, new_cluster_session, new_session, parse_memory_size};
use recfusion::udfs::models::progress::{ProgressMode, TrainingProgress};

/// mimalloc keeps freed memory for reuse: candle's training allocates and frees large
/// temporary tensors at every step, and the system allocator handed them back to the kernel
/// each time (more system time than user time, tens of millions of page faults). Its
/// settings: [`recfusion::allocation`].
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  recfusion                                         start the interactive shell
  recfusion -f examples/quickstart.sql              run a script on the bundled demo data
  recfusion -c \"SELECT * FROM 'events.parquet' LIMIT 5\"
  recfusion -f nightly.sql --define day=2026-01-31 -q --format csv > out.csv
  recfusion -m 4G -f big_job.sql --continue-on-error
  recfusion --attach out/recs.sqlite=out -f nightly.sql   write results with CREATE OR REPLACE TABLE out.recs AS …
  recfusion --cluster df://scheduler:50050 --cluster-dir /shared/tmp -f nightly.sql
  recfusion --local-cluster 2 -f examples/quickstart.sql  try a cluster on this machine
  recfusion scheduler --bind-port 50050                 the scheduler of a cluster
  recfusion executor --scheduler-host sched --work-dir /var/tmp/rf   one of its executors";

/// recfusion: SQL for user profiles and recommendations, on Apache DataFusion.
#[derive(Debug, Parser)]
#[command(name = "recfusion", version, about, after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    server: Option<Server>,

    /// Run this SQL (repeatable; runs in order with --file). SQL may start with `-`, as a
    /// `-- comment` does.
    #[arg(short = 'c', long = "command", value_name = "SQL", allow_hyphen_values = true)]
    commands: Vec<String>,

    /// Run the SQL statements in FILE (repeatable; runs in order with --command).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Output format of query results.
    #[arg(long, value_enum, default_value_t = PrintFormat::Table)]
    format: PrintFormat,

    /// No row/timing footer.
    #[arg(short, long)]
    quiet: bool,

    /// Rows a table shows at most (default: 40 in the shell, all in batch mode; 0 = all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    maxrows: Option<usize>,

    /// Define a variable, substituted into statements as ${NAME} (repeatable).
    #[arg(long = "define", short = 'D', value_name = "NAME=VALUE")]
    defines: Vec<String>,

    /// Memory limit for queries, e.g. 512M or 4G.
    #[arg(short, long, value_name = "SIZE")]
    memory_limit: Option<String>,

    /// Directory of the models kept by name (`model => 'als_v1'`, `models()`, `DROP MODEL`);
    /// default: $RECFUSION_MODELS, else recfusion/models in the user's data directory.
    #[arg(long, value_name = "DIR")]
    models: Option<PathBuf>,

    /// Attach a SQLite file as schema NAME (default: the file's stem), as ATTACH 'PATH' AS NAME
    /// would (repeatable); the file is created if it does not exist.
    #[arg(long, short = 'a', value_name = "PATH[=NAME]")]
    attach: Vec<String>,

    /// Keep running a batch after a statement fails (the exit code still reports the failure).
    #[arg(long)]
    continue_on_error: bool,

    /// Run queries on the Ballista cluster whose scheduler (`recfusion scheduler`) is at
    /// df://HOST:PORT.
    #[arg(long, value_name = "URL", conflicts_with = "local_cluster")]
    cluster: Option<String>,

    /// Run queries on a cluster of N executors started in this process, over loopback.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    local_cluster: Option<u16>,

    /// Directory, at the same path on every executor, where tables created in a cluster
    /// session that are too large to travel with each query are kept as Parquet (default with
    /// --local-cluster: a temporary directory).
    #[arg(long, value_name = "DIR")]
    cluster_dir: Option<PathBuf>,
}

/// The servers of a cluster, and the function reference.
#[derive(Debug, clap::Subcommand)]
enum Server {
    /// Runs a cluster's scheduler, with every recfusion function built in: clients connect with
    /// `recfusion --cluster df://HOST:PORT`. Logs to stderr (RUST_LOG, default info).
    Scheduler {
        /// Local IP address to bind to.
        #[arg(long, default_value = "0.0.0.0")]
        bind_host: String,
        /// Port of the scheduler's gRPC service.
        #[arg(long, default_value_t = 50050)]
        bind_port: u16,
    },
    /// Runs a cluster's executor, with every recfusion function and operator built in,
    /// registering with the scheduler. Logs to stderr (RUST_LOG, default info).
    Executor {
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
    },
    /// Prints the function reference (docs/functions.md), written from every function's own
    /// documentation.
    Docs,
}

/// Runs a server until it stops.
async fn serve(server: Server) -> ExitCode {
    recfusion::server_log::init();
    let (name, result) = match server {
        Server::Scheduler { bind_host, bind_port } => (
            "scheduler",
            recfusion_cluster::server::run_scheduler(recfusion_cluster::server::SchedulerOptions {
                bind_host,
                bind_port,
            })
            .await,
        ),
        Server::Executor {
            scheduler_host,
            scheduler_port,
            bind_host,
            bind_port,
            bind_grpc_port,
            vcores,
            work_dir,
        } => (
            "executor",
            recfusion_cluster::server::run_executor(recfusion_cluster::server::ExecutorOptions {
                scheduler_host,
                scheduler_port,
                bind_host,
                bind_port,
                bind_grpc_port,
                vcores,
                work_dir,
            })
            .await,
        ),
        Server::Docs => {
            print!("{}", recfusion::udfs::function_reference::markdown());
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("recfusion {name}: {message}");
            eprintln!("Error: recfusion {name}: {message}");
            ExitCode::FAILURE
        }
    }
}

/// One unit of batch work, in command-line order.
enum Job {
    Command(usize, String),
    File(PathBuf),
    Stdin,
}

fn jobs_in_order(matches: &clap::ArgMatches, args: &Args) -> Vec<Job> {
    let mut ordered: Vec<(usize, Job)> = Vec::new();
    if let Some(indices) = matches.indices_of("commands") {
        for (n, (index, sql)) in indices.zip(&args.commands).enumerate() {
            ordered.push((index, Job::Command(n + 1, sql.clone())));
        }
    }
    if let Some(indices) = matches.indices_of("files") {
        for (index, file) in indices.zip(&args.files) {
            ordered.push((index, Job::File(file.clone())));
        }
    }
    ordered.sort_by_key(|(index, _)| *index);
    ordered.into_iter().map(|(_, job)| job).collect()
}

/// The cluster a session runs on, if any, with the temporary directory of a local cluster
/// (removed when dropped).
async fn cluster_options(
    args: &Args,
    memory_limit: Option<usize>,
) -> Result<Option<(ClusterOptions, Option<TemporaryDir>)>, String> {
    if args.cluster_dir.is_some() && args.cluster.is_none() && args.local_cluster.is_none() {
        return Err("--cluster-dir goes with --cluster or --local-cluster".to_string());
    }
    if let Some(url) = &args.cluster {
        let cluster = ClusterOptions {
            url: url.clone(),
            dir: args.cluster_dir.clone(),
            target_partitions: None,
        };
        return Ok(Some((cluster, None)));
    }
    let Some(executors) = args.local_cluster else {
        return Ok(None);
    };
    let executors = usize::from(executors);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let vcores = (cores / executors).max(1);
    let address = recfusion_cluster::local::start_local_cluster(executors, vcores, memory_limit)
        .await
        .map_err(|e| e.to_string())?;
    let (dir, temporary) = match &args.cluster_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = TemporaryDir::create()?;
            (dir.0.clone(), Some(dir))
        }
    };
    let cluster = ClusterOptions {
        url: format!("df://localhost:{}", address.port()),
        dir: Some(dir),
        target_partitions: Some((executors * vcores).max(4)),
    };
    Ok(Some((cluster, temporary)))
}

/// A directory of this process, removed with everything in it when dropped.
struct TemporaryDir(PathBuf);

impl TemporaryDir {
    fn create() -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("recfusion-cluster-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> ExitCode {
    recfusion::allocation::tune_process();
    let matches = Args::command().get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("Error: cannot start the query runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(server) = args.server {
        return runtime.block_on(serve(server));
    }
    runtime.block_on(run(&matches, args))
}

async fn run(matches: &clap::ArgMatches, args: Args) -> ExitCode {
    let fail = |message: String| {
        eprintln!("Error: {message}");
        ExitCode::FAILURE
    };
    let mut variables = HashMap::new();
    for definition in &args.defines {
        match parse_definition(definition) {
            Ok((name, value)) => variables.insert(name, value),
            Err(error) => return fail(error.message().into_owned()),
        };
    }
    let memory_limit = match args.memory_limit.as_deref().map(parse_memory_size).transpose() {
        Ok(limit) => limit,
        Err(error) => return fail(format!("-m/--memory-limit: {}", error.message())),
    };
    let options = SessionOptions {
        memory_limit,
        models_dir: args.models.clone(),
    };
    let cluster = match cluster_options(&args, memory_limit).await {
        Ok(cluster) => cluster,
        Err(error) => return fail(error),
    };
    let session = match &cluster {
        Some((cluster, _)) => new_cluster_session(&options, cluster).await,
        None => new_session(&options),
    };
    let ctx = match (session, &cluster) {
        (Ok(ctx), _) => ctx,
        (Err(error), Some((cluster, _))) => return fail(format!("--cluster {}: {}", cluster.url, error.message())),
        (Err(error), None) => return fail(error.to_string()),
    };
    // Training reports on stderr: a bar at a terminal, one line otherwise, nothing with -q.
    let progress = match (args.quiet, std::io::stderr().is_terminal()) {
        (true, _) => ProgressMode::Off,
        (false, true) => ProgressMode::Bar,
        (false, false) => ProgressMode::Line,
    };
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(TrainingProgress(progress)));
    for attachment in &args.attach {
        let (path, name) = match attachment.rsplit_once('=') {
            Some((path, name)) => (PathBuf::from(path), name.to_string()),
            None => {
                let path = PathBuf::from(attachment);
                match recfusion::statement::default_name(&path) {
                    Ok(name) => (path, name),
                    Err(error) => return fail(format!("--attach {attachment}: {}", error.message())),
                }
            }
        };
        if let Err(error) = recfusion::sqlite::attach(&ctx, &path, &name, Default::default()) {
            return fail(format!("--attach {attachment}: {}", error.message()));
        }
    }
    let mut jobs = jobs_in_order(matches, &args);
    // Statements piped in are a batch, run as a file would be: `recfusion < nightly.sql`.
    if jobs.is_empty() && !std::io::stdin().is_terminal() {
        jobs.push(Job::Stdin);
    }
    let interactive = jobs.is_empty();
    let max_rows = match args.maxrows {
        Some(0) => None,
        Some(n) => Some(n),
        None if interactive => Some(40),
        None => None,
    };
    let mut runner = Runner::new(ctx);
    runner.print = PrintOptions {
        format: args.format,
        max_rows,
        quiet: args.quiet,
        timing: true,
    };
    runner.variables = variables;
    runner.continue_on_error = args.continue_on_error;

    if interactive {
        let _local_cluster_dir = cluster.and_then(|(_, dir)| dir);
        return match recfusion::repl::run(&mut runner).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(error.to_string()),
        };
    }
    let mut failed = false;
    let _local_cluster_dir = cluster.and_then(|(_, dir)| dir);
    for job in jobs {
        let result = match job {
            Job::Command(n, sql) => runner.run_script(&sql, &format!("--command #{n}")).await,
            Job::File(path) => match runner.run_file(&path, "-f").await {
                Ok(()) => Ok(()),
                Err(ScriptFileError::Failed(error)) => Err(error),
                Err(ScriptFileError::Refused(message)) => return fail(message),
            },
            Job::Stdin => match std::io::read_to_string(std::io::stdin()) {
                Ok(text) => runner.run_script(&text, "<stdin>").await,
                Err(error) => return fail(format!("cannot read standard input: {error}")),
            },
        };
        if let Err(error) = result {
            if !runner.continue_on_error {
                return fail(error.to_string());
            }
            failed = true;
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
