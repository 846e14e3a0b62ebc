//! The real `session-service` binary as a child process: started with environment overrides on a
//! free port, found by the address it logs, its output captured line by line for assertions, and
//! stopped by SIGTERM, `kill -9` or a dropped handle (a failing test leaves no process behind).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ServiceStore;

/// How long a started service may take to log its address (and to answer `/ready`).
pub const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// How long a run of the binary that should exit by itself (`--help`, a bad setting) may take.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// How long a dropped [`ServiceProcess`] has to exit after SIGTERM before it is killed.
const DROP_GRACE: Duration = Duration::from_secs(5);
/// How many lines [`ServiceProcess::output`] shows at the most.
const OUTPUT_LINES: usize = 200;

/// How to start the binary: its environment, and nothing else from the test's environment (API
/// keys, timeouts) reaches it. `HOST=127.0.0.1` and `PORT=0` unless overridden.
#[derive(Debug, Clone)]
pub struct ServiceCommand {
    env: Vec<(String, String)>,
}

impl Default for ServiceCommand {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceCommand {
    pub fn new() -> ServiceCommand {
        ServiceCommand { env: Vec::new() }
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
    }

    /// Sets `name` (a later setting of the same name wins).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> ServiceCommand {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Sets `DATABASE_URL` to `store`'s.
    pub fn store(self, store: &ServiceStore) -> ServiceCommand {
        let url = store.database_url.clone();
        self.env("DATABASE_URL", url)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_session-service"));
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts the service with JSON logs and waits (at most [`STARTUP_LIMIT`]) for the address
    /// it logs.
    pub async fn start(&self) -> ServiceProcess {
        let mut command = self.command(&[]);
        if !self.env.iter().any(|(k, _)| k == "LOG_FORMAT") {
            command.env("LOG_FORMAT", "json");
        }
        let mut child = command.spawn().expect("start the session-service binary");
        let logs = Logs::default();
        let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_logs = logs.clone();
        let stdout_reader = std::thread::spawn(move || {
            let mut address_tx = Some(address_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(entry) = serde_json::from_str::<Value>(&line)
                    && entry["message"] == "listening"
                    && let Some(address) = entry["address"].as_str()
                    && let Some(tx) = address_tx.take()
                {
                    let _ = tx.send(address.to_owned());
                }
                stdout_logs.push(Stream::Stdout, line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr_logs = logs.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                stderr_logs.push(Stream::Stderr, line);
            }
        });
        let database_url = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| v.clone());
        let mut service = ServiceProcess {
            child,
            database_url,
            addr: String::new(),
            logs,
            readers: vec![stdout_reader, stderr_reader],
            exited: None,
        };
        match tokio::time::timeout(STARTUP_LIMIT, address_rx).await {
            Ok(Ok(address)) => service.addr = address,
            Ok(Err(_)) => {
                // Give the stderr reader a moment to collect the reason.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "session-service ended its output before logging a listening address \
                     (exit: {:?}); its output:\n{}",
                    service.child.try_wait(),
                    service.output()
                )
            }
            Err(_) => panic!(
                "session-service did not log a listening address within {STARTUP_LIMIT:?}; \
                 its output:\n{}",
                service.output()
            ),
        }
        service
    }

    /// Runs the binary with `args` to completion (at most 20 s).
    pub fn run(&self, args: &[&str]) -> Finished {
        let mut child = self.command(args).spawn().expect("start session-service");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll") {
                break status;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "session-service {args:?} with {:?} did not exit within {RUN_LIMIT:?}",
                    self.env
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Finished {
            code: status.code(),
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }
}

/// How a run of the binary ended, and what it wrote.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// Every line the child wrote, in the order the readers saw them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<(Stream, String)>>>);

impl Logs {
    fn push(&self, stream: Stream, line: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((stream, line));
    }

