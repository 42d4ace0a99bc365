//! The compact encoding of an identity in a cache entry.
//!
//! Layout: the header count, then each header as a name code (or 0 and the
//! literal name) and its value, then the cookie count and each `Set-Cookie`
//! value. Counts and lengths are LEB128 varints. The headers of Authgear's
//! contract are stored as one-byte codes, so a typical identity takes about
//! 100 bytes.

use crate::identity::{Header, Identity};

/// Header names that get a one-byte code, in Authgear's spelling. A name is
/// coded only when it matches byte for byte, so decoding gives back exactly
/// what the resolver sent.
const KNOWN_NAMES: [&[u8]; 9] = [
    b"X-Authgear-Session-Valid",
    b"X-Authgear-User-Id",
    b"X-Authgear-User-Anonymous",
    b"X-Authgear-User-Verified",
    b"X-Authgear-User-Can-Reauthenticate",
    b"X-Authgear-Session-Amr",
    b"X-Authgear-User-Roles",
    b"X-Authgear-Session-Authenticated-At",
    b"X-Authgear-Session-Acr",
];

/// The reason stored bytes could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Truncated,
    UnknownCode(u8),
    TrailingBytes,
}

fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Encodes `identity` into the entry layout.
pub fn encode(identity: &Identity) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    put_varint(&mut out, identity.headers().len());
    for header in identity.headers() {
        match KNOWN_NAMES.iter().position(|name| *name == header.name) {
            Some(index) => out.push(index as u8 + 1),
            None => {
                out.push(0);
                put_bytes(&mut out, &header.name);
            }
        }
        put_bytes(&mut out, &header.value);
    }
    put_varint(&mut out, identity.set_cookies().len());
    for cookie in identity.set_cookies() {
        put_bytes(&mut out, cookie);
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.bytes.split_first().ok_or(DecodeError::Truncated)?;
        self.bytes = rest;
        Ok(first)
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
        let mut value: usize = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Truncated)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (value, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(value)
    }
}

/// Decodes the entry layout back into an identity.
///
/// NOTE: this allocates every header name and value on its own, about 17
/// allocations for a typical identity and the largest share of a cache
/// hit's cost after the key's SHA-256 in the benchmark's profile. Keeping
/// the identity in one buffer with ranges would remove them.
pub fn decode(bytes: &[u8]) -> Result<Identity, DecodeError> {
    let mut reader = Reader { bytes };

    // Every header takes at least two bytes, which bounds the count before
    // anything is allocated for it.
    let count = reader.varint()?;
    if count > reader.bytes.len() / 2 {
        return Err(DecodeError::Truncated);
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let code = reader.byte()?;
        let name = match code {
            0 => reader.bytes()?.to_vec(),
            code => KNOWN_NAMES
                .get(usize::from(code) - 1)
                .ok_or(DecodeError::UnknownCode(code))?
                .to_vec(),
        };
        let value = reader.bytes()?.to_vec();
        headers.push(Header { name, value });
    }

    let count = reader.varint()?;
    if count > reader.bytes.len() {
        return Err(DecodeError::Truncated);
    }
    let mut cookies = Vec::with_capacity(count);
    for _ in 0..count {
        cookies.push(reader.bytes()?.to_vec());
    }

    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(Identity::from_parts(headers, cookies))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(headers: &[(&str, &str)], cookies: &[&str]) -> Identity {
        Identity::from_parts(
            headers
                .iter()
                .map(|(name, value)| Header {
                    name: name.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
            cookies.iter().map(|c| c.as_bytes().to_vec()).collect(),
        )
    }

    pub(crate) fn typical() -> Identity {
        identity(
            &[
                ("X-Authgear-Session-Valid", "true"),
                ("X-Authgear-User-Id", "0b4c3f50-5d1c-4a8c-9b57-6f0c2d3e1a29"),
                ("X-Authgear-User-Anonymous", "false"),
                ("X-Authgear-User-Verified", "true"),
                ("X-Authgear-User-Can-Reauthenticate", "true"),
                ("X-Authgear-Session-Amr", "pwd mfa"),
                ("X-Authgear-User-Roles", "admin,editor"),
                ("X-Authgear-Session-Authenticated-At", "1764806400"),
            ],
            &[],
        )
    }

    #[test]
    fn typical_identity_round_trips_compactly() {
        let encoded = encode(&typical());
        assert_eq!(decode(&encoded), Ok(typical()));
        assert!(
            encoded.len() <= 110,
            "typical entry takes {} bytes",
            encoded.len()
        );
    }

    #[test]
    fn unknown_and_recased_names_round_trip() {
        let original = identity(
            &[
                ("x-authgear-session-valid", "false"),
                ("X-Authgear-Future-Header", ""),
                ("X-Authgear-User-Roles", &"r".repeat(6000)),
            ],
            &["session=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"],
        );
        assert_eq!(decode(&encode(&original)), Ok(original));
    }

    #[test]
    fn empty_identity_round_trips() {
        let empty = Identity::default();
        assert_eq!(encode(&empty), vec![0, 0]);
        assert_eq!(decode(&[0, 0]), Ok(empty));
    }

    #[test]
    fn decode_rejects_damaged_bytes() {
        let encoded = encode(&typical());
        for len in 0..encoded.len() {
            assert!(
                decode(&encoded[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(DecodeError::TrailingBytes));
        assert_eq!(decode(&[1, 42, 0, 0]), Err(DecodeError::UnknownCode(42)));
        assert!(decode(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
