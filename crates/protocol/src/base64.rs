//! Base64 (RFC 4648) in the two forms the wire uses, small on purpose (both the client and the
//! edge proxy ship it as WebAssembly):
//! - the standard alphabet, padded, for exec payloads; decoded with or without padding, since
//!   each message is decoded on its own ([`encode`], [`decode`]);
//! - the URL-safe alphabet without padding, for the edge proxy's capabilities ([`encode_url`],
//!   [`decode_url`]).
//!
//! Decoding is canonical: unused bits of the last character must be zero, so one byte string
//! has one encoding.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode_with(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    encode_into_with(input, alphabet, pad, &mut out);
    out
}

/// Appends the encoding of `input` to `out`: 48-byte blocks through a stack buffer (each
/// pushed as one ASCII string), then the tail.
fn encode_into_with(input: &[u8], alphabet: &[u8; 64], pad: bool, out: &mut String) {
    let quad = |n: u32| [18, 12, 6, 0].map(|shift| alphabet[(n >> shift) as usize & 63]);
    out.reserve(input.len().div_ceil(3) * 4);
    let blocks = input.chunks_exact(48);
    let tail = blocks.remainder();
    let mut chars = [0u8; 64];
    for block in blocks {
        for (g, c) in block.chunks_exact(3).zip(chars.chunks_exact_mut(4)) {
            let n = (u32::from(g[0]) << 16) | (u32::from(g[1]) << 8) | u32::from(g[2]);
            c.copy_from_slice(&quad(n));
        }
        // Every character of the alphabet is ASCII.
        out.push_str(std::str::from_utf8(&chars).unwrap_or_default());
    }
    for g in tail.chunks(3) {
        let n =
            (u32::from(g[0]) << 16) | (u32::from(*g.get(1).unwrap_or(&0)) << 8) | u32::from(*g.get(2).unwrap_or(&0));
        for (i, c) in quad(n).into_iter().enumerate() {
            if i <= g.len() {
                out.push(char::from(c));
            } else if pad {
                out.push('=');
            }
        }
    }
}

fn value(c: u8, alphabet: &[u8; 64]) -> Option<u32> {
    let (c62, c63) = (alphabet[62], alphabet[63]);
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        _ if c == c62 => 62,
        _ if c == c63 => 63,
        _ => return None,
    } as u32)
}

fn decode_with(bytes: &[u8], alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c, alphabet)? << (18 - 6 * i);
        }
        let kept = chunk.len() - 1;
        let [_, a, b, c] = n.to_be_bytes();
        // Bits past the last whole byte must be zero (canonical).
        if kept < 3 && [a, b, c][kept] != 0 {
            return None;
        }
        out.extend_from_slice(&[a, b, c][..kept]);
    }
    Some(out)
}

/// Encodes in the standard alphabet, padded.
pub fn encode(input: &[u8]) -> String {
    encode_with(input, STANDARD, true)
}

/// Appends the standard, padded encoding of `input` to `out` (a frame built in place).
pub fn encode_into(input: &[u8], out: &mut String) {
    encode_into_with(input, STANDARD, true, out)
}

/// Decodes the standard alphabet, with or without padding (as the `base64` crate's indifferent
/// mode: padding only completes a last group of 2 or 3, and may stop short); blanks at the end
/// are ignored.
pub fn decode(input: &str) -> Option<Vec<u8>> {
    let input = input.trim_end().as_bytes();
    let pads = input.iter().rev().take_while(|&&b| b == b'=').count();
    let unpadded = &input[..input.len() - pads];
    let last_group = unpadded.len() % 4;
    if pads > 0 && (last_group < 2 || last_group + pads > 4) {
        return None;
    }
    decode_with(unpadded, STANDARD)
}

/// Encodes in the URL-safe alphabet, unpadded.
pub fn encode_url(input: &[u8]) -> String {
    encode_with(input, URL_SAFE, false)
}

/// Decodes the URL-safe alphabet, unpadded (padding is refused).
pub fn decode_url(input: &str) -> Option<Vec<u8>> {
    decode_with(input.as_bytes(), URL_SAFE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).unwrap(), plain.as_bytes());
            let unpadded = coded.trim_end_matches('=');
            assert_eq!(decode(unpadded).unwrap(), plain.as_bytes(), "without padding");
            assert_eq!(encode_url(plain.as_bytes()), unpadded);
            assert_eq!(decode_url(unpadded).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn round_trips_every_byte_and_refuses_garbage() {
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        assert_eq!(decode_url(&encode_url(&all)).unwrap(), all);
        assert!(encode(&all).contains('+') && encode_url(&all).contains('-'));
        assert_eq!(decode("ab!d"), None);
        assert_eq!(decode("abcde"), None);
        assert_eq!(decode("aGk=\n").unwrap(), b"hi");
        // Padding that stops short, as the base64 crate takes it (proptest found this one).
        assert_eq!(decode("aQ=").unwrap(), b"i");
        // Not canonical: unused bits set.
        assert_eq!(decode("aGl="), None);
        assert_eq!(decode("Zh=="), None);
        // Padding where there is none to pad, or in the URL-safe form.
        assert_eq!(decode("Zm9v="), None);
        assert_eq!(decode_url("Zg=="), None);
        assert_eq!(decode_url("a+b/"), None);
    }

    proptest::proptest! {
        /// The same answers as the `base64` crate (strict about trailing bits, as this is).
        #[test]
        fn agrees_with_the_base64_crate(bytes: Vec<u8>, text in "[A-Za-z0-9+/=_-]{0,12}") {
            use ::base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
            use ::base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
            use ::base64::Engine;
            const LENIENT: GeneralPurpose = GeneralPurpose::new(
                &::base64::alphabet::STANDARD,
                GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            proptest::prop_assert_eq!(encode(&bytes), STANDARD.encode(&bytes));
            proptest::prop_assert_eq!(encode_url(&bytes), URL_SAFE_NO_PAD.encode(&bytes));
            proptest::prop_assert_eq!(decode(&text), LENIENT.decode(&text).ok(), "{}", text);
            proptest::prop_assert_eq!(decode_url(&text), URL_SAFE_NO_PAD.decode(&text).ok(), "{}", text);
        }
    }
}
