//! The answer reader over an in-memory duplex pipe: framing, bounds and keep-alive leftovers.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// A connection and the server's end of its pipe.
fn pipe() -> (Conn<DuplexStream>, DuplexStream) {
    let (client, server) = duplex(64 * 1024);
    (Conn::new(client), server)
}

/// The status, body and close flag of the next answer, or the error.
async fn next(conn: &mut Conn<DuplexStream>) -> Result<(u16, Vec<u8>, bool), H1Error> {
    conn.read_answer()
        .await
        .map(|a| (a.status, a.body.to_vec(), a.close))
}

/// Writes `wire` in two parts split at every byte, making the reader see the first part on
/// its own (it must then wait), and checks it reads the same answer every time.
async fn read_split_everywhere(wire: &[u8], status: u16, body: &[u8]) {
    for k in 0..=wire.len() {
        let (mut conn, mut server) = pipe();
        server.write_all(&wire[..k]).await.unwrap();
        let mut reading = pin!(next(&mut conn));
        let first = reading
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        if k < wire.len() {
            assert!(
                first.is_pending(),
                "answered from {k} of {} bytes",
                wire.len()
            );
        }
        server.write_all(&wire[k..]).await.unwrap();
        let got = match first {
            Poll::Ready(got) => got,
            Poll::Pending => reading.await,
        };
        let (s, b, close) = got.unwrap_or_else(|e| panic!("split at {k}: {e}"));
        assert_eq!(
            (s, b.as_slice(), close),
            (status, body, false),
            "split at {k}"
        );
    }
}

