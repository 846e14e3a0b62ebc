//! The embedded store on a filesystem that fills up, as an operator found it: events are refused
//! with 503 `storage_full` while the disk is full; once it has room again, the next event gets
//! the next dense seq and `eventCount` is exact, also after `kill -9` and a restart.
//!
//! Needs root (it mounts a 3 MB tmpfs); without it the test says so and does nothing.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::client;
use crate::support::process::{ServiceCommand, ServiceProcess};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount the tmpfs to {size}");
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

async fn start(db: &Path) -> ServiceProcess {
    let service = ServiceCommand::new()
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("SQLITE_SYNCHRONOUS", "full")
        .start()
        .await;
    service.wait_ready().await;
    service
}

/// Posts one event of about 20 KB; its status and body.
async fn post(service: &ServiceProcess, id: &str) -> (u16, Value) {
    let body =
        json!({"eventId": id, "type": "user_speech", "payload": {"text": "x".repeat(20_000)}});
    let r = client()
        .post(service.url("/sessions/full/events"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// `eventCount` is the number of events, and their seqs (all of them, from the NDJSON export)
/// are 1..=n.
async fn assert_dense(service: &ServiceProcess, n: u64) {
    let r = client()
        .get(service.url("/sessions/full?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session: Value = r.json().await.unwrap();
    assert_eq!(session["eventCount"], n, "eventCount");
    let r = client()
        .get(service.url("/sessions/full/events"))
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "seqs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_no_gap_in_seq_and_an_exact_event_count() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let Some(disk) = Tmpfs::mount("3m") else {
        panic!("running as root, but `mount -t tmpfs` failed");
    };
    let db = disk.path().join("sessions.db");
    let service = start(&db).await;
    let r = client()
        .post(service.url("/sessions"))
        .json(&json!({"sessionId": "full", "language": "en"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Fill the disk: the first events are stored, then every one is refused as storage_full.
    let (mut stored, mut refused) = (0u64, 0u64);
    for n in 0..600 {
        let (status, body) = post(&service, &format!("e{n}")).await;
        match status {
            201 => {
                assert_eq!(refused, 0, "stored after a refusal while still full");
                stored += 1;
                assert_eq!(body["seq"], stored);
            }
            503 => {
                assert_eq!(body["code"], "storage_full", "{body}");
                refused += 1;
                if refused == 40 {
                    break;
                }
            }
            other => panic!("answered {other}: {body}"),
        }
    }
    assert!(
        stored > 0 && refused == 40,
        "{stored} stored, {refused} refused"
    );

    // Room again: the next event, a retried refused one and a batch take the next seqs.
    disk.resize("30m");
    let (status, body) = post(&service, "after-grow").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seq"], stored + 1);
    let (status, body) = post(&service, &format!("e{}", stored)).await;
    assert_eq!((status, body["seq"].clone()), (201, json!(stored + 2)));
    let batch = json!({"events": [
        {"eventId": "b1", "type": "system", "payload": {}},
        {"eventId": "b2", "type": "system", "payload": {}},
    ]});
    let r = client()
        .post(service.url("/sessions/full/events:batch"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let total = stored + 4;
    assert_dense(&service, total).await;

    // The same after kill -9 and a restart.
    service.kill();
    let service = start(&db).await;
    assert_dense(&service, total).await;
    let (status, body) = post(&service, "after-restart").await;
    assert_eq!((status, body["seq"].clone()), (201, json!(total + 1)));
}
