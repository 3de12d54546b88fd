//! Quoting for the commands the reports print, so that they paste into a POSIX shell as they are.

/// `word` as one shell word: bare when it is safe, single-quoted otherwise.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Words joined into one pasteable command line.
pub fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(
            shell_quote("tests/test_a.py::test_x"),
            "tests/test_a.py::test_x"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("x[1]"), "'x[1]'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(
            shell_join(&["pytest", "-k", "a or b"]),
            "pytest -k 'a or b'"
        );
    }
}
