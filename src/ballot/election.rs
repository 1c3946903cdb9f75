//! The election this server runs: its id, revote policy and voting window. Comes from
//! config and is published, with the roll's hash and the log key, as the manifest (entry 0).

use serde::Deserialize;

use super::error::BallotError;
use super::wire::is_valid_election_id;

/// May a voter replace their ballot? (docs/PROTOCOL.md.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevotePolicy {
    /// A higher `seq` than the last logged one is accepted and the last counts; every
    /// version is logged. Lets a coerced voter vote again later (Estonia's model).
    Last,
    /// One ballot per voter.
    None,
}

impl RevotePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevotePolicy::Last => "last",
            RevotePolicy::None => "none",
        }
    }
}

/// The election, as configured (`[election]` in urna.toml).
/// Deserialized through [`ElectionConfig`] (`deny_unknown_fields`), then checked: a typo'd
/// key or an empty window is a startup error, not a silently open election.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ElectionConfig")]
pub struct Election {
    id: String,
    revote: RevotePolicy,
    opens_at_ms: Option<u64>,
    closes_at_ms: Option<u64>,
}

/// The raw config shape, checked into an [`Election`] by `TryFrom`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElectionConfig {
    /// `[a-z0-9._-]{1,64}`; every submission must name it.
    id: String,
    /// `last` or `none`.
    revote: RevotePolicy,
    /// Ballots received before this unix time (ms) are refused; absent = open already.
    opens_at_ms: Option<u64>,
    /// Ballots received at or after this unix time (ms) are refused; absent = never closes.
    closes_at_ms: Option<u64>,
}

impl TryFrom<ElectionConfig> for Election {
    type Error = String;
    fn try_from(c: ElectionConfig) -> Result<Self, String> {
        Election::new(c.id, c.revote, c.opens_at_ms, c.closes_at_ms)
    }
}

impl Election {
    /// Check and build. The window is `[opens_at_ms, closes_at_ms)` and must not be empty.
    pub fn new(
        id: impl Into<String>,
        revote: RevotePolicy,
        opens_at_ms: Option<u64>,
        closes_at_ms: Option<u64>,
    ) -> Result<Election, String> {
        let id = id.into();
        if !is_valid_election_id(&id) {
            return Err(format!("election id {id:?} must match [a-z0-9._-]{{1,64}}"));
        }
        if let (Some(o), Some(c)) = (opens_at_ms, closes_at_ms) {
            if o >= c {
                return Err(format!("opens_at_ms {o} must be before closes_at_ms {c}"));
            }
        }
        Ok(Election {
            id,
            revote,
            opens_at_ms,
            closes_at_ms,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn revote(&self) -> RevotePolicy {
        self.revote
    }
    pub fn opens_at_ms(&self) -> Option<u64> {
        self.opens_at_ms
    }
    pub fn closes_at_ms(&self) -> Option<u64> {
        self.closes_at_ms
    }

    /// Is a ballot received at `now_ms` inside the window?
    pub fn check_window(&self, now_ms: u64) -> Result<(), BallotError> {
        if let Some(o) = self.opens_at_ms {
            if now_ms < o {
                return Err(BallotError::ElectionNotOpen { opens_at_ms: o });
            }
        }
        if let Some(c) = self.closes_at_ms {
            if now_ms >= c {
                return Err(BallotError::ElectionClosed { closes_at_ms: c });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked_and_strict() {
        let e: Election = toml::from_str(
            "id = \"demo-2026\"\nrevote = \"last\"\nopens_at_ms = 10\ncloses_at_ms = 20\n",
        )
        .unwrap();
        assert_eq!(e.id(), "demo-2026");
        assert_eq!(e.revote(), RevotePolicy::Last);
        assert!(toml::from_str::<Election>("id = \"x\"\nrevote = \"last\"\nfoo = 1\n").is_err());
        assert!(toml::from_str::<Election>("id = \"X\"\nrevote = \"none\"\n").is_err());
        assert!(toml::from_str::<Election>("id = \"x\"\nrevote = \"sometimes\"\n").is_err());
        assert!(toml::from_str::<Election>(
            "id = \"x\"\nrevote = \"none\"\nopens_at_ms = 5\ncloses_at_ms = 5\n"
        )
        .is_err());
    }

    #[test]
    fn window_is_half_open() {
        let e = Election::new("e", RevotePolicy::None, Some(10), Some(20)).unwrap();
        assert_eq!(e.check_window(9).unwrap_err().code(), "election_not_open");
        assert!(e.check_window(10).is_ok());
        assert!(e.check_window(19).is_ok());
        assert_eq!(e.check_window(20).unwrap_err().code(), "election_closed");
        let open = Election::new("e", RevotePolicy::None, None, None).unwrap();
        assert!(open.check_window(0).is_ok() && open.check_window(u64::MAX).is_ok());
    }
}
