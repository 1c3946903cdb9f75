//! The receipt a voter keeps: the exact logged bytes and a C2SP tlog-proof for them
//! (docs/PROTOCOL.md). Verified offline by [`crate::audit::receipt::verify_receipt`].

use base64::Engine;
use serde::{Deserialize, Serialize};

/// `{"index": N, "entry": "<base64>", "tlog_proof": "<tlog-proof text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Index of the entry in the log.
    pub index: u64,
    /// The exact logged bytes, standard base64 with padding (RFC 4648 §4).
    pub entry: String,
    /// C2SP tlog-proof: index, inclusion proof and the signed checkpoint.
    pub tlog_proof: String,
}

impl Receipt {
    /// Builds a receipt from its parts.
    pub fn new(index: u64, entry: &[u8], tlog_proof: String) -> Self {
        Self {
            index,
            entry: base64::engine::general_purpose::STANDARD.encode(entry),
            tlog_proof,
        }
    }
}
