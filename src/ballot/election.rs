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

    /// Every setting on which `self` (what a log's manifest holds) and `configured` (what
    /// this server was given) disagree, each with both values: an operator who changed one
    /// date must be told which, not that "the settings differ".
    pub fn differences(&self, configured: &Election) -> Vec<Difference> {
        let mut out = Vec::new();
        let mut differ = |field, logged: String, configured: String| {
            if logged != configured {
                out.push(Difference {
                    field,
                    logged,
                    configured,
                });
            }
        };
        differ("election.id", self.id.clone(), configured.id.clone());
        differ(
            "election.revote",
            self.revote.as_str().to_owned(),
            configured.revote.as_str().to_owned(),
        );
        differ(
            "election.opens_at",
            rfc3339_ms(self.opens_at_ms),
            rfc3339_ms(configured.opens_at_ms),
        );
        differ(
            "election.closes_at",
            rfc3339_ms(self.closes_at_ms),
            rfc3339_ms(configured.closes_at_ms),
        );
        out
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

/// One setting on which a log's manifest (entry 0) and this server's configuration differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The configuration key (or what stands for it: the roll's SHA-256, the log key).
    pub field: &'static str,
    /// Its value in the log's manifest.
    pub logged: String,
    /// Its value here.
    pub configured: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the log's manifest has {}, this server has {}",
            self.field, self.logged, self.configured
        )
    }
}

/// A window bound as RFC 3339 (UTC), or "unset".
pub fn rfc3339_ms(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "unset".to_owned();
    };
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms after the Unix epoch"))
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
    fn differences_name_each_field_with_both_values() {
        let logged = Election::new("e", RevotePolicy::Last, None, Some(1_772_391_600_000)).unwrap();
        let configured =
            Election::new("e", RevotePolicy::None, None, Some(1_803_927_600_000)).unwrap();
        let d: Vec<String> = logged
            .differences(&configured)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            d,
            [
                "election.revote: the log's manifest has last, this server has none",
                "election.closes_at: the log's manifest has 2026-03-01T19:00:00Z, this server has 2027-03-01T19:00:00Z",
            ]
        );
        assert!(logged.differences(&logged).is_empty());
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
