//! L5–L6: the ballot wire format, the voter roll, the revote rules and signatures.
