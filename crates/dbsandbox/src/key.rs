//! Sandbox keys: validation and unique per-test keys.

use std::sync::atomic::{AtomicU64, Ordering};

/// The longest key the daemon accepts.
pub const MAX_KEY_LEN: usize = 48;

/// True when `key` is 1 to 48 characters of `[A-Za-z0-9_-]`, the daemon's key syntax.
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(is_key_byte)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Turns any text into key characters: every other character becomes `_`, runs of `_` collapse,
/// `_` at the ends is trimmed, and the result is cut to `max` bytes; empty input gives `sb`.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_ascii() && is_key_byte(c as u8) {
            c
        } else {
            '_'
        };
        if c == '_' && (out.is_empty() || out.ends_with('_')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(max);
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("sb");
        out.truncate(max.max(1));
    }
    out
}

/// A key unique in this process and, through the pid, among processes that run at the same time:
/// `<hint>-<pid>-<n>` within 48 characters. `hint` is a test name, possibly a module path: its
/// last `::` segment is used.
pub fn unique_key(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    key_with_suffix(hint, std::process::id(), n)
}

pub(crate) fn key_with_suffix(hint: &str, pid: u32, n: u64) -> String {
    let suffix = format!("-{pid}-{n}");
    let name = hint.rsplit("::").next().unwrap_or(hint);
    let base = sanitize(name, MAX_KEY_LEN.saturating_sub(suffix.len()));
    format!("{base}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_keys() {
        assert!(is_valid_key("gw0"));
        assert!(is_valid_key("a-B_9"));
        assert!(is_valid_key(&"x".repeat(48)));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key(&"x".repeat(49)));
        assert!(!is_valid_key("a b"));
        assert!(!is_valid_key("a/b"));
        assert!(!is_valid_key("é"));
        assert!(!is_valid_key("a.b"));
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("tests::users::insert", 48), "tests_users_insert");
        assert_eq!(sanitize("  héllo wörld!! ", 48), "h_llo_w_rld");
        assert_eq!(sanitize("___", 48), "sb");
        assert_eq!(sanitize("", 48), "sb");
        assert_eq!(sanitize("abcdef", 3), "abc");
        assert_eq!(sanitize("ab_cdef", 3), "ab");
        assert_eq!(sanitize("日本語", 48), "sb");
    }

    #[test]
    fn unique_keys_are_valid_and_distinct() {
        let long =
            "a_really_long_module::path::with_a_test_name_that_goes_on_and_on_and_on_forever";
        let a = unique_key(long);
        let b = unique_key(long);
        assert_ne!(a, b);
        for k in [&a, &b] {
            assert!(is_valid_key(k), "{k}");
            assert!(k.starts_with("with_a_test_name"), "{k}");
        }
        let k = key_with_suffix("mod::t", u32::MAX, u64::MAX);
        assert!(is_valid_key(&k), "{k}");
        assert!(k.ends_with(&format!("-{}-{}", u32::MAX, u64::MAX)));
        assert!(is_valid_key(&key_with_suffix("::", 1, 2)));
        assert_eq!(key_with_suffix("m::insert user", 42, 7), "insert_user-42-7");
    }
}
