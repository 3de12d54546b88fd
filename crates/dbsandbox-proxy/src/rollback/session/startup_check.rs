//! The client's startup settings checked by the server before the greeting. PostgreSQL refuses
//! a connection whose startup value it rejects (`FATAL: invalid value for parameter "DateStyle"`)
//! and reports the values it accepts in its own spelling (`DateStyle=sql,dmy` → `SQL, DMY`). A
//! rollback client's settings are only SETs on the key's shared backend, made before its first
//! batch: unchecked, a bad one let the connection open and then failed every statement. So the
//! proxy tries them on the backend inside a savepoint, once per key and set of settings.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::super::messages;
use super::*;

/// How long a connection waits for the key's turn to check its settings. A connection of the
/// key busy with a long statement must not hold up a new one, which PostgreSQL opens at once:
/// past this wait it is greeted unchecked, and a bad setting fails its first batch instead.
const TURN_WAIT: Duration = Duration::from_secs(2);

/// Cached outcomes per key; a client that varies its settings at every connect cannot grow it
/// beyond this.
const MAX_CACHED: usize = 64;

/// What the server said about one set of startup settings.
#[derive(Clone, Debug)]
pub enum Checked {
    /// The settings checked, in the server's spelling (lower-case name → value).
    Accepted(BTreeMap<String, String>),
    /// The server's error, as the FATAL the client is refused with.
    Refused(BytesMut),
}

/// The outcomes of the checks made so far for one key.
#[derive(Default)]
pub struct StartupChecks(std::sync::Mutex<HashMap<BTreeMap<String, String>, Checked>>);

