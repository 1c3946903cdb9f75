//! The overload manager for L1–L3 (after Envoy's, with its `reduce_timeouts` action): it
//! measures pressure — the fill of the connection table and of the handshake slots — and
//! shrinks the connection-phase timeouts as pressure rises, so that under attack a
//! connection that is slow to say something is let go sooner, and recovers them as pressure
//! falls.
//!
//! Each timeout follows the resource its phase holds. Silent, idle, header and body phases
//! hold a table slot: they shrink with the table's fill. The handshake phase holds a
//! handshake slot (and a table slot): it shrinks with the fuller of the two. Measured
//! (2026-12-01, load-tests/README.md): when every timeout followed the fuller of the two, a
//! flood of handshakes shrank the keep-alive, header and body timeouts too, which cut
//! established connections whose clients came back with yet more handshakes — the
//! overload fed itself. A tick (every `overload_tick_ms`) re-measures and ends every connection that has
//! outlived the scaled timeout of the phase it is in; a newcomer that finds the table full
//! does not wait for the tick (see [`super::conns`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::conns::Phase;
use crate::config::LimitsConfig;

/// The timeouts that scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Accept to first byte.
    FirstByte,
    /// First byte to handshake done (the ClientHello arriving, then the handshake).
    Handshake,
    /// First byte of a request head to the whole head.
    Header,
    /// Start of a body to its last byte.
    Body,
    /// End of an answer to the next request's first byte.
    KeepAliveIdle,
}

impl Timeout {
    pub const ALL: [Timeout; 5] = [
        Timeout::FirstByte,
        Timeout::Handshake,
        Timeout::Header,
        Timeout::Body,
        Timeout::KeepAliveIdle,
    ];

    /// The `timeout` label of `urna_timeout_seconds`.
    pub fn label(self) -> &'static str {
        match self {
            Timeout::FirstByte => "first_byte",
            Timeout::Handshake => "handshake",
            Timeout::Header => "header_read",
            Timeout::Body => "body",
            Timeout::KeepAliveIdle => "keep_alive_idle",
        }
    }

    /// The timeout that bounds a connection phase; `None` for a request being processed
    /// (bounded by `request_timeout_ms` in the front instead).
    pub fn of(phase: Phase) -> Option<Timeout> {
        match phase {
            Phase::Silent => Some(Timeout::FirstByte),
            Phase::Hello | Phase::Handshake => Some(Timeout::Handshake),
            Phase::Idle => Some(Timeout::KeepAliveIdle),
            Phase::Headers => Some(Timeout::Header),
            Phase::Body => Some(Timeout::Body),
            Phase::Busy => None,
        }
    }
}

/// Pressure in, timeouts out.
#[derive(Debug)]
pub struct Overload {
    /// (minimum, full) of each [`Timeout`], in ms, in [`Timeout::ALL`] order.
    bounds_ms: [(u64, u64); 5],
    scale_from: f64,
    saturated: f64,
    /// How far the table-bound timeouts have shrunk: 0 (full) to 1_000_000 (at their
    /// minimum).
    scale_ppm: AtomicU32,
    /// The same for the handshake timeout.
    handshake_scale_ppm: AtomicU32,
}

impl Overload {
    pub fn new(l: &LimitsConfig) -> Overload {
        // A minimum above its full timeout counts as the full timeout (config.rs says why).
        let b = |min: u64, full: u64| (min.min(full), full);
        Overload {
            bounds_ms: [
                b(l.first_byte_timeout_min_ms, l.first_byte_timeout_ms),
                b(l.handshake_timeout_min_ms, l.handshake_timeout_ms),
                b(l.header_read_timeout_min_ms, l.header_read_timeout_ms),
                b(l.body_timeout_min_ms, l.body_timeout_ms),
                b(l.keep_alive_idle_min_ms, l.keep_alive_idle_ms),
            ],
            scale_from: f64::from(l.overload_scale_from_pct) / 100.0,
            saturated: f64::from(l.overload_saturated_pct) / 100.0,
            scale_ppm: AtomicU32::new(0),
            handshake_scale_ppm: AtomicU32::new(0),
        }
    }

