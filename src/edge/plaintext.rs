//! Plain HTTP sent to the TLS port: someone typed `http://host:8443/`. Without this the
//! handshake fails and the browser shows a bare "connection reset" (or "empty response");
//! with it, the browser shows a short 400 that says to use https, as nginx does.
//!
//! A TLS connection starts with a handshake record, first byte 0x16 (an SSLv2-style hello,
//! 0x80, is refused by rustls anyway); an HTTP/1 request starts with its method, an ASCII
//! capital letter. So the first byte, already peeked by the listener, tells them apart
//! without reading anything. The answer is cheap and bounded: at most [`MAX_HEAD_BYTES`]
//! read, one small write, at most [`HEAD_WITHIN`] + [`ANSWER_WITHIN`] in all, on a
//! connection that still holds its slot in the connection table (and its phase timeout).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The stable error code of the answer (docs/PROTOCOL.md §6).
use super::reply::code::HTTPS_REQUIRED as CODE;

/// Most bytes of the request read to find its `Host`: a browser's request head is well under
/// this; whatever is past it is discarded unread.
pub const MAX_HEAD_BYTES: usize = 4096;

/// How long the request head may take to arrive (a browser sends it in one packet); a head
/// still unfinished then is answered from what arrived.
pub const HEAD_WITHIN: Duration = Duration::from_secs(1);

/// How long writing the 400 and letting the client read it may take.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// Bytes drained after the answer so the close is a FIN, not a reset that could destroy the
/// answer in the client's receive buffer before the browser reads it.
const MAX_DRAIN_BYTES: usize = 16 * 1024;

/// Whether a connection to the TLS port that starts with `first` is plain HTTP.
pub fn is_plain_http(first: u8) -> bool {
    first.is_ascii_uppercase()
}

/// The `Host` of a request head, if it is a plausible host name or address with an optional
/// port. Anything else (too long, odd characters) is left out of the answer rather than
/// echoed: the client chose it.
pub fn host_of(head: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    lines.next()?; // the request line
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("host") {
            let host = value.trim();
            let plausible = !host.is_empty()
                && host.len() <= 261
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                });
            return plausible.then_some(host);
        }
    }
    None
}

/// The whole answer: a 400 with the contract's JSON error, naming the https URL when the
/// request said which host it wanted.
pub fn answer(host: Option<&str>) -> Vec<u8> {
    let message = match host {
        Some(h) => format!("this port speaks HTTPS only: use https://{h}/"),
        None => "this port speaks HTTPS only: use https:// in the address".to_owned(),
    };
    // `host_of` lets no `"` or `\` through, so the message needs no escaping.
    let body = format!("{{\"error\":\"{CODE}\",\"message\":\"{message}\"}}\n");
    let mut out = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
         content-length: {}\r\ncache-control: no-store\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Answers a plain-HTTP request on the TLS port with a 400 and closes. Never waits longer
/// than [`HEAD_WITHIN`] + [`ANSWER_WITHIN`], never reads more than [`MAX_HEAD_BYTES`] +
/// [`MAX_DRAIN_BYTES`].
pub async fn answer_plain_http(mut tcp: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        // Until the head is whole, the buffer full, or the client stops sending.
        while head.len() < MAX_HEAD_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let want = buf.len().min(MAX_HEAD_BYTES - head.len());
            match tcp.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(HEAD_WITHIN, read_head).await;
    let answer_and_close = async {
        if tcp.write_all(&answer(host_of(&head))).await.is_err() {
            return;
        }
        let _ = tcp.shutdown().await;
        let mut drained = 0;
        while drained < MAX_DRAIN_BYTES {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(ANSWER_WITHIN, answer_and_close).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_records_and_http_methods_are_told_apart_by_the_first_byte() {
        assert!(!is_plain_http(0x16), "TLS handshake record");
        assert!(!is_plain_http(0x80), "SSLv2-style hello");
        assert!(!is_plain_http(b'\r'), "PROXY v2");
        for method in ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PRI"] {
            assert!(is_plain_http(method.as_bytes()[0]), "{method}");
        }
    }

    #[test]
    fn host_is_echoed_only_when_plausible() {
        let head = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n");
        assert_eq!(
            host_of(head("localhost:8443").as_bytes()),
            Some("localhost:8443")
        );
        assert_eq!(host_of(head("[::1]:8443").as_bytes()), Some("[::1]:8443"));
        assert_eq!(host_of(head("<script>").as_bytes()), None);
        assert_eq!(host_of(head("a\"b").as_bytes()), None);
        assert_eq!(host_of(head(&"a".repeat(300)).as_bytes()), None);
        assert_eq!(host_of(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), None);
        assert_eq!(host_of(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(host_of(&[0xff, 0xfe]), None);
        // A Host after the head's end is not the request's.
        assert_eq!(host_of(b"GET / HTTP/1.1\r\n\r\nHost: x\r\n"), None);
    }

    #[test]
    fn answer_is_a_400_with_the_contracts_json() {
        let a = String::from_utf8(answer(Some("localhost:8443"))).unwrap();
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], CODE);
        assert_eq!(
            v["message"],
            "this port speaks HTTPS only: use https://localhost:8443/"
        );
        let v: serde_json::Value = serde_json::from_str(
            String::from_utf8(answer(None))
                .unwrap()
                .split_once("\r\n\r\n")
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(v["error"], CODE);
    }
}
