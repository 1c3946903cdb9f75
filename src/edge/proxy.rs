//! PROXY protocol v2, read from trusted balancers only (the parsing is the `ppp` crate's;
//! this file only frames the header off the stream under a size bound).

use std::net::{IpAddr, SocketAddr};

use ppp::v2::{Addresses, Command, Header, PROTOCOL_PREFIX};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest PROXY v2 header we read (16-byte preamble + addresses + TLVs). Balancers send a
/// few hundred bytes at most; the bound keeps a confused peer from making us buffer 64 KiB.
pub const MAX_PROXY_HEADER_BYTES: usize = 1024;

/// Why a PROXY header was refused. Each closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("connection closed or failed before the PROXY header: {0}")]
    Io(#[from] std::io::Error),
    #[error("no PROXY v2 header from a trusted proxy")]
    Missing,
    #[error("PROXY v2 header of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed PROXY v2 header: {0}")]
    Malformed(String),
}

/// Reads one PROXY v2 header. Returns the client address it carries, or `None` for a
/// `LOCAL` command or an address family without IPs (the balancer's own health checks:
/// the peer address then stands).
pub async fn read_v2<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<IpAddr>, ProxyError> {
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await?;
    if &head[..12] != PROTOCOL_PREFIX {
        return Err(ProxyError::Missing);
    }
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if 16 + len > MAX_PROXY_HEADER_BYTES {
        return Err(ProxyError::TooLarge(16 + len));
    }
    let mut buf = Vec::with_capacity(16 + len);
    buf.extend_from_slice(&head);
    buf.resize(16 + len, 0);
    stream.read_exact(&mut buf[16..]).await?;
    let header = Header::try_from(&buf[..]).map_err(|e| ProxyError::Malformed(e.to_string()))?;
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(IpAddr::V4(a.source_address)),
        Addresses::IPv6(a) => Some(IpAddr::V6(a.source_address)),
        Addresses::Unspecified | Addresses::Unix(_) => None,
    })
}

/// A PROXY v2 header announcing `client` → `server`, for tests and load tools.
pub fn encode_v2(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (client, server),
    )
    .build()
    // Building into a Vec cannot fail for an IP address pair.
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_client_address_and_leaves_the_rest() {
        let client: SocketAddr = "203.0.113.7:5555".parse().unwrap();
        let mut bytes = encode_v2(client, "10.0.0.1:443".parse().unwrap());
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut reader = &bytes[..];
        assert_eq!(read_v2(&mut reader).await.unwrap(), Some(client.ip()));
        assert_eq!(reader, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn ipv6_client_address_is_read() {
        let client: SocketAddr = "[2001:db8::7]:5555".parse().unwrap();
        let bytes = encode_v2(client, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(read_v2(&mut &bytes[..]).await.unwrap(), Some(client.ip()));
    }

    #[tokio::test]
    async fn plain_http_from_a_trusted_peer_is_missing_header() {
        let bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            read_v2(&mut &bytes[..]).await,
            Err(ProxyError::Missing)
        ));
    }

    #[tokio::test]
    async fn oversized_header_is_refused_before_reading_it() {
        let mut bytes = PROTOCOL_PREFIX.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(matches!(
            read_v2(&mut &bytes[..]).await,
            Err(ProxyError::TooLarge(_))
        ));
    }
}
