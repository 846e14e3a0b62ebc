use std::process::ExitCode;

use session_service::app::{Application, shutdown_signal};
use session_service::config::Config;
use session_service::telemetry;

const HELP: &str = "\
session-service: records phone-call sessions and their events over HTTP.

Usage: session-service [--help | --version | --openapi]

  --openapi   print the OpenAPI 3.1 description and exit

Configuration is read from the environment:
  PORT                3000                     listen port (0 = any free port)
  HOST                127.0.0.1                listen address
  DATABASE_URL        sqlite://data/sessions.db  or mongodb://HOST:PORT/DB
  SQLITE_SYNCHRONOUS  full                     full | normal (see README)
  MAX_BODY_BYTES      1048576                  larger request bodies get 413
  LOG_FORMAT          pretty                   pretty | json
  RUST_LOG            session_service=info,tower_http=info
  REQUEST_TIMEOUT_MS  15000                    a request taking longer gets 503 request_timeout
  SHUTDOWN_TIMEOUT_MS 20000                    in-flight requests may finish this long after SIGTERM
";

#[tokio::main]
async fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("--help" | "-h") => {
            print!("{HELP}");
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
            eprintln!("unknown argument {other:?}\n\n{HELP}");
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
