//! Reading the server name from a TLS ClientHello without terminating TLS
//! (like nginx `ssl_preread`). The hello may span several records and TCP
//! reads; its size is bounded.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Largest ClientHello accepted (handshake message body).
const MAX_HELLO: usize = 16 * 1024;
/// Bytes read at most while looking for it: the hello plus record headers.
const MAX_READ: usize = MAX_HELLO + 64 * 5 + 4;

/// Why no server name could be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeekError {
    #[error("not TLS: the first bytes are no TLS handshake record")]
    NotTls,
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    #[error("ClientHello larger than {MAX_HELLO} bytes")]
    TooLarge,
    #[error("client closed before the ClientHello was complete")]
    Closed,
    #[error("no complete ClientHello within {0:?}")]
    Timeout(Duration),
    #[error("read failed: {0}")]
    Io(String),
}

/// What the bytes so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    /// The hello is complete; the server name if it sent one.
    Done(Option<String>),
}

/// Reads from `stream` until the ClientHello is complete. Returns the
/// server name (lower case) and every byte read, to forward first.
pub async fn peek_server_name(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<(Option<String>, Vec<u8>), PeekError> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            let mut chunk = [0u8; 4096];
            let room = (MAX_READ - buf.len()).min(chunk.len());
            if room == 0 {
                return Err(PeekError::TooLarge);
            }
            let n = stream
                .read(&mut chunk[..room])
                .await
                .map_err(|e| PeekError::Io(e.to_string()))?;
            if n == 0 {
                return Err(if buf.is_empty() {
                    PeekError::NotTls
                } else {
                    PeekError::Closed
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Progress::Done(name) = parse(&buf)? {
                return Ok(name);
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(name)) => Ok((name, buf)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(PeekError::Timeout(timeout)),
    }
}

/// Parses the TLS records in `buf` as far as they go.
pub fn parse(buf: &[u8]) -> Result<Progress, PeekError> {
    // Reassemble the handshake stream from consecutive handshake records.
    let mut handshake = Vec::new();
    let mut rest = buf;
    while rest.len() >= 5 {
        if rest[0] != 22 || rest[1] != 3 {
            return Err(if handshake.is_empty() {
                PeekError::NotTls
            } else {
                PeekError::Malformed("non-handshake record")
            });
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > 16384 + 2048 {
            return Err(PeekError::Malformed("bad record length"));
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            handshake.extend_from_slice(&rest[5..]);
            rest = &[];
            break;
        };
        handshake.extend_from_slice(fragment);
        rest = &rest[5 + len..];
    }
    if handshake.is_empty()
        && !rest.is_empty()
        && (rest[0] != 22 || rest.get(1).is_some_and(|v| *v != 3))
    {
        return Err(PeekError::NotTls);
    }
    if handshake.len() < 4 {
        return Ok(Progress::NeedMore);
    }
    if handshake[0] != 1 {
        return Err(PeekError::Malformed(
            "first handshake message is not a ClientHello",
        ));
    }
    let len = (usize::from(handshake[1]) << 16)
        | (usize::from(handshake[2]) << 8)
        | usize::from(handshake[3]);
    if len > MAX_HELLO {
        return Err(PeekError::TooLarge);
    }
    match handshake.get(4..4 + len) {
        Some(body) => client_hello_server_name(body).map(Progress::Done),
        None => Ok(Progress::NeedMore),
    }
}

/// A cursor over a ClientHello body; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PeekError> {
        if self.0.len() < n {
            return Err(PeekError::Malformed("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<usize, PeekError> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, PeekError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Result<&'a [u8], PeekError> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Result<&'a [u8], PeekError> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello_server_name(body: &[u8]) -> Result<Option<String>, PeekError> {
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    if r.0.is_empty() {
        return Ok(None); // no extensions at all
    }
    let mut extensions = Reader(r.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                let name = std::str::from_utf8(name)
                    .map_err(|_| PeekError::Malformed("server name is not text"))?;
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
                {
                    return Err(PeekError::Malformed("bad server name"));
                }
                return Ok(Some(name.trim_end_matches('.').to_ascii_lowercase()));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello for `name`, as one handshake message.
    fn hello(name: Option<&str>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one suite
        body.extend([1, 0]); // null compression
        let mut ext = Vec::new();
        if let Some(name) = name {
            let n = name.len() as u16;
            ext.extend([0, 0]);
            ext.extend((n + 5).to_be_bytes());
            ext.extend((n + 3).to_be_bytes());
            ext.push(0);
            ext.extend(n.to_be_bytes());
            ext.extend(name.as_bytes());
        }
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut msg = vec![1, 0];
        msg.extend((body.len() as u16).to_be_bytes());
        msg.extend(body);
        msg
    }

    fn records(msg: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in msg.chunks(split) {
            out.extend([22, 3, 1]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn reads_the_name_from_one_or_many_records() {
        let msg = hello(Some("A.Example"));
        for split in [msg.len(), 10, 1] {
            let wire = records(&msg, split);
            assert_eq!(
                parse(&wire),
                Ok(Progress::Done(Some("a.example".into()))),
                "split {split}"
            );
            for cut in 0..wire.len() {
                assert_eq!(
                    parse(&wire[..cut]),
                    Ok(Progress::NeedMore),
                    "split {split} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn no_sni_is_none_and_garbage_is_refused() {
        assert_eq!(
            parse(&records(&hello(None), 1000)),
            Ok(Progress::Done(None))
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(PeekError::NotTls));
        assert_eq!(
            parse(&[22, 3, 1, 0, 0]),
            Err(PeekError::Malformed("bad record length"))
        );
        let mut wire = records(&hello(Some("a")), 1000);
        wire[5] = 2; // ServerHello
        assert!(matches!(parse(&wire), Err(PeekError::Malformed(_))));
    }

    #[test]
    fn truncated_inner_lengths_are_malformed_not_panics() {
        let msg = hello(Some("a.example"));
        for cut in 4..msg.len() {
            let mut m = msg[..cut].to_vec();
            let len = (cut - 4) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let _ = parse(&records(&m, 1000));
        }
    }
}
