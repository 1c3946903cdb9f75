//! A bounded smoke load: one hostile source floods ballots while twenty voters (other
//! sources, announced through a trusted PROXY v2 peer) each cast one. Every voter's ballot
//! must be taken; the flood must die at L4 with 429s.

mod net;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use net::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use urna::edge::proxy::encode_v2;

async fn h1_as(srv: &Running, client: &str) -> H1 {
    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let client: SocketAddr = client.parse().unwrap();
    tcp.write_all(&encode_v2(client, "127.0.0.1:443".parse().unwrap()))
        .await
        .unwrap();
    H1::over(tls_over(tcp, &srv.cert, &[b"http/1.1"]).await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_get_through_while_one_source_floods() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(
        config(dir.path(), r#"trusted_proxies = ["127.0.0.0/8"]"#, ""),
        DoubleBackend::default(),
    )
    .await;

    let mut flood = Vec::new();
    for c in 0..8u16 {
        let mut h1 = h1_as(&srv, &format!("203.0.113.9:{}", 1000 + c)).await;
        flood.push(tokio::spawn(async move {
            let (mut limited, mut other) = (0u32, 0u32);
            for _ in 0..200 {
                match h1.send(post_json("/v1/ballots", BALLOT)).await {
                    Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => limited += 1,
                    _ => other += 1,
                }
            }
            (limited, other)
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
    let (mut limited, mut other) = (0, 0);
    for f in flood {
        let (l, o) = tokio::time::timeout(WAIT * 3, f).await.unwrap().unwrap();
        limited += l;
        other += o;
    }
    // 1600 flood requests; the source's burst of 10 (+5/s while it runs) got through.
    assert!(limited >= 1500, "{limited} limited, {other} other");
    assert_eq!(
        srv.backend.submits.load(Ordering::SeqCst) as u32,
        20 + other
    );
    srv.stop().await;
}
