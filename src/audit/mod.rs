//! Verifying what the log publishes: receipts (tlog-proof) and whole logs.
