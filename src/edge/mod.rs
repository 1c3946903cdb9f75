//! L1–L4: the listener, TLS, HTTP limits and admission control.
