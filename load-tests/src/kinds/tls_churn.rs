//! `tls-churn`: full TLS handshakes, dropped at once, as fast as `connections` slots can go
//! (the kind before `handshake-flood`, which adds a rate; kept so older scenarios run). Its
//! handshake times are reported as handshake times (`handshakes`), not as answer latency.

use ipnet::IpNet;
use serde::Deserialize;

use super::handshake_flood::HandshakePlan;
use super::hold::Driver;
use super::{check_connections, check_pool, check_tls, Kind, Plan, PlanContext, Pool};
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsChurn {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
}

impl Kind for TlsChurn {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        check_connections(&self.name, self.connections)?;
        check_pool(&self.name, &self.sources)?;
        check_tls(&self.name, s)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, _: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        Ok(Box::new(HandshakePlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: None,
                reconnect: std::time::Duration::ZERO,
                pool: Pool::new(self.sources),
            },
        }))
    }
}
