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

/// The 6-bit value of every byte in an alphabet; 0xFF for bytes outside it.
const fn values(alphabet: &[u8; 64]) -> [u8; 256] {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static STANDARD_VALUES: [u8; 256] = values(STANDARD);
static URL_SAFE_VALUES: [u8; 256] = values(URL_SAFE);

/// Appends the decoding of unpadded `bytes` to `out`, written straight into its spare capacity
/// (no zeroing pass first; a table look-up per character, no branch per group); false, with
/// `out` as it was, for a byte outside the alphabet or a last character that is not canonical.
fn decode_into_with(bytes: &[u8], values: &[u8; 256], out: &mut Vec<u8>) -> bool {
    if bytes.len() % 4 == 1 {
        return false;
    }
    let groups = bytes.chunks_exact(4);
    let tail = groups.remainder();
    let whole = bytes.len() / 4 * 3;
    let len = whole + tail.len().saturating_sub(1);
    out.reserve(len);
    let (body, end) = out.spare_capacity_mut()[..len].split_at_mut(whole);
    // A byte outside the alphabet is 0xFF: OR-ed together, it leaves bits above the sixth.
    let mut seen = 0u8;
    let value = |c: u8| values[usize::from(c)];
    for (chars, three) in groups.zip(body.chunks_exact_mut(3)) {
        let [a, b, c, d] = [value(chars[0]), value(chars[1]), value(chars[2]), value(chars[3])];
        seen |= a | b | c | d;
        three[0].write(a << 2 | b >> 4);
        three[1].write(b << 4 | c >> 2);
        three[2].write(c << 6 | d);
    }
    let mut n = 0u32;
    for (&c, shift) in tail.iter().zip([18, 12, 6]) {
        seen |= value(c);
        n |= u32::from(value(c)) << shift;
    }
    let [_, a, b, c] = n.to_be_bytes();
    for (slot, byte) in end.iter_mut().zip([a, b, c]) {
        slot.write(byte);
    }
    // Bits past the last whole byte must be zero (canonical).
    let canonical = tail.is_empty() || [a, b, c][end.len()] == 0;
    if seen < 64 && canonical {
        // SAFETY: the loops above wrote all `len` bytes past the old end.
        unsafe { out.set_len(out.len() + len) };
        return true;
    }
    false
}

fn decode_with(bytes: &[u8], values: &[u8; 256]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_into_with(bytes, values, &mut out).then_some(out)
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
    let mut out = Vec::new();
    decode_into(input.trim_end().as_bytes(), &mut out).then_some(out)
}

/// Appends the decoding of `input` to `out`, as [`decode`] but with no blanks allowed at the
/// end; false, with `out` as it was, when it is not base64.
pub fn decode_into(input: &[u8], out: &mut Vec<u8>) -> bool {
    let pads = input.iter().rev().take_while(|&&b| b == b'=').count();
    let unpadded = &input[..input.len() - pads];
    let last_group = unpadded.len() % 4;
    if pads > 0 && (last_group < 2 || last_group + pads > 4) {
        return false;
    }
    decode_into_with(unpadded, &STANDARD_VALUES, out)
}

/// Encodes in the URL-safe alphabet, unpadded.
pub fn encode_url(input: &[u8]) -> String {
    encode_with(input, URL_SAFE, false)
}

/// Decodes the URL-safe alphabet, unpadded (padding is refused).
pub fn decode_url(input: &str) -> Option<Vec<u8>> {
    decode_with(input.as_bytes(), &URL_SAFE_VALUES)
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

        /// Long inputs, whole or with one character replaced, decode as the `base64` crate
        /// decodes them; `decode_into` appends, and leaves what was there on a refusal.
        #[test]
        fn long_inputs_agree_with_the_base64_crate(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
            at: proptest::sample::Index,
            with in "[A-Za-z0-9+/=_ !-]",
        ) {
            use ::base64::engine::general_purpose::STANDARD;
            use ::base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
            use ::base64::Engine;
            const LENIENT: GeneralPurpose = GeneralPurpose::new(
                &::base64::alphabet::STANDARD,
                GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            let mut text = STANDARD.encode(&bytes);
            proptest::prop_assert_eq!(decode(&text), Some(bytes.clone()));
            if !text.is_empty() {
                let i = at.index(text.len());
                text.replace_range(i..i + 1, &with);
            }
            let mut out = b"kept".to_vec();
            let ok = decode_into(text.as_bytes(), &mut out);
            let theirs = LENIENT.decode(&text).ok();
            proptest::prop_assert_eq!(ok, theirs.is_some());
            let mut expected = b"kept".to_vec();
            expected.extend(theirs.unwrap_or_default());
            proptest::prop_assert_eq!(out, expected);
        }
    }
}