    /// Re-measures from the fill of the connection table and of the handshake slots (each
    /// `used / capacity`); returns the two fills.
    pub fn update(&self, connections: (usize, usize), handshakes: (usize, usize)) -> (f64, f64) {
        let fill = |(used, cap): (usize, usize)| used as f64 / cap.max(1) as f64;
        let (table, handshaking) = (fill(connections), fill(handshakes));
        let scale = |pressure: f64| {
            let s =
                ((pressure - self.scale_from) / (self.saturated - self.scale_from)).clamp(0.0, 1.0);
            (s * 1_000_000.0) as u32
        };
        self.scale_ppm.store(scale(table), Ordering::Relaxed);
        self.handshake_scale_ppm
            .store(scale(table.max(handshaking)), Ordering::Relaxed);
        (table, handshaking)
    }

    /// How far the table-bound timeouts have shrunk now, 0.0 to 1.0.
    pub fn scale(&self) -> f64 {
        f64::from(self.scale_ppm.load(Ordering::Relaxed)) / 1_000_000.0
    }

    /// How far the handshake timeout has shrunk now, 0.0 to 1.0.
    pub fn handshake_scale(&self) -> f64 {
        f64::from(self.handshake_scale_ppm.load(Ordering::Relaxed)) / 1_000_000.0
    }

    /// The timeout in force now, in ms.
    pub fn timeout_ms(&self, t: Timeout) -> u64 {
        let (min, full) = self.bounds_ms[t as usize];
        let scale = if t == Timeout::Handshake {
            self.handshake_scale()
        } else {
            self.scale()
        };
        full - ((full - min) as f64 * scale).round() as u64
    }

    /// The timeout in force now.
    pub fn timeout(&self, t: Timeout) -> Duration {
        Duration::from_millis(self.timeout_ms(t))
    }

    /// Publishes pressure, scale and every timeout in force as gauges.
    pub fn publish(&self, (table, handshaking): (f64, f64)) {
        metrics::gauge!("urna_overload_pressure", "resource" => "connections").set(table);
        metrics::gauge!("urna_overload_pressure", "resource" => "handshakes").set(handshaking);
        metrics::gauge!("urna_overload_timeout_scale").set(self.scale());
        for t in Timeout::ALL {
            metrics::gauge!("urna_timeout_seconds", "timeout" => t.label())
                .set(self.timeout_ms(t) as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            keep_alive_idle_ms: 30_000,
            keep_alive_idle_min_ms: 1_000,
            first_byte_timeout_ms: 3_000,
            first_byte_timeout_min_ms: 5_000,
            overload_scale_from_pct: 50,
            overload_saturated_pct: 90,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn timeouts_shrink_between_the_two_thresholds_and_recover() {
        let o = Overload::new(&limits());
        let idle = |o: &Overload| o.timeout_ms(Timeout::KeepAliveIdle);
        o.update((100, 1000), (0, 10));
        assert_eq!(idle(&o), 30_000);
        o.update((500, 1000), (0, 10));
        assert_eq!(idle(&o), 30_000, "nothing shrinks at the start threshold");
        o.update((700, 1000), (0, 10));
        assert_eq!(idle(&o), 15_500, "halfway between 50% and 90%");
        o.update((950, 1000), (0, 10));
        assert_eq!(idle(&o), 1_000);
        o.update((10, 1000), (0, 10));
        assert_eq!(idle(&o), 30_000, "and back when pressure falls");
    }

    #[test]
    fn handshake_pressure_shrinks_the_handshake_timeout_only() {
        let o = Overload::new(&limits());
        assert_eq!(o.update((0, 1000), (10, 10)), (0.0, 1.0));
        assert_eq!(o.timeout_ms(Timeout::Handshake), 1_000);
        assert_eq!(o.timeout_ms(Timeout::KeepAliveIdle), 30_000);
        // A full table shrinks both.
        o.update((1000, 1000), (0, 10));
        assert_eq!(o.timeout_ms(Timeout::Handshake), 1_000);
        assert_eq!(o.timeout_ms(Timeout::KeepAliveIdle), 1_000);
    }

    #[test]
    fn a_minimum_above_its_full_timeout_is_the_full_timeout() {
        let o = Overload::new(&limits());
        o.update((1000, 1000), (0, 10));
        assert_eq!(o.timeout_ms(Timeout::FirstByte), 3_000);
    }
}
