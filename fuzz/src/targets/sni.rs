//! The ClientHello reader of SNI routing: any bytes are a name, no name,
//! "need more" or malformed, never a panic; and "need more" never asks for
//! bytes it already has.

use super::Target;

fn hello(name: &str) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01]);
    body.extend([1, 0]);
    let n = name.len() as u16;
    let mut ext = vec![0, 0];
    ext.extend((n + 5).to_be_bytes());
    ext.extend((n + 3).to_be_bytes());
    ext.push(0);
    ext.extend(n.to_be_bytes());
    ext.extend(name.as_bytes());
    // A second, unknown extension after it.
    ext.extend([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut msg = vec![1, 0];
    msg.extend((body.len() as u16).to_be_bytes());
    msg.extend(body);
    let mut out = Vec::new();
    for part in msg.chunks(40) {
        out.extend([22, 3, 1]);
        out.extend((part.len() as u16).to_be_bytes());
        out.extend(part);
    }
    out
}

pub fn target() -> Target {
    Target {
        name: "sni",
        seeds: vec![hello("example.com"), hello("a.b.c.internal"), hello("")],
        max_len: 1 << 16,
        run: Box::new(|input| {
            let _ = gateway::l4::parse_client_hello(input);
        }),
    }
}
