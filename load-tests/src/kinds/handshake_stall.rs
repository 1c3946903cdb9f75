//! `handshake-stall`: TCP connections that never start TLS (the kind before `idle-tcp`,
//! which does the same with open-loop and pool options; kept so older scenarios run).

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::Driver;
use super::idle_tcp::HoldPlan;
use super::{check_connections, check_pool, Kind, Plan, PlanContext, Pool};
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandshakeStall {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
}

impl Kind for HandshakeStall {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, _: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(HoldPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: None,
                reconnect: std::time::Duration::ZERO,
                pool: Pool::new(self.sources),
            },
            prefix: Vec::new(),
        }))
    }
}