#[tokio::test]
async fn content_length_answer_split_at_every_byte_reads_whole() {
    let wire = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 11\r\ndate: x\r\n\r\n{\"index\":1}";
    read_split_everywhere(wire, 201, b"{\"index\":1}").await;
}

#[tokio::test]
async fn chunked_answer_split_at_every_byte_is_decoded() {
    let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nx-trailer: 1\r\n\r\n";
    read_split_everywhere(wire, 200, b"Wikipedia in \r\n\r\nchunks.").await;
}

#[tokio::test]
async fn interim_answers_split_at_every_byte_are_skipped() {
    let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 429 Too Many Requests\r\ncontent-length: 24\r\n\r\n{\"error\":\"rate_limited\"}";
    read_split_everywhere(wire, 429, b"{\"error\":\"rate_limited\"}").await;
}

#[tokio::test]
async fn pipelined_answers_in_one_read_are_not_merged() {
    let (mut conn, mut server) = pipe();
    server
        .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    // Closed now: the later answers can only come from what the first read left buffered.
    drop(server);
    assert_eq!(
        next(&mut conn).await.unwrap(),
        (201, b"first".to_vec(), false)
    );
    assert_eq!(
        next(&mut conn).await.unwrap(),
        (200, b"second".to_vec(), false)
    );
    assert_eq!(next(&mut conn).await.unwrap(), (204, Vec::new(), false));
    assert!(matches!(next(&mut conn).await, Err(H1Error::Closed)));
}

#[tokio::test]
async fn connection_close_is_reported_with_the_answer() {
    for (wire, close) in [
        (
            &b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\nok"[..],
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 2\r\n\r\nok",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok", true),
        (
            b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok",
            false,
        ),
    ] {
        let (mut conn, mut server) = pipe();
        server.write_all(wire).await.unwrap();
        let got = next(&mut conn).await.unwrap();
        assert_eq!(
            got,
            (200, b"ok".to_vec(), close),
            "{}",
            String::from_utf8_lossy(wire)
        );
    }
}

#[tokio::test]
async fn body_without_length_runs_to_the_close() {
    let (mut conn, mut server) = pipe();
    server
        .write_all(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        .await
        .unwrap();
    drop(server);
    assert_eq!(
        next(&mut conn).await.unwrap(),
        (200, b"all of it".to_vec(), true)
    );
}

#[tokio::test]
async fn oversized_head_is_refused() {
    let (mut conn, mut server) = pipe();
    let long = "a".repeat(17 * 1024);
    // Never finished: the reader must give up at the limit, not wait for the blank line.
    server
        .write_all(format!("HTTP/1.1 200 OK\r\nx-long: {long}").as_bytes())
        .await
        .unwrap();
    assert!(matches!(
        next(&mut conn).await,
        Err(H1Error::HeadTooLarge(16384))
    ));
    // A complete head just over the limit is refused the same way.
    let (mut conn, mut server) = pipe();
    let pad = "a".repeat(16 * 1024);
    server
        .write_all(
            format!("HTTP/1.1 200 OK\r\nx-long: {pad}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    assert!(matches!(
        next(&mut conn).await,
        Err(H1Error::HeadTooLarge(_))
    ));
}

#[tokio::test]
async fn oversized_body_is_refused_and_the_limit_itself_is_read() {
    let (mut conn, mut server) = pipe();
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048577\r\n\r\n")
        .await
        .unwrap();
    assert!(matches!(
        next(&mut conn).await,
        Err(H1Error::BodyTooLarge(1048576))
    ));

    let (mut conn, mut server) = pipe();
    server
        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n80000\r\n")
        .await
        .unwrap();
    let half = vec![b'x'; 0x80000];
    let writer = tokio::spawn(async move {
        server.write_all(&half).await.unwrap();
        server.write_all(b"\r\n80001\r\n").await.unwrap();
        server
    });
    assert!(matches!(
        next(&mut conn).await,
        Err(H1Error::BodyTooLarge(_))
    ));
    drop(writer.await.unwrap());

    // Exactly the limit is fine, read across many pipe-sized reads.
    let (mut conn, mut server) = pipe();
    let writer = tokio::spawn(async move {
        server
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n")
            .await
            .unwrap();
        server.write_all(&vec![7u8; 1024 * 1024]).await.unwrap();
        server
    });
    let (status, body, _) = next(&mut conn).await.unwrap();
    assert_eq!((status, body.len()), (200, 1024 * 1024));
    assert!(body.iter().all(|&b| b == 7));
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn eof_mid_answer_is_an_error() {
    for (wire, truncated) in [
        (
            &b"HTTP/1.1 201 Created\r\ncontent-length: 10\r\n\r\n12345"[..],
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n",
            true,
        ),
        (b"HTTP/1.1 201 Cre", true),
        (b"", false),
    ] {
        let (mut conn, mut server) = pipe();
        server.write_all(wire).await.unwrap();
        drop(server);
        let got = next(&mut conn).await;
        let ok = if truncated {
            matches!(got, Err(H1Error::Truncated))
        } else {
            matches!(got, Err(H1Error::Closed))
        };
        assert!(ok, "{got:?} for {}", String::from_utf8_lossy(wire));
    }
}

#[tokio::test]
async fn ambiguous_or_unknown_framing_is_refused() {
    for wire in [
        &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nokk"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
    ] {
        let (mut conn, mut server) = pipe();
        server.write_all(wire).await.unwrap();
        drop(server);
        let got = next(&mut conn).await;
        assert!(
            matches!(
                got,
                Err(H1Error::Malformed(_) | H1Error::Unsupported(_) | H1Error::BadChunk)
            ),
            "{got:?} for {}",
            String::from_utf8_lossy(wire)
        );
    }
    // Both headers: Transfer-Encoding wins (RFC 9112 §6.3); the length is not used.
    let (mut conn, mut server) = pipe();
    server
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(next(&mut conn).await.unwrap(), (200, b"ok".to_vec(), false));
}

#[tokio::test]
async fn send_writes_the_encoded_request_and_reads_its_answer() {
    let (mut conn, mut server) = pipe();
    let req = encode_request(
        &Method::POST,
        "localhost:8443",
        "/v1/ballots",
        Some(b"{\"a\":1}"),
    );
    assert_eq!(
        &req[..],
        b"POST /v1/ballots HTTP/1.1\r\nHost: localhost:8443\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
    );
    let peer = tokio::spawn(async move {
        let mut got = vec![0u8; req.len()];
        server.read_exact(&mut got).await.unwrap();
        server
            .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}")
            .await
            .unwrap();
        (got, server)
    });
    let sent = encode_request(
        &Method::POST,
        "localhost:8443",
        "/v1/ballots",
        Some(b"{\"a\":1}"),
    );
    let answer = conn.send(&sent).await.unwrap();
    assert_eq!((answer.status, answer.body), (201, &b"{}"[..]));
    let (got, _server) = peer.await.unwrap();
    assert_eq!(got, sent);
    assert_eq!(
        &encode_request(&Method::GET, "h", "/v1/election", None)[..],
        b"GET /v1/election HTTP/1.1\r\nHost: h\r\n\r\n"
    );
}

#[tokio::test]
async fn retry_after_seconds_are_read_and_a_date_is_ignored() {
    for (wire, want) in [
        (
            &b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 0\r\n\r\n"[..],
            Some(3),
        ),
        (
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2026 07:28:00 GMT\r\ncontent-length: 0\r\n\r\n",
            None,
        ),
        (b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n", None),
    ] {
        let (mut conn, mut server) = pipe();
        server.write_all(wire).await.unwrap();
        let got = conn.read_answer().await.unwrap();
        assert_eq!(got.retry_after_s, want, "{}", String::from_utf8_lossy(wire));
    }
}

#[tokio::test]
async fn a_peer_gone_before_the_request_is_a_clean_close_not_a_broken_answer() {
    // The server hung up between requests (its request quota, an idle timeout): the write
    // itself fails, and nothing of an answer arrived — safe to send again elsewhere.
    let (mut conn, server) = pipe();
    drop(server);
    let got = conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(matches!(got, Err(H1Error::Closed)), "{got:?}");
    // The write got through but the peer closed without a byte of answer: the same.
    let (mut conn, mut server) = pipe();
    let asked = tokio::spawn(async move {
        let mut req = [0u8; 64];
        let n = server.read(&mut req).await.unwrap();
        assert!(n > 0);
    });
    let got = conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    asked.await.unwrap();
    assert!(matches!(got, Err(H1Error::Closed)), "{got:?}");
}
