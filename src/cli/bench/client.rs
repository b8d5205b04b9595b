//! A minimal HTTP/1.1 client over one keep-alive connection: the load
//! generator's own, so the client's overhead is small and known.

use tokio::io::AsyncBufReadExt;

/// A lean HTTP/1.1 keep-alive client: the load generator shares this
/// machine's two cores with the server, so it must cost as little as
/// possible (reqwest cost about as much CPU as the server it measured).
pub(super) struct Connection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    pub(super) async fn open(url: &str) -> std::io::Result<Connection> {
        let authority = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("127.0.0.1:8080");
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: tokio::io::BufReader::new(stream),
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one POST and reads the answer: status and body.
    pub(super) async fn post(
        &mut self,
        url: &str,
        token: &str,
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        self.buffer.clear();
        self.buffer.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.buffer.extend_from_slice(body.as_bytes());
        self.stream.get_mut().write_all(&self.buffer).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut status = 0u16;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("connection closed"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if status == 0 {
                status = header
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no status"))?;
            } else if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| bad("bad content-length"))?;
                }
            }
        }
        let mut reply = vec![0u8; length];
        self.stream.read_exact(&mut reply).await?;
        Ok((status, String::from_utf8_lossy(&reply).into_owned()))
    }
}
