//! What `recfusion scheduler` and `recfusion executor` print while they work: every record of
//! the `log` facade — Ballista's own: executors registering, jobs queued, submitted and
//! finished, each task started and finished with its duration, errors — at the level `RUST_LOG`
//! asks for (default `info`; `warn`, `debug`, or `target=level` pairs separated by commas), one
//! line each on stderr with its UTC time, level and origin. The end of a job also says how long
//! the job took, which Ballista's message leaves out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use log::{LevelFilter, Log, Metadata, Record};

/// The levels `RUST_LOG` asks for: a default and per-target ones.
#[derive(Debug, PartialEq)]
struct Filter {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
}

impl Filter {
    /// Reads a `RUST_LOG` value; a part that names no level is reported in `unknown`.
    fn parse(spec: &str, unknown: &mut Vec<String>) -> Self {
        let mut filter = Filter {
            default: LevelFilter::Info,
            targets: Vec::new(),
        };
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((target, level)) => match level.parse() {
                    Ok(level) => filter.targets.push((target.to_string(), level)),
                    Err(_) => unknown.push(part.to_string()),
                },
                None => match part.parse() {
                    Ok(level) => filter.default = level,
                    // A bare target turns everything on for it, as env_logger reads it.
                    Err(_) => filter.targets.push((part.to_string(), LevelFilter::Trace)),
                },
            }
        }
        // The longest prefix decides.
        filter
            .targets
            .sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        filter
    }

    fn level(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(self.default, |(_, level)| *level)
    }

    fn most(&self) -> LevelFilter {
        self.targets
            .iter()
            .map(|(_, level)| *level)
            .fold(self.default, |a, b| a.max(b))
    }
}

struct Logger {
    filter: Filter,
    /// When each running job was submitted.
    jobs: Mutex<HashMap<String, Instant>>,
}

/// The job id of a Ballista message `Job …: [id]`.
fn job_id(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Job ")?;
    let (_, id) = rest.split_once('[')?;
    id.strip_suffix(']')
}

impl Logger {
    /// `message`, with the job's duration when it ends one.
    fn timed(&self, message: String) -> String {
        let Some(id) = job_id(&message) else {
            return message;
        };
        let Ok(mut jobs) = self.jobs.lock() else {
            return message;
        };
        if message.starts_with("Job submitted") {
            jobs.insert(id.to_string(), Instant::now());
            return message;
        }
        let ended = ["Job finished", "Job failed", "Job cancelled"]
            .iter()
            .any(|p| message.starts_with(p));
        match (ended, jobs.remove(id)) {
            (true, Some(started)) => format!("{message} in {:.3} s", started.elapsed().as_secs_f64()),
            (_, Some(started)) => {
                jobs.insert(id.to_string(), started);
                message
            }
            _ => message,
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.filter.level(metadata.target())
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = self.timed(record.args().to_string());
        eprintln!("{} {:<5} {}: {message}", now_utc(), record.level(), record.target());
    }

    fn flush(&self) {}
}

/// The current time as `2026-12-02T18:20:00.123Z`.
fn now_utc() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Sends the `log` facade's records to stderr at the levels `RUST_LOG` asks for.
pub fn init() {
    let mut unknown = Vec::new();
    let filter = Filter::parse(&std::env::var("RUST_LOG").unwrap_or_default(), &mut unknown);
    let most = filter.most();
    let logger = Logger {
        filter,
        jobs: Mutex::new(HashMap::new()),
    };
    // One logger for the process's life.
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(most);
    }
    for part in unknown {
        log::warn!("RUST_LOG: '{part}' names no level (error, warn, info, debug, trace, off); ignored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_values() {
        let mut unknown = Vec::new();
        let filter = Filter::parse("warn,ballista_executor=debug,ballista=error,x=loud", &mut unknown);
        assert_eq!(filter.default, LevelFilter::Warn);
        assert_eq!(filter.level("ballista_executor::executor_server"), LevelFilter::Debug);
        assert_eq!(filter.level("ballista_scheduler"), LevelFilter::Error);
        assert_eq!(filter.level("tonic"), LevelFilter::Warn);
        assert_eq!(unknown, ["x=loud"]);
        assert_eq!(Filter::parse("", &mut unknown).default, LevelFilter::Info);
    }

    #[test]
    fn a_finished_job_says_how_long_it_took() {
        let logger = Logger {
            filter: Filter::parse("", &mut Vec::new()),
            jobs: Mutex::new(HashMap::new()),
        };
        assert_eq!(logger.timed("Job submitted: [abc]".to_string()), "Job submitted: [abc]");
        let finished = logger.timed("Job finished successfully: [abc]".to_string());
        assert!(
            finished.starts_with("Job finished successfully: [abc] in "),
            "{finished}"
        );
        assert!(finished.ends_with(" s"), "{finished}");
        assert_eq!(
            logger.timed("Job finished successfully: [unknown]".to_string()),
            "Job finished successfully: [unknown]"
        );
    }
}