    fn lines(&self, stream: Stream) -> Vec<String> {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// A running `session-service`; dropping it kills the child.
pub struct ServiceProcess {
    child: Child,
    /// `host:port` it listens on.
    addr: String,
    logs: Logs,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
    /// The `DATABASE_URL` it was started with, if any.
    database_url: Option<String>,
}

impl ServiceProcess {
    /// `host:port` it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://host:port`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`STARTUP_LIMIT`]) for `/ready` to answer 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("http client");
        loop {
            let ready = client.get(self.url("/ready")).send().await;
            if matches!(&ready, Ok(r) if r.status() == 200) {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "session-service listened at {} but /ready did not answer 200 within \
                 {STARTUP_LIMIT:?} (last: {ready:?}); its output:\n{}",
                self.addr,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the process wrote so far, for failure messages: stderr lines marked `stderr: `, the
    /// access lines of requests that did not fail with a 5xx left out, the last 200 lines.
    pub fn output(&self) -> String {
        let lines = self.logs.0.lock().unwrap_or_else(|e| e.into_inner());
        let kept: Vec<String> = lines
            .iter()
            .filter(|(_, l)| !is_quiet_access_line(l))
            .map(|(stream, l)| match stream {
                Stream::Stdout => l.clone(),
                Stream::Stderr => format!("stderr: {l}"),
            })
            .collect();
        kept[kept.len().saturating_sub(OUTPUT_LINES)..].join("\n")
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.logs.lines(Stream::Stdout)
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.logs.lines(Stream::Stderr)
    }

    /// The stdout lines parsed as JSON; a line that is not JSON fails the test.
    pub fn json_logs(&self) -> Vec<Value> {
        json_lines(&self.stdout_lines())
    }

    /// Sends SIGTERM the way an orchestrator would.
    pub fn sigterm(&self) {
        let status = self.send_sigterm().expect("run kill -TERM");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.pid()
        );
    }

    fn send_sigterm(&self) -> std::io::Result<ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
    }

    /// Records a SIGKILL for the cleanup of the store the process used.
    fn note_kill(&self) {
        if let Some(url) = &self.database_url {
            super::store::note_kill(url);
        }
    }

    /// `kill -9`, and checks that the signal is what ended the process.
    pub fn kill(mut self) {
        self.child.kill().expect("send SIGKILL to session-service");
        self.note_kill();
        let status = self.child.wait().expect("reap session-service");
        self.exited = Some(status);
        assert_eq!(
            status.signal(),
            Some(9),
            "session-service ended by itself before the kill ({status}); its output:\n{}",
            self.output()
        );
    }

    /// Waits (at most `limit`) for the process to exit by itself, then for its output to end.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll session-service") {
                break status;
            }
            if started.elapsed() > limit {
                panic!(
                    "session-service did not exit within {limit:?} of being asked to stop; its \
                     output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.exited = Some(status);
        // The pipes close with the process; give the readers a bounded moment to drain them.
        let drained = Instant::now();
        while self.readers.iter().any(|r| !r.is_finished()) {
            assert!(
                drained.elapsed() < Duration::from_secs(5),
                "the output of session-service did not end within 5 s of its exit"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// SIGTERM, then asserts a clean exit (status 0) within `limit`.
    pub async fn stop(&mut self, limit: Duration) {
        self.sigterm();
        let status = self.wait_exit(limit).await;
        assert_eq!(
            status.code(),
            Some(0),
            "session-service exited with {status} after SIGTERM; its output:\n{}",
            self.output()
        );
    }
}

impl Drop for ServiceProcess {
    /// Stops the process the way an orchestrator would: SIGTERM, and SIGKILL if it has not
    /// exited [`DROP_GRACE`] later (a kill is noted for the store's cleanup).
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.send_sigterm();
            let started = Instant::now();
            while started.elapsed() < DROP_GRACE {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            self.note_kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `line` is the access line of a request that did not fail with a 5xx: too many and too
/// alike to help in a failure message.
fn is_quiet_access_line(line: &str) -> bool {
    line.contains(r#""message":"request served""#) && !line.contains(r#""status":5"#)
}

/// The parsed JSON log lines; a line that is not JSON fails the test.
pub fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Whether any of `logs` has `message`.
pub fn has_message(logs: &[Value], message: &str) -> bool {
    logs.iter().any(|l| l["message"] == message)
}
