//! Certificate rotation without restart: SIGHUP re-reads the files; a bad pair keeps the old
//! certificate. Its own test binary, because the signal goes to the whole process.

mod net;

use std::time::Duration;

use http::StatusCode;
use net::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

async fn leaf_seen(srv: &Running, trust: &[&std::path::Path]) -> Option<CertificateDer<'static>> {
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(WAIT, connector(trust, &[b"http/1.1"]).connect(name, tcp))
        .await
        .ok()?
        .ok()?;
    tls.get_ref()
        .1
        .peer_certificates()
        .map(|c| c[0].clone().into_owned())
}

fn sighup_self() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sighup_swaps_in_a_new_certificate_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(config(dir.path(), "", ""), DoubleBackend::default()).await;
    let key = dir.path().join("tls/key.pem");
    // Keep a copy of the first certificate so the client trusts both.
    let old_copy = dir.path().join("old-cert.pem");
    std::fs::copy(&srv.cert, &old_copy).unwrap();
    let old_leaf = CertificateDer::from_pem_file(&old_copy).unwrap();
    assert_eq!(leaf_seen(&srv, &[&old_copy]).await.unwrap(), old_leaf);

    // A bad pair (a key from another certificate): the old certificate stays.
    let other = dir.path().join("other");
    urna::edge::tls::ensure_self_signed(&other.join("cert.pem"), &other.join("key.pem")).unwrap();
    std::fs::copy(other.join("key.pem"), &key).unwrap();
    sighup_self();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leaf_seen(&srv, &[&old_copy]).await.unwrap(), old_leaf);

    // A good new pair: new connections see it, without a restart.
    std::fs::copy(other.join("cert.pem"), &srv.cert).unwrap();
    let new_leaf = CertificateDer::from_pem_file(&srv.cert).unwrap();
    assert_ne!(new_leaf, old_leaf);
    sighup_self();
    let mut seen = None;
    for _ in 0..100 {
        seen = leaf_seen(&srv, &[&old_copy, &srv.cert]).await;
        if seen.as_ref() == Some(&new_leaf) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.as_ref(), Some(&new_leaf));
    let mut h1 = H1::connect(srv.addr, &srv.cert).await;
    assert_eq!(h1.status(get("/healthz")).await, StatusCode::OK);
    srv.stop().await;
}
