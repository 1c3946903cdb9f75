//! A bounded smoke load: one hostile source floods ballots while twenty voters (other
//! sources, announced through a trusted PROXY v2 peer) each cast one. Every voter's ballot
//! must be taken; the flood must die at L4 with 429s, and — since it ignores them — in the
//! penalty box at L1.

mod net;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use net::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use urna::edge::proxy::encode_v2;

async fn try_h1_as(srv: &Running, client: &str) -> std::io::Result<H1> {
    let mut tcp = TcpStream::connect(srv.addr).await?;
    let client: SocketAddr = client.parse().unwrap();
    tcp.write_all(&encode_v2(client, "127.0.0.1:443".parse().unwrap()))
        .await?;
    Ok(H1::over(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await?).await)
}

async fn h1_as(srv: &Running, client: &str) -> H1 {
    try_h1_as(srv, client).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_get_through_while_one_source_floods() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        config(dir.path(), r#"trusted_proxies = ["127.0.0.0/8"]"#, ""),
        DoubleBackend::default(),
    )
    .await;

    // Every flooding connection is open before the flood starts.
    let mut hostile = Vec::new();
    for c in 0..8u16 {
        hostile.push(h1_as(&srv, &format!("203.0.113.9:{}", 1000 + c)).await);
    }
    let mut flood = Vec::new();
    for mut h1 in hostile {
        flood.push(tokio::spawn(async move {
            let (mut limited, mut accepted, mut cut) = (0u32, 0u32, 0u32);
            for _ in 0..200 {
                match h1.send(post_json("/v1/ballots", BALLOT)).await {
                    Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    Ok(a) if a.status == StatusCode::CREATED => accepted += 1,
                    Ok(a) => panic!("unexpected answer {a:?}"),
                    Err(_) => {
                        cut += 1;
                        break;
                    }
                }
            }
            (limited, accepted, cut)
        }));
    }
    let mut voters = Vec::new();
    for v in 1..=20u8 {
        let srv_addr = format!("198.51.100.{v}:4000");
        let mut h1 = h1_as(&srv, &srv_addr).await;
        voters.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(v) * 5)).await;
            h1.status(post_json("/v1/ballots", BALLOT)).await
        }));
    }
    for v in voters {
        assert_eq!(v.await.unwrap(), StatusCode::CREATED);
    }
    let (mut limited, mut accepted, mut cut) = (0, 0, 0);
    for f in flood {
        let (l, a, c) = tokio::time::timeout(WAIT * 3, f).await.unwrap().unwrap();
        limited += l;
        accepted += a;
        cut += c;
    }
    // The source's burst of 10 (+5/s while it runs) got through; then 429s until the 50th
    // within 10 s put it in the penalty box, which closed every one of its connections.
    assert!(accepted <= 20, "{accepted} accepted");
    assert!((45..=60).contains(&limited), "{limited} limited");
    assert_eq!(cut, 8, "every flooding connection was closed");
    assert!(
        try_h1_as(&srv, "203.0.113.9:2000").await.is_err(),
        "a boxed source is refused at accept"
    );
    assert_eq!(
        srv.backend.submits.load(Ordering::SeqCst) as u32,
        20 + accepted
    );
    srv.stop().await;
}
