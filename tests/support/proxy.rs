//! A TCP proxy the tests put between the service and MongoDB, to make the database unreachable
//! and reachable again without disturbing the shared test server: a chaos proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

pub struct ChaosProxy {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    links: Arc<Mutex<JoinSet<()>>>,
}

impl ChaosProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: String) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let cut = Arc::new(AtomicBool::new(false));
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let (cut2, links2) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound); // as if nothing listened: the connection closes at once
                    continue;
                }
                let upstream = upstream.clone();
                links2.lock().await.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        ChaosProxy { addr, cut, links }
    }

    /// Drops every open connection and refuses new ones: the database is gone.
    pub async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.links.lock().await.abort_all();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// `host:port` of the first host in a `mongodb://` URI.
pub fn first_host(uri: &str) -> String {
    let rest = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let hosts = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let first = hosts.split(['/', '?', ',']).next().unwrap_or_default();
    if first.contains(':') {
        first.to_owned()
    } else {
        format!("{first}:27017")
    }
}
