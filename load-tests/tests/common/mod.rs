//! The real server (edge, ballot layer, durable log) in this test's process, on the config
//! a test gives, for urna-sim to run against.

use std::net::SocketAddr;

use urna::config::Config;

/// A running server; `stop` shuts it down gracefully and waits for it.
pub struct Served {
    pub addr: SocketAddr,
    pub opened: urna::service::Opened,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), urna::edge::ServeError>>,
}

/// Opens the election of `config` (TOML) and serves it on its `server.listen`.
pub async fn serve(config: &str) -> Served {
    let config = Config::parse(config).unwrap();
    let opened = tokio::task::spawn_blocking({
        let config = config.clone();
        move || urna::service::open(&config)
    })
    .await
    .unwrap()
    .unwrap();
    let server = urna::edge::Server::bind(&config, opened.service.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Served {
        addr,
        opened,
        stop,
        serving,
    }
}

impl Served {
    /// Entries in the log (the first is the election's manifest).
    pub fn logged(&self) -> u64 {
        self.opened.service.log().size()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.serving.await.unwrap().unwrap();
    }
}
