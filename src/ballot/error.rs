//! Why a ballot was refused: one variant per stable wire code (docs/PROTOCOL.md §Errors).

/// A ballot refused at L5 (shape, eligibility, rules) or L6 (signature), or by the
/// sequencer's final decision. Every variant is the client's doing (a 4xx): the server's own
/// failures (disk, fsync) are not ballot errors and never use this type.
///
/// The code strings and statuses are a public contract: clients switch on `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BallotError {
    /// The body is not a submission: bad JSON, a missing, unknown or duplicate field,
    /// non-canonical base64url, a wrong key or signature length, a bad election id or seq.
    #[error("malformed submission: {0}")]
    Malformed(String),
    /// The body (or the decoded payload) is over the configured size limit.
    #[error("too large: {what} is {got} bytes, limit {limit}")]
    TooLarge {
        what: &'static str,
        got: usize,
        limit: usize,
    },
    /// The submission names another election than the one this server runs.
    #[error("this server runs election {expected:?}, not {got:?}")]
    WrongElection { expected: String, got: String },
    /// The key is not on the voter roll (for this algorithm).
    #[error("voter not on the roll")]
    NotEligible,
    /// Received before the voting window opened.
    #[error("election not open until {opens_at_ms} (unix ms)")]
    ElectionNotOpen { opens_at_ms: u64 },
    /// Received at or after the voting window closed.
    #[error("election closed at {closes_at_ms} (unix ms)")]
    ElectionClosed { closes_at_ms: u64 },
    /// Revote `last`: a seq lower than the voter's last logged one. A replayed old ballot
    /// must never undo a revote.
    #[error("seq {got} is below the last logged seq {last}")]
    StaleSeq { got: u64, last: u64 },
    /// Revote `last`: the same seq as the last logged ballot, with different content.
    #[error("seq {seq} is already logged with different content")]
    Conflict { seq: u64 },
    /// Revote `none`: this voter already has a ballot logged, and this is not an identical
    /// repeat of it.
    #[error("this voter has already voted")]
    AlreadyVoted,
    /// Revote `last`: the voter already has the configured most ballots logged. Bounds how
    /// much log one eligible key can write (each revote is a new entry of up to ~16 KiB).
    #[error("this voter already has {max} ballots logged, the most allowed")]
    TooManyBallots { max: u32 },
    /// The signature does not verify against the voter key over the signed message.
    #[error("signature does not verify")]
    BadSignature,
}

impl BallotError {
    /// The stable machine-readable code sent as `{"error": code}`.
    pub fn code(&self) -> &'static str {
        match self {
            BallotError::Malformed(_) => "malformed",
            BallotError::TooLarge { .. } => "too_large",
            BallotError::WrongElection { .. } => "wrong_election",
            BallotError::NotEligible => "not_eligible",
            BallotError::ElectionNotOpen { .. } => "election_not_open",
            BallotError::ElectionClosed { .. } => "election_closed",
            BallotError::StaleSeq { .. } => "stale_seq",
            BallotError::Conflict { .. } => "conflict",
            BallotError::AlreadyVoted => "already_voted",
            BallotError::TooManyBallots { .. } => "too_many_ballots",
            BallotError::BadSignature => "bad_signature",
        }
    }

    /// The HTTP status the server answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            BallotError::Malformed(_) => 400,
            BallotError::WrongElection { .. } => 400,
            BallotError::TooLarge { .. } => 413,
            BallotError::NotEligible => 403,
            BallotError::ElectionNotOpen { .. } => 403,
            BallotError::ElectionClosed { .. } => 403,
            BallotError::StaleSeq { .. } => 409,
            BallotError::Conflict { .. } => 409,
            BallotError::AlreadyVoted => 409,
            BallotError::TooManyBallots { .. } => 429,
            BallotError::BadSignature => 422,
        }
    }

    /// Every code, for docs and for metrics pre-registration.
    pub const ALL_CODES: [&'static str; 11] = [
        "malformed",
        "too_large",
        "wrong_election",
        "not_eligible",
        "election_not_open",
        "election_closed",
        "stale_seq",
        "conflict",
        "already_voted",
        "too_many_ballots",
        "bad_signature",
    ];

    pub(crate) fn malformed(msg: impl Into<String>) -> Self {
        BallotError::Malformed(msg.into())
    }
}
