//! The proxy-wasm header-map wire format: a u32 count, a (name length,
//! value length) u32 pair per entry, then each name and value followed by
//! a NUL. Parsing is bounds-checked: a malformed map from the guest is an
//! error, never a panic.

use crate::state::Headers;

pub fn encode(h: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    for (k, v) in h {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in h {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// `None` when the bytes are not a well-formed map. An empty input is an
/// empty map (the SDK passes no bytes for no headers only in some calls).
pub fn decode(b: &[u8]) -> Option<Headers> {
    if b.is_empty() {
        return Some(Vec::new());
    }
    let u32_at = |i: usize| b.get(i..i.checked_add(4)?).and_then(|s| s.try_into().ok()).map(u32::from_le_bytes);
    let n = u32_at(0)? as usize;
    let mut lens = Vec::new();
    let mut i = 4usize;
    for _ in 0..n {
        let (k, v) = (u32_at(i)? as usize, u32_at(i + 4)? as usize);
        lens.push((k, v));
        i = i.checked_add(8)?;
    }
    let mut out = Vec::with_capacity(n);
    for (k, v) in lens {
        let name = b.get(i..i.checked_add(k)?)?;
        i = i.checked_add(k)?.checked_add(1)?;
        let value = b.get(i..i.checked_add(v)?)?;
        i = i.checked_add(v)?.checked_add(1)?;
        out.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    (i <= b.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let h: Headers = vec![(":status".into(), b"200".to_vec()), ("x".into(), vec![0xff])];
        assert_eq!(decode(&encode(&h)), Some(h));
        assert_eq!(decode(&[5, 0, 0, 0]), None);
        assert_eq!(decode(&[1, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0]), None);
        assert_eq!(decode(&[0, 0, 0, 0]), Some(vec![]));
    }
}
