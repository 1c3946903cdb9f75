//! `tls-stall`: connect, send only the first `prefix_bytes` of a real TLS ClientHello
//! record, then hold. The server has seen the start of a handshake (it may have taken a
//! handshake slot) and must time it out.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::hold::Driver;
use super::idle_tcp::HoldPlan;
use super::{check_connections, check_pool, check_rate, check_tls, Kind, Plan, PlanContext, Pool};
use crate::net::Target;
use crate::scenario::Scenario;

/// Longest prefix: a ClientHello from rustls is ~200–300 bytes; the prefix must stay short
/// of the whole record so the handshake can never complete.
const MAX_PREFIX_BYTES: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsStall {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    /// Bytes of the ClientHello record sent (1..=100): 5 is the record header alone.
    #[serde(default = "default_prefix_bytes")]
    pub prefix_bytes: usize,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Held shape: how long a slot waits after its connection ends before it opens the
    /// next (an attack tool's pass over its dead sockets); 0, the default: at once.
    #[serde(default)]
    pub reconnect_ms: u64,
}

fn default_prefix_bytes() -> usize {
    20
}

impl Kind for TlsStall {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_connections(name, self.connections)?;
        check_pool(name, &self.sources)?;
        check_rate(name, self.rate_per_s)?;
        check_tls(name, s)?;
        anyhow::ensure!(
            (1..=MAX_PREFIX_BYTES).contains(&self.prefix_bytes),
            "task {name}: prefix_bytes must be in 1..={MAX_PREFIX_BYTES}"
        );
        Ok(())
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let hello = client_hello(cx.target)?;
        // Never the whole record (checked above too: a ClientHello is far over 100 bytes).
        let n = self.prefix_bytes.min(hello.len() - 1);
        Ok(Box::new(HoldPlan {
            driver: Driver {
                connections: self.connections,
                rate_per_s: self.rate_per_s,
                reconnect: Duration::from_millis(self.reconnect_ms),
                pool: Pool::new(self.sources),
            },
            prefix: hello[..n].to_vec(),
        }))
    }
}

/// The ClientHello record our TLS client would send to `target`, as bytes.
pub(super) fn client_hello(target: &Target) -> anyhow::Result<Vec<u8>> {
    let cfg = target
        .tls(false)
        .ok_or_else(|| anyhow::anyhow!("tls-stall needs a TLS target"))?;
    let mut conn = rustls::ClientConnection::new(Arc::clone(&cfg), target.server_name.clone())?;
    let mut out = Vec::new();
    conn.write_tls(&mut out)?;
    anyhow::ensure!(
        out.len() > MAX_PREFIX_BYTES && out.first() == Some(&0x16),
        "unexpected ClientHello ({} bytes)",
        out.len()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_hello_is_a_handshake_record_longer_than_any_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let target = Target::new("127.0.0.1:1".parse().unwrap(), "localhost", Some(&ca)).unwrap();
        let hello = client_hello(&target).unwrap();
        // Record type 22 (handshake), then the ClientHello message (type 1) after the
        // 5-byte record header.
        assert_eq!(hello[0], 0x16);
        assert_eq!(hello[5], 0x01);
        let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        assert_eq!(hello.len(), 5 + len);
    }
}
