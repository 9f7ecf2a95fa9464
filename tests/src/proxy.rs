//! A TCP forwarder that a test can cut (and restore), so that a process loses its way to a
//! server (the API server, a database) while both keep running: a network partition in
//! miniature. Given several targets it balances connections over them as a Service's
//! ClusterIP does, skipping targets that refuse (as a Service skips endpoints that are not
//! ready).

use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Forwards `127.0.0.1:<port>` to its targets until [`Self::cut`]; stops when dropped.
pub struct CuttableProxy {
    /// The local port to connect to instead of the target.
    pub port: u16,
    targets: Arc<Vec<String>>,
    accepting: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CuttableProxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: String) -> anyhow::Result<Self> {
        Self::balanced(vec![target]).await
    }

    /// Starts forwarding each new connection to the next of `targets` that accepts it.
    pub async fn balanced(targets: Vec<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(!targets.is_empty(), "a proxy needs a target");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Self {
            port: listener.local_addr()?.port(),
            targets: Arc::new(targets),
            accepting: Mutex::new(None),
            connections: Arc::default(),
        };
        proxy.accept(listener);
        Ok(proxy)
    }

    fn accept(&self, listener: TcpListener) {
        let (targets, open) = (self.targets.clone(), self.connections.clone());
        let accepting = tokio::spawn(async move {
            let mut next = 0;
            while let Ok((mut inbound, _)) = listener.accept().await {
                let order: Vec<String> = (0..targets.len())
                    .map(|i| targets[(next + i) % targets.len()].clone())
                    .collect();
                next += 1;
                let forwarding = tokio::spawn(async move {
                    for target in order {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
                open.lock().expect("proxy lock").push(forwarding);
            }
        });
        *self.accepting.lock().expect("proxy lock") = Some(accepting);
    }

    /// Closes the listener and every open connection: new connections are refused.
    pub fn cut(&self) {
        if let Some(accepting) = self.accepting.lock().expect("proxy lock").take() {
            accepting.abort();
        }
        for connection in self.connections.lock().expect("proxy lock").drain(..) {
            connection.abort();
        }
    }

    /// Listens on the same port again after [`Self::cut`]: the network is back.
    pub async fn restore(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.accept(listener);
        Ok(())
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
    }
}
