//! The header-map wire format the hostcalls read from and write to guest
//! memory: decoding any bytes never panics, and what decodes re-encodes to
//! the same pairs.

use super::Target;

pub fn target() -> Target {
    let seed = gateway::filter::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/a?b=c"),
            (b"x-empty", b""),
        ]
        .into_iter(),
    );
    Target {
        name: "pairs",
        seeds: vec![seed, vec![0, 0, 0, 0], Vec::new()],
        max_len: 1 << 16,
        run: Box::new(|input| {
            if let Some(pairs) = gateway::filter::decode_pairs(input) {
                let wire = gateway::filter::encode_pairs(
                    pairs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
                );
                let again = gateway::filter::decode_pairs(&wire);
                assert_eq!(again.as_ref(), Some(&pairs), "round trip");
            }
        }),
    }
}
