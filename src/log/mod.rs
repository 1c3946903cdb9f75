//! L7: the Merkle-logged, append-only ballot store.
