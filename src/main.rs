use std::process::ExitCode;

use session_service::app::{Application, shutdown_signal};
use session_service::config::Config;
use session_service::telemetry;

/// mimalloc rather than the system allocator: a request makes a few dozen small allocations, often
/// freed on another thread (a tokio worker, the SQLite writer), where glibc's malloc took ~15 % of
/// the instructions of an ingest (BENCHMARKS.md, "Profile"). The benchmark's baselines use it too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
session-service: records phone-call sessions and their events over HTTP.

Usage: session-service [--help | --version | --openapi]

  --openapi   print the OpenAPI 3.1 description and exit
";

fn help() -> String {
    format!("{USAGE}\n{}", session_service::config::help_text())
}

/// Every connection is a file descriptor: the soft RLIMIT_NOFILE (often 1,024) is raised to the
/// hard limit, and both are logged, so the service is not refused connections long before the
/// system would refuse them.
fn raise_open_files_limit() {
    use rlimit::Resource;
    let (soft, hard) = match Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            return;
        }
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(raised) => tracing::info!(soft_before = soft, soft = raised, hard, "open files limit"),
        Err(e) => tracing::warn!(
            error = %e,
            soft,
            hard,
            "cannot raise the open files limit to the hard limit"
        ),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--help" | "-h") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some("--openapi") => {
            println!("{}", session_service::api::openapi::document());
            return ExitCode::SUCCESS;
        }
        Some("--version" | "-V") => {
            println!("session-service {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown argument {other:?}\n\n{}", help());
            return ExitCode::from(2);
        }
        None => {}
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("session-service: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_filter);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        backend = %config.database.redacted(),
        "starting"
    );
    raise_open_files_limit();
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            tracing::error!("{message}");
            eprintln!("session-service: {message}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(address = %app.local_addr(), "listening");
    match app.run_until(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server error");
            ExitCode::FAILURE
        }
    }
}
