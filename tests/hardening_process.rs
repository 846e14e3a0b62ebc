//! Hardening, on the real binary: API keys rotated by SIGHUP without a restart.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::process::{ServiceCommand, ServiceProcess};
use support::{Backend, ServiceStore};

/// The tests that change this process's open files limit, or need many descriptors, run one at
/// a time.
static FDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const OLD_KEY: &str = "old-admin-key-0123456789";
const NEW_KEY: &str = "new-reader-key-0123456789";

fn sighup(service: &ServiceProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &service.pid().to_string()])
        .status()
        .expect("run kill -HUP");
    assert!(status.success(), "kill -HUP failed: {status}");
}

async fn status_with(client: &reqwest::Client, url: String, key: &str, post: bool) -> u16 {
    let request = if post {
        client
            .post(url)
            .json(&serde_json::json!({"sessionId": "rotated", "language": "en"}))
    } else {
        client.get(url)
    };
    request
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_the_keys_file_and_rotates_keys_without_a_restart() {
    let _alone = FDS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys");
    std::fs::write(&file, format!("# first generation\nadmin:{OLD_KEY}\n")).unwrap();
    let store = ServiceStore::new(Backend::Sqlite, "keys_reload");
    let mut service = ServiceCommand::new()
        .store(&store)
        .env("API_KEYS_FILE", file.display().to_string())
        .start()
        .await;
    service.wait_ready().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sessions = || service.url("/sessions");
    assert_eq!(status_with(&client, sessions(), OLD_KEY, false).await, 200);
    assert_eq!(status_with(&client, sessions(), NEW_KEY, false).await, 401);

    std::fs::write(&file, format!("read:{NEW_KEY}\n")).unwrap();
    sighup(&service);
    let started = Instant::now();
    while status_with(&client, sessions(), NEW_KEY, false).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key was not accepted within 10 s of SIGHUP; output:\n{}",
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status_with(&client, sessions(), OLD_KEY, false).await,
        401,
        "the removed key is refused"
    );
    assert_eq!(
        status_with(&client, sessions(), NEW_KEY, true).await,
        403,
        "the new key reads only"
    );

    // A broken file changes nothing: the keys in force stay.
    std::fs::write(&file, "read:short\n").unwrap();
    sighup(&service);
    let started = Instant::now();
    while !service
        .stdout_lines()
        .iter()
        .any(|l| l.contains("the previous keys stay in force"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no warning about the broken file; output:\n{}",
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_with(&client, sessions(), NEW_KEY, false).await, 200);

    let logs = service.json_logs();
    let reloaded = logs
        .iter()
        .find(|l| l["message"] == "SIGHUP: API keys reloaded")
        .unwrap_or_else(|| panic!("no reload line; output:\n{}", service.output()));
    assert_eq!(reloaded["read"], 1, "{reloaded}");
    assert_eq!(reloaded["write"], 0, "{reloaded}");
    assert_eq!(reloaded["admin"], 0, "{reloaded}");
    let everything = service.stdout_lines().join("\n") + &service.stderr_lines().join("\n");
    for key in [OLD_KEY, NEW_KEY] {
        assert!(!everything.contains(key), "a key was logged");
    }
    service.stop(Duration::from_secs(20)).await;
    store.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_files_limit_is_raised_to_the_hard_limit_and_logged() {
    use rlimit::Resource;
    let _alone = FDS.lock().await;
    let (soft, hard) = Resource::NOFILE.get().unwrap();
    // The child inherits this process's limits: start it with a low soft limit, then restore ours.
    let low = 256.min(hard);
    Resource::NOFILE.set(low, hard).unwrap();
    let store = ServiceStore::new(Backend::Sqlite, "nofile");
    let started = ServiceCommand::new().store(&store).start().await;
    Resource::NOFILE.set(soft, hard).unwrap();
    let mut service = started;
    service.wait_ready().await;

    let limits = std::fs::read_to_string(format!("/proc/{}/limits", service.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers, vec![hard, hard], "{line}");
    let logs = service.json_logs();
    let logged = logs
        .iter()
        .find(|l| l["message"] == "open files limit")
        .unwrap_or_else(|| panic!("no limit line; output:\n{}", service.output()));
    assert_eq!(logged["soft_before"], low, "{logged}");
    assert_eq!(logged["soft"], hard, "{logged}");
    assert_eq!(logged["hard"], hard, "{logged}");
    service.stop(Duration::from_secs(20)).await;
    store.cleanup().await;
}

/// How one held connection ended.
enum Held {
    NotConnected,
    ClosedByServer,
    StillOpen,
}

/// Connects, sends `prefix` (nothing, or half a request head) and waits for the server to close.
async fn hold(addr: String, prefix: &'static [u8], limit: Duration) -> Held {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::time::timeout(limit, tokio::net::TcpStream::connect(&addr)).await;
    let Ok(Ok(mut stream)) = connect else {
        return Held::NotConnected;
    };
    if !prefix.is_empty() && stream.write_all(prefix).await.is_err() {
        return Held::ClosedByServer;
    }
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => return Held::StillOpen,
            Ok(Ok(0)) | Ok(Err(_)) => return Held::ClosedByServer,
            // A 408 or similar before the close is fine; keep reading until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_and_half_sent_connections_are_closed_by_the_timeouts_and_good_clients_are_served() {
    let _alone = FDS.lock().await;
    let store = ServiceStore::new(Backend::Sqlite, "connections");
    let mut service = ServiceCommand::new()
        .store(&store)
        .env("HEADER_READ_TIMEOUT_MS", "1000")
        .env("KEEPALIVE_TIMEOUT_MS", "2000")
        .start()
        .await;
    service.wait_ready().await;
    // The service's open files limit at 1,024, as on a default system.
    let status = Command::new("prlimit")
        .args(["--pid", &service.pid().to_string(), "--nofile=1024:1024"])
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed: {status}");

    let addr = service.addr().to_owned();
    let limit = Duration::from_secs(60);
    let mut held = Vec::new();
    for n in 0..2500 {
        let prefix: &'static [u8] = if n % 5 == 0 {
            b"GET /sessions HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
        } else {
            b""
        };
        held.push(tokio::spawn(hold(addr.clone(), prefix, limit)));
    }
    let (mut closed, mut open, mut refused) = (0, 0, 0);
    for task in held {
        match task.await.unwrap() {
            Held::ClosedByServer => closed += 1,
            Held::StillOpen => open += 1,
            Held::NotConnected => refused += 1,
        }
    }
    assert_eq!(
        open,
        0,
        "{open} bad connections were still open after {limit:?} ({closed} closed, {refused} \
         never connected); output:\n{}",
        service.output()
    );
    assert!(closed >= 2000, "{closed} closed, {refused} never connected");

    // From then on a well-behaved client is served within a second, again and again.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = client.get(service.url("/health")).send().await;
        assert!(
            matches!(&r, Ok(r) if r.status() == 200),
            "a good client was not served within 1 s: {r:?}"
        );
    }
    // A kept-alive connection left idle is closed by the keep-alive timeout.
    let idle = tokio::spawn(hold(
        addr.clone(),
        b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
        Duration::from_secs(30),
    ));
    assert!(matches!(idle.await.unwrap(), Held::ClosedByServer));

    // A kept-alive connection that served a request, sat idle, then sends half a head and
    // stalls is closed by the header timeout (the keep-alive timer does not run mid-head).
    let stalled = tokio::spawn({
        let addr = addr.clone();
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "{:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHo")
                .await
                .unwrap();
            loop {
                match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf)).await {
                    Err(_) => return Held::StillOpen,
                    Ok(Ok(0)) | Ok(Err(_)) => return Held::ClosedByServer,
                    Ok(Ok(_)) => continue,
                }
            }
        }
    });
    assert!(matches!(stalled.await.unwrap(), Held::ClosedByServer));

    // And the service is fine afterwards.
    let client = reqwest::Client::new();
    let r = client
        .post(service.url("/sessions"))
        .json(&serde_json::json!({"sessionId": "after-flood", "language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        client
            .get(service.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    service.stop(Duration::from_secs(20)).await;
    store.cleanup().await;
}
