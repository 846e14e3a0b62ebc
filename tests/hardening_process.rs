//! Hardening, on the real binary: API keys rotated by SIGHUP without a restart.

#[path = "support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::process::{ServiceCommand, ServiceProcess};
use support::{Backend, ServiceStore};

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
