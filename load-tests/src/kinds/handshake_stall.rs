//! `handshake-stall`: TCP connections whose TLS handshake never completes, held until the
//! server closes them. Two modes: `never-starts` (the default: connect, send nothing — what
//! `idle-tcp` does with open-loop and pool options) and `never-finishes` (send a whole real
//! ClientHello, read the server's answer, and never send the client's second flight: the
//! server has done its half of the key exchange and holds a handshake in progress until its
//! handshake timeout).

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::Driver;
use super::idle_tcp::HoldPlan;
use super::tls_stall::client_hello;
use super::{check_connections, check_pool, check_tls, Kind, Plan, PlanContext, Pool};
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeStall {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    #[serde(default)]
    pub mode: StallMode,
}

/// Where the handshake stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StallMode {
    /// Connect and send nothing.
    #[default]
    NeverStarts,
    /// Send a whole ClientHello, never the client's Finished.
    NeverFinishes,
}

impl Kind for HandshakeStall {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)?;
        if self.mode == StallMode::NeverFinishes {
            check_tls(&self.name, s)?;
        }
        Ok(())
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let prefix = match self.mode {
            StallMode::NeverStarts => Vec::new(),
            StallMode::NeverFinishes => client_hello(cx.target)?,
        };
        Ok(Box::new(HoldPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: None,
                reconnect: std::time::Duration::ZERO,
                pool: Pool::new(self.sources),
            },
            prefix,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_starts_is_the_default_and_never_finishes_needs_tls() {
        let t: HandshakeStall =
            toml::from_str("name = \"h\"\nconnections = 2\nsources = \"127.9.0.0/30\"\n").unwrap();
        assert_eq!(t.mode, StallMode::NeverStarts);
        let plain: Scenario = toml::from_str(
            "target = \"127.0.0.1:1\"\nplain = true\nduration_s = 1\nelection = \"e\"\n[[task]]\nkind = \"handshake-stall\"\nname = \"h\"\nconnections = 2\nsources = \"127.9.0.0/30\"\nmode = \"never-finishes\"\n",
        )
        .unwrap();
        assert!(plain.check().is_err());
    }
}
