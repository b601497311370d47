//! Raw HTTP/1.1 requests for tests that must send a request target exactly
//! as written (HTTP clients normalise paths).

/// Sends `method target` with `Host: host` and the `extra` header lines
/// (each ending in `\r\n`), and returns the status code.
pub async fn raw_status(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    host: &str,
    extra: &str,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
