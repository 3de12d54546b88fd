//! What a rollback client is told at connect (the greeting: its own startup values where it
//! set them, the backend's otherwise) and how its startup parameters become per-connection
//! session settings.

use super::*;

/// The greeting a client gets: the backend's parameters, its own startup values where it set
/// them (`own`, from [`startup_values`], as the server spelled them once checked), a cancel
/// key, and ReadyForQuery.
pub fn greeting(
    sandbox: &Sandbox,
    own: &BTreeMap<String, String>,
    process_id: i32,
    secret: i32,
) -> BytesMut {
    let mut out = BytesMut::new();
    crate::wire::authentication_ok(&mut out);
    for (name, value) in &sandbox.parameters {
        let own = own.get(&name.to_ascii_lowercase()).map(String::as_str);
        let own = match own {
            Some(encoding) if name == "client_encoding" => {
                Some(names::canonical_encoding(encoding).unwrap_or(encoding))
            }
            own => own,
        };
        // The backend's own application_name names the sandbox; a client that set none sees
        // PostgreSQL's default, the empty string.
        let fallback = if name == "application_name" {
            ""
        } else {
            value
        };
        back::parameter_status(&mut out, name, own.unwrap_or(fallback));
    }
    crate::wire::backend_key_data(&mut out, process_id, secret);
    back::ready_for_query(&mut out, b'I');
    out
}

/// The client's startup values (from [`startup_values`]) as session settings (`name → SET …`).
pub fn startup_settings(values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut settings: BTreeMap<String, String> = values
        .iter()
        .map(|(name, value)| {
            let set = format!("SET {} TO {}", quote_ident(name), quote_literal(value));
            (name.clone(), set)
        })
        .collect();
    // The backend's application_name names the sandbox (for pg_stat_activity); the client's
    // session has PostgreSQL's default unless it set its own.
    settings
        .entry("application_name".to_string())
        .or_insert_with(|| "SET \"application_name\" TO ''".to_string());
    settings
}

/// The settings among the client's startup parameters (`options` included, a startup parameter
/// winning over the same one in `options`), by lower-case name, with their values as sent.
pub fn startup_values(startup: &[(String, String)]) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let mut set = |name: &str, value: &str| {
        let name = name.to_ascii_lowercase();
        if !name.starts_with("dbsandbox.") {
            values.insert(name, value.to_string());
        }
    };
    // PostgreSQL applies `options` first, then the other parameters.
    for (_, options) in startup.iter().filter(|(name, _)| name == "options") {
        for (name, value) in parse_options(options) {
            set(&name, &value);
        }
    }
    for (name, value) in startup {
        match name.as_str() {
            "user" | "database" | "replication" | "options" => {}
            _ if name.starts_with("_pq_.") => {}
            _ => set(name, value),
        }
    }
    values
}

/// `-c name=value --name=value` pairs of the `options` startup parameter (backslash escapes a space).
pub fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut iter = words.into_iter();
    while let Some(word) = iter.next() {
        let setting = if word == "-c" {
            iter.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_string())
        } else {
            word.strip_prefix("-c").map(str::to_string)
        };
        if let Some((name, value)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            pairs.push((name.replace('-', "_"), value.to_string()));
        }
    }
    pairs
}
