//! Session settings made by a function call: `set_config(name, value, false)` is `SET`,
//! `set_config(name, value, true)` is `SET LOCAL` (Django sets its time zone this way). The
//! proxy keeps each client's session settings and re-applies them on the shared backend (after a
//! rollback, or when another client ran in between), so a setting made by a call must be
//! recorded like a `SET`: after the statement succeeded, the setting's value is read back from
//! the backend and kept as the client's `SET`.

use super::*;

/// What `SET SESSION CHARACTERISTICS AS TRANSACTION …` sets: kept as the client's SETs of them.
const SESSION_CHARACTERISTICS: [&str; 3] = [
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
];

/// Whether the statement is `SET SESSION CHARACTERISTICS AS TRANSACTION …`.
pub(super) fn sets_session_characteristics(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split_whitespace()
        .take(5)
        .map(str::to_ascii_lowercase)
        .collect();
    words == ["set", "session", "characteristics", "as", "transaction"]
}

/// One `set_config(…)` call found in a statement's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SetConfigCall {
    /// The setting's name, when written as a string literal.
    pub name: Option<String>,
    /// The `is_local` argument, when written as a literal.
    pub local: Option<bool>,
}

/// The `set_config(…)` calls in SQL text (outside string literals and quoted identifiers).
pub(super) fn set_config_calls(sql: &str) -> Vec<SetConfigCall> {
    const NAME: &[u8] = b"set_config";
    let bytes = sql.as_bytes();
    let mut calls = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => i = skip_quoted(bytes, i),
            _ if bytes.len() >= i + NAME.len()
                && bytes[i..i + NAME.len()].eq_ignore_ascii_case(NAME)
                && (i == 0 || !is_ident_byte(bytes[i - 1])) =>
            {
                let mut j = i + NAME.len();
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if bytes.get(j) == Some(&b'(') {
                    let args = arguments(sql, j + 1);
                    calls.push(SetConfigCall {
                        name: args.first().and_then(|a| string_literal(a)),
                        local: args.get(2).and_then(|a| boolean_literal(a)),
                    });
                }
                i += NAME.len();
            }
            _ => i += 1,
        }
    }
    calls
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// The index just after the quoted text starting at `start` (a doubled quote escapes one).
fn skip_quoted(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The top-level, comma-separated arguments of a call whose text starts at `from`.
fn arguments(sql: &str, from: usize) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let (mut depth, mut start, mut i) = (0usize, from, from);
    let mut args = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                i = skip_quoted(bytes, i);
                continue;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => {
                args.push(sql[start..i].trim());
                return args;
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                args.push(sql[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    args
}

/// `'text'` (optionally cast, `'text'::text`) as its value.
fn string_literal(arg: &str) -> Option<String> {
    let arg = arg.split("::").next()?.trim();
    let inner = arg.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

fn boolean_literal(arg: &str) -> Option<bool> {
    let arg = arg.split("::").next()?.trim().trim_matches('\'');
    match arg.to_ascii_lowercase().as_str() {
        "false" | "f" | "off" | "no" | "n" | "0" => Some(false),
        "true" | "t" | "on" | "yes" | "y" | "1" => Some(true),
        _ => None,
    }
}

impl Unit {
    /// After a statement succeeded (the backend at a boundary): what it changed of the client's
    /// session besides SET, recorded as the client's.
    pub(super) async fn record_session_effects(
        &mut self,
        backend: &mut Backend,
        sql: &str,
    ) -> Result<(), SessionEnd> {
        if mentions_set_config(sql) {
            self.record_set_configs(backend, sql).await?;
        }
        if sets_session_characteristics(sql) {
            for name in SESSION_CHARACTERISTICS {
                self.record_read_back(backend, name).await?;
            }
        }
        if temp_objects::may_create_temp(sql) {
            self.record_temp_objects(backend).await?;
        }
        Ok(())
    }

    /// After a statement with `set_config(…)` calls succeeded (the backend at a boundary): each
    /// session-wide one becomes the client's `SET` of the value the backend now has, each local
    /// one is noted like a `SET LOCAL`. A call whose name is not a literal (a parameter, as in
    /// `set_config($1, $2, false)`) may have set anything: every setting the backend's session
    /// holds is read back (they are this client's: its settings are applied before its batch).
    pub(super) async fn record_set_configs(
        &mut self,
        backend: &mut Backend,
        sql: &str,
    ) -> Result<(), SessionEnd> {
        for call in set_config_calls(sql) {
            if call.local == Some(true) {
                backend.note_set_local(self.id);
                continue;
            }
            match call.name {
                Some(name) => self.record_read_back(backend, &name).await?,
                None => self.record_session_settings(backend).await?,
            }
        }
        Ok(())
    }

    /// Every setting made in the backend's session becomes the client's `SET` of it, but the
    /// [`VIRTUAL_SETTINGS`]' (the backend holds 0 for those; the client's own are kept apart).
    async fn record_session_settings(&mut self, backend: &mut Backend) -> Result<(), SessionEnd> {
        const SESSION_SETTINGS: &str = "SELECT name, pg_catalog.current_setting(name) \
             FROM pg_catalog.pg_settings WHERE source = 'session'";
        let Ok(rows) = backend.run_internal(SESSION_SETTINGS).await? else {
            return Ok(());
        };
        for row in rows {
            if let [Some(name), Some(value)] = row.as_slice() {
                let name = name.to_ascii_lowercase();
                if is_virtual_setting(&name) {
                    continue;
                }
                let set = format!("SET {} TO {}", quote_ident(&name), quote_literal(value));
                let known = backend
                    .clients
                    .get(&self.id)
                    .and_then(|client| client.settings.get(&name));
                if known != Some(&set) {
                    backend.record_setting(self.id, &name, Some(set));
                }
            }
        }
        Ok(())
    }

    /// The setting's value on the backend now becomes the client's `SET` of it.
    async fn record_read_back(
        &mut self,
        backend: &mut Backend,
        name: &str,
    ) -> Result<(), SessionEnd> {
        let read = format!(
            "SELECT pg_catalog.current_setting({}, true)",
            quote_literal(name)
        );
        if let Ok(rows) = backend.run_internal(&read).await? {
            if let Some([Some(value)]) = rows.first().map(Vec::as_slice) {
                let name = name.to_ascii_lowercase();
                let set = format!("SET {} TO {}", quote_ident(&name), quote_literal(value));
                backend.record_setting(self.id, &name, Some(set));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_characteristics_are_recognised() {
        assert!(sets_session_characteristics(
            "SET SESSION  CHARACTERISTICS AS TRANSACTION READ ONLY"
        ));
        assert!(!sets_session_characteristics("SET TRANSACTION READ ONLY"));
    }

    #[test]
    fn calls_are_found_with_their_literal_arguments() {
        assert_eq!(
            set_config_calls("SELECT set_config('TimeZone', 'America/Chicago', false)"),
            vec![SetConfigCall {
                name: Some("TimeZone".into()),
                local: Some(false),
            }]
        );
        assert_eq!(
            set_config_calls(
                "select 'set_config(x)', pg_catalog.SET_CONFIG ('a.b'::text, f($1, ','), 't'), \
                 my_set_config('x', 'y', false), set_config($1, $2, $3)"
            ),
            vec![
                SetConfigCall {
                    name: Some("a.b".into()),
                    local: Some(true),
                },
                SetConfigCall {
                    name: None,
                    local: None,
                },
            ]
        );
    }
}
