//! Just enough JSON-RPC reading for the data path, on a bounded prefix of
//! a body that may be cut short or be an SSE stream: the request `id` (to
//! echo in a fast-fail reply) and a response's `error.code`. Tolerant and
//! panic-free on any input; it reads, it never allocates more than the id.

/// The request id as JSON text (`7`, `"abc"`), if the body has one at top level.
pub fn request_id(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok().or_else(|| std::str::from_utf8(&body[..valid_prefix(body)]).ok())?;
    let v = top_level_value(text, "id")?;
    let v = v.trim();
    if v.starts_with('"') {
        let end = string_end(v)?;
        Some(v[..=end].to_string())
    } else {
        let n: String = v.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
        (!n.is_empty() && n != "-").then_some(n)
    }
}

/// `error.code` of a JSON-RPC response; for SSE, of the first event that has one.
pub fn error_code(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(&body[..valid_prefix(body)]).ok()?;
    if text.trim_start().starts_with('{') {
        return code_in(text);
    }
    text.lines().filter_map(|l| l.strip_prefix("data:")).find_map(code_in)
}

fn code_in(json: &str) -> Option<i64> {
    let err = top_level_value(json, "error")?;
    let err = err.trim_start().strip_prefix('{')?;
    let code = key_value(err, "code")?;
    let n: String = code.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
    n.parse().ok()
}

/// The longest prefix that is valid UTF-8 (a cut may split a character).
fn valid_prefix(b: &[u8]) -> usize {
    match std::str::from_utf8(b) {
        Ok(_) => b.len(),
        Err(e) => e.valid_up_to(),
    }
}

/// Index of the closing quote of the string starting at `s[0] == '"'`.
fn string_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The text after `"key":` at nesting depth 1 of the object starting at
/// the first `{` of `json`.
fn top_level_value<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find('{')?;
    key_value(&json[start + 1..], key)
}

/// Scans an object body (after its `{`) for `"key":` at depth 0.
fn key_value<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let bytes = obj.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = i + string_end(&obj[i..])?;
                if depth == 0 && &obj[i + 1..end] == key {
                    let rest = obj[end + 1..].trim_start();
                    if let Some(v) = rest.strip_prefix(':') {
                        return Some(v);
                    }
                }
                i = end + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(request_id(br#"{"jsonrpc":"2.0","id":7,"method":"x"}"#).as_deref(), Some("7"));
        assert_eq!(request_id(br#"{"id":"a\"b","method":"x"}"#).as_deref(), Some(r#""a\"b""#));
        assert_eq!(request_id(br#"{"params":{"id":5},"method":"notifications/x"}"#), None, "nested ids do not count");
        assert_eq!(request_id(br#"{"method":"x","id":-3}"#).as_deref(), Some("-3"));
        assert_eq!(request_id(br#"{"method":"x","id":null}"#), None);
        assert_eq!(request_id(b"not json"), None);
        assert_eq!(request_id(br#"{"id":12"#).as_deref(), Some("12"), "cut short");
    }

    #[test]
    fn error_codes() {
        assert_eq!(error_code(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"x"}}"#), Some(-32603));
        assert_eq!(error_code(br#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"error":{"code":1}}}"#), None, "tool results are not errors");
        assert_eq!(error_code(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"m\",\"code\":-32001}}\n\n"), Some(-32001));
        assert_eq!(error_code(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"), None);
        assert_eq!(error_code(br#"{"result":{"text":"\"error\":{\"code\":-32603}"}}"#), None, "inside a string");
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut x: u64 = 0x1234_5678;
        let alphabet = br#"{}[]":,\ -0123456789idercoda
"#;
        for len in 0..200 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if x.is_multiple_of(7) { (x >> 8) as u8 } else { alphabet[(x % alphabet.len() as u64) as usize] }
                    })
                    .collect();
                let _ = request_id(&bytes);
                let _ = error_code(&bytes);
            }
        }
        let _ = request_id(&[0xff, 0xfe, b'{']);
        let _ = error_code("{\"error\":{\"code\":-3é".as_bytes().split_at(20).0);
    }
}