/// Checks `values` (from [`super::startup::startup_values`]) on the key's backend, or answers
/// from the key's cache. A client's session settings and greeting then use the values accepted.
/// Settings the proxy can greet with unchecked (none, an `application_name` PostgreSQL keeps as
/// sent, a `client_encoding` it knows) skip the round trip.
pub async fn check_startup_settings(
    sandbox: &Sandbox,
    values: &BTreeMap<String, String>,
) -> Checked {
    let to_check: BTreeMap<String, String> = values
        .iter()
        .filter(|(name, _)| !is_virtual_setting(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if to_check
        .iter()
        .all(|(name, value)| greets_unchecked(name, value))
    {
        return Checked::Accepted(BTreeMap::new());
    }
    if let Some(known) = sandbox.startup_checks.get(&to_check) {
        return known;
    }
    let Ok(mut backend) = tokio::time::timeout(TURN_WAIT, sandbox.take_turn()).await else {
        return Checked::Accepted(BTreeMap::new());
    };
    if backend.broken.is_set() {
        // The session says why at its first statement.
        return Checked::Accepted(BTreeMap::new());
    }
    let outcome = match try_on_backend(&mut backend, &to_check).await {
        Ok(outcome) => outcome,
        // The backend is lost (the key is marked broken): the session reports it.
        Err(_) => return Checked::Accepted(BTreeMap::new()),
    };
    drop(backend);
    sandbox.startup_checks.put(to_check, outcome.clone());
    outcome
}

/// Whether PostgreSQL would report this setting exactly as the greeting does without asking it.
fn greets_unchecked(name: &str, value: &str) -> bool {
    match name {
        // Kept as sent when it is printable ASCII shorter than NAMEDATALEN.
        "application_name" => value.len() < 64 && value.bytes().all(|b| (32..127).contains(&b)),
        "client_encoding" => names::canonical_encoding(value).is_some(),
        _ => false,
    }
}

/// Starts the check: a savepoint, then the server's defaults.
const BEGIN: &str = "SAVEPOINT dbsb_startup_check; RESET ALL";
/// Undoes the check: the settings it made, and its savepoint.
const UNDO: &str = "ROLLBACK TO SAVEPOINT dbsb_startup_check; RELEASE SAVEPOINT dbsb_startup_check";

/// Runs the settings inside a savepoint, from the backend's defaults (another client's settings
/// may be applied), reads them back and undoes it all. Read back, a value stands alone: `dmy`
/// alone keeps the default style (`ISO, DMY`), where applied over another client's
/// `Postgres, YMD` it would become `Postgres, DMY`.
async fn try_on_backend(
    backend: &mut Backend,
    settings: &BTreeMap<String, String>,
) -> Result<Checked, BackendFailure> {
    let mut sql = BEGIN.to_string();
    for (name, value) in settings {
        sql.push_str(&format!(
            "; SET {} TO {}",
            quote_ident(name),
            quote_literal(value)
        ));
    }
    let reads: Vec<String> = settings
        .keys()
        .map(|name| format!("pg_catalog.current_setting({})", quote_literal(name)))
        .collect();
    sql.push_str(&format!("; SELECT {}", reads.join(", ")));
    sql.push_str(&format!("; {UNDO}"));
    // A cancel the proxy did not send (a client's pg_cancel_backend) may hit it: once more.
    let mut attempt = backend.run_internal_raw(&sql).await?;
    for retry in [true, false] {
        let Err(error) = &attempt else { break };
        backend.run_required(UNDO).await?;
        if !retry || messages::error_fields(&error[5..]).0 != messages::QUERY_CANCELED {
            break;
        }
        attempt = backend.run_internal_raw(&sql).await?;
    }
    Ok(match attempt {
        Ok(rows) => {
            let values = rows.into_iter().next().unwrap_or_default();
            Checked::Accepted(
                settings
                    .keys()
                    .zip(values)
                    .filter_map(|(name, value)| Some((name.clone(), value?)))
                    .collect(),
            )
        }
        Err(error) => Checked::Refused(as_fatal(&error)),
    })
}

/// The server's ErrorResponse to a SET, as PostgreSQL's FATAL for the same startup value: the
/// same SQLSTATE, message and detail.
fn as_fatal(error: &[u8]) -> BytesMut {
    messages::with_fields(
        error,
        |field| !matches!(field, b'P' | b'W' | b'q' | b'p'),
        &[(b'S', b"FATAL"), (b'V', b"FATAL")],
    )
}

impl StartupChecks {
    fn get(&self, settings: &BTreeMap<String, String>) -> Option<Checked> {
        self.0.lock().ok()?.get(settings).cloned()
    }

    fn put(&self, settings: BTreeMap<String, String>, outcome: Checked) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(settings, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settings_postgresql_keeps_as_sent_skip_the_check() {
        assert!(greets_unchecked("application_name", "pytest"));
        assert!(greets_unchecked("client_encoding", "utf8"));
        assert!(!greets_unchecked("client_encoding", "klingon"));
        assert!(!greets_unchecked("application_name", &"x".repeat(64)));
        assert!(!greets_unchecked("application_name", "caf\u{e9}"));
        assert!(!greets_unchecked("datestyle", "ISO, MDY"));
    }

    #[test]
    fn a_refusal_is_fatal_with_the_servers_code_message_and_detail() {
        let mut error = BytesMut::new();
        back::error(
            &mut error,
            "22023",
            "invalid value for parameter \"DateStyle\"",
        );
        let fatal = as_fatal(&error);
        let fields: Vec<(u8, Vec<u8>)> = messages::response_fields(&fatal[5..])
            .map(|(field, value)| (field, value.to_vec()))
            .collect();
        assert!(fields.contains(&(b'S', b"FATAL".to_vec())), "{fields:?}");
        assert!(fields.contains(&(b'V', b"FATAL".to_vec())), "{fields:?}");
        assert!(fields.contains(&(b'C', b"22023".to_vec())), "{fields:?}");
        assert!(!fields.contains(&(b'S', b"ERROR".to_vec())), "{fields:?}");
        assert!(messages::is_fatal(&fatal[5..]));
    }
}
