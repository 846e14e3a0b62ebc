//! Log setup (pretty or JSON lines on stdout, filtered by `RUST_LOG`) and the process's metrics
//! (every one listed, with its help text, in [`catalog`]).

mod catalog;

use std::sync::{Once, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter)
        .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The process's Prometheus recorder: the one `/metrics` renders. Handles registered with it
/// (`metrics::with_local_recorder`) count whether or not it is the global recorder yet, so code
/// given a `Metrics` need not care in which order the application started up.
#[derive(Clone, Copy)]
pub struct Metrics(&'static PrometheusRecorder);

impl Metrics {
    /// The recorder, to register handles with.
    pub fn recorder(self) -> &'static (dyn metrics::Recorder + Sync) {
        self.0
    }

    /// Every metric in the Prometheus text format.
    pub fn render(self) -> String {
        self.0.handle().render()
    }
}

/// The process's metrics, made on first use; that first use also installs the recorder as the
/// global one, for the `metrics::counter!` calls that look their handle up as they go.
pub fn metrics() -> Metrics {
    static RECORDER: OnceLock<PrometheusRecorder> = OnceLock::new();
    static INSTALLED: Once = Once::new();
    let recorder = RECORDER.get_or_init(|| {
        const SECONDS: &[f64] = &[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
        // A batch append holds 1 to 100 events.
        const BATCH_EVENTS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("sqlite_write_batch_size".into()), BATCH)
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("event_batch_size".into()), BATCH_EVENTS)
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        catalog::describe(&recorder);
        recorder
    });
    // Fails only if another recorder was installed first; handles registered through `Metrics`
    // still count here.
    INSTALLED.call_once(|| {
        let _ = metrics::set_global_recorder(recorder);
    });
    Metrics(recorder)
}
