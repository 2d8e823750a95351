//! Byte-level mutations of an input: flips, interesting values, inserted
//! and removed runs, splices with another input of the corpus.

use rand::Rng;

const INTERESTING: [u32; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

pub fn mutate(rng: &mut impl Rng, base: &[u8], corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut out = base.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let len = out.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 if len >= 4 => {
                let i = rng.random_range(0..=len - 4);
                let v = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let bytes = if rng.random() {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                };
                out[i..i + 4].copy_from_slice(&bytes);
            }
            3 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let fill: u8 = rng.random();
                out.splice(i..i, std::iter::repeat_n(fill, n));
            }
            4 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(32));
                out.drain(i..i + n);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let to = rng.random_range(from..=other.len());
                    let at = rng.random_range(0..=len);
                    out.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ if len > 0 => {
                // Duplicate a run (repeated structures, long values).
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                let run: Vec<u8> = out[i..i + n].to_vec();
                out.splice(i..i, run);
            }
            _ => out.push(rng.random()),
        }
    }
    out.truncate(max_len);
    out
}
