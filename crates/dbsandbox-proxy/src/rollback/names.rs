//! Names and text as the client sees them, on a backend its key's connections share.
//!
//! The engine gives each client's protocol statements and portals (and SQL `PREPARE` names) a
//! private backend name, `dbsb_c<conn>_<name>` ([`backend_name`]). Nothing of that may show:
//! - a portal the client never bound over the protocol is one it `DECLARE`d in SQL (psycopg's
//!   server-side cursors), which has the client's own name on the backend ([`portal_name`]);
//! - the server's errors and notices name the client's own statements and portals
//!   ([`client_view`]);
//! - `pg_prepared_statements` lists the connection's own statements under its names, not the
//!   engine's guard statements or other connections' ([`scope_prepared_view`]);
//! - text in a client encoding other than UTF-8 passes through byte for byte ([`decode_text`],
//!   [`put_text`]), and the greeting spells the encoding as the server does
//!   ([`canonical_encoding`]).

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, BytesMut};
use pg_query::protobuf::Token;

use super::sandbox::{ClientId, ClientState, Prepared};

/// What every backend name of a client starts with.
pub fn backend_prefix(id: ClientId) -> String {
    format!("dbsb_c{id}_")
}

/// The backend's name for a client's prepared statement or protocol portal (empty stays empty).
pub fn backend_name(id: ClientId, name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("{}{name}", backend_prefix(id))
    }
}

/// The backend's name for a portal the client binds over the protocol: private like its
/// statements, the unnamed one too (`dbsb_c<conn>_`), so that no other connection's Bind of the
/// unnamed portal replaces it between the client's messages (a portal read in parts, with
/// Execute row limits, while the key's turn goes to another connection: see super::turn).
pub fn bound_portal_name(id: ClientId, name: &str) -> String {
    format!("{}{name}", backend_prefix(id))
}

/// The backend's name for a portal the client names in Describe, Execute or Close: renamed if
/// the client bound it over the protocol (`bound`), else its own, as a cursor `DECLARE`d in SQL
/// is called on the backend.
pub fn portal_name(id: ClientId, name: &str, bound: bool) -> String {
    if bound {
        bound_portal_name(id, name)
    } else {
        name.to_string()
    }
}

/// An ErrorResponse or NoticeResponse (whole message) with every backend name `dbsb_c<n>_x` in
/// its fields given back as `x`. `None` when there is none (the message goes as it is).
pub fn client_view(raw: &[u8]) -> Option<BytesMut> {
    const MARK: &[u8] = b"dbsb_c";
    if raw.len() < 5 || !raw.windows(MARK.len()).any(|w| w == MARK) {
        return None;
    }
    let mut body = Vec::with_capacity(raw.len());
    let mut rest = &raw[5..];
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        body.extend_from_slice(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && after.get(digits) == Some(&b'_') {
            rest = &after[digits + 1..];
        } else {
            body.extend_from_slice(MARK);
            rest = after;
        }
    }
    body.extend_from_slice(rest);
    let mut out = BytesMut::with_capacity(body.len() + 5);
    out.put_u8(raw[0]);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(&body);
    Some(out)
}

/// SQL with each reference to the `pg_prepared_statements` view (qualified or not) replaced by
/// the rows of this client only, under its own names; `None` when the text names no such view.
pub fn scope_prepared_view(sql: &str, id: ClientId) -> Option<String> {
    const VIEW: &str = "pg_prepared_statements";
    if !crate::classify::contains_ignore_ascii_case(sql, VIEW.as_bytes()) {
        return None;
    }
    let scanned = pg_query::scan(sql).ok()?;
    let tokens: Vec<_> = scanned
        .tokens
        .iter()
        .filter(|t| {
            !matches!(
                Token::try_from(t.token),
                Ok(Token::SqlComment | Token::CComment)
            )
        })
        .collect();
    let text = |i: usize| &sql[tokens[i].start as usize..tokens[i].end as usize];
    let is_dot = |i: usize| tokens.get(i).is_some_and(|t| t.token == '.' as i32);
    let prefix = backend_prefix(id);
    let mut out = String::with_capacity(sql.len() + 256);
    let mut copied = 0;
    for i in 0..tokens.len() {
        let word = text(i);
        let is_view = word.eq_ignore_ascii_case(VIEW) || word == "\"pg_prepared_statements\"";
        // `pg_prepared_statements.name` is a column reference; `x.pg_prepared_statements` in
        // any schema but pg_catalog is someone's own table.
        if !is_view || is_dot(i + 1) {
            continue;
        }
        let start = if i >= 2 && is_dot(i - 1) {
            let schema = text(i - 2);
            if !schema.eq_ignore_ascii_case("pg_catalog") && schema != "\"pg_catalog\"" {
                continue;
            }
            tokens[i - 2].start as usize
        } else {
            tokens[i].start as usize
        };
        // Keep the name as the alias unless the query gives its own.
        let aliased = tokens
            .get(i + 1)
            .and_then(|t| Token::try_from(t.token).ok())
            .is_some_and(|t| matches!(t, Token::As | Token::Ident));
        out.push_str(&sql[copied..start]);
        out.push_str(&format!(
            "(SELECT (pg_catalog.jsonb_populate_record(dbsb_p, pg_catalog.jsonb_build_object(\
             'name', pg_catalog.substr(dbsb_p.name, {from}), \
             'statement', pg_catalog.replace(dbsb_p.statement, '{prefix}', '')))).* \
             FROM pg_catalog.pg_prepared_statements dbsb_p \
             WHERE pg_catalog.starts_with(dbsb_p.name, '{prefix}'))",
            from = prefix.len() + 1
        ));
        if !aliased {
            out.push_str(" pg_prepared_statements");
        }
        copied = tokens[i].end as usize;
    }
    (copied > 0).then(|| {
        out.push_str(&sql[copied..]);
        out
    })
}

/// The client's transaction ended (`all`: the client left): the backend names of the portals
/// that end with it, protocol portals and cursors, which the client forgets now.
pub fn portals_ending(id: ClientId, client: &mut ClientState, all: bool) -> Vec<String> {
    let mut ending: Vec<String> = client
        .portals
        .drain()
        .filter(|(_, prepared)| matches!(prepared, Prepared::Real { .. }))
        .map(|(name, _)| bound_portal_name(id, &name))
        .collect();
    ending.extend(client.cursors.take_ending(all));
    ending
}

/// The portals of a client that the server keeps past one message: cursors it `DECLARE`d in
/// SQL (by their own names) beside the protocol portals the session tracks. PostgreSQL closes
/// both when the transaction that made them ends (a cursor `WITH HOLD` only when the session
/// ends); on the key's shared backend, whose transaction never ends, the engine closes them.
#[derive(Debug, Default)]
pub struct Cursors {
    /// Open cursors by name (as the server folds it): `true` when `WITH HOLD`.
    open: BTreeMap<String, bool>,
    /// The cursor a prepared statement declares when it runs.
    by_statement: HashMap<String, (String, bool)>,
}

impl Cursors {
    /// A statement of the client's SQL (simple Query) ran, or was prepared as `statement`.
    pub fn note_sql(&mut self, sql: &str, statement: Option<&str>) {
        match (cursor_statement(sql), statement) {
            (Some(CursorSql::Declare(name, hold)), Some(statement)) => {
                self.by_statement
                    .insert(statement.to_string(), (name, hold));
            }
            (Some(CursorSql::Declare(name, hold)), None) => {
                self.open.insert(name, hold);
            }
            (Some(CursorSql::Close(Some(name))), _) => {
                self.open.remove(&name);
            }
            (Some(CursorSql::Close(None)), _) => self.open.clear(),
            (None, Some(statement)) => {
                self.by_statement.remove(statement);
            }
            (None, None) => {}
        }
    }

    /// A portal is bound from `statement`: a DECLARE among them opens its cursor.
    pub fn note_bind(&mut self, statement: &str) {
        if let Some((name, hold)) = self.by_statement.get(statement) {
            self.open.insert(name.clone(), *hold);
        }
    }

    /// The client's transaction ended (`all`: its session): the cursors that end with it.
    pub fn take_ending(&mut self, all: bool) -> Vec<String> {
        let ending: Vec<String> = self
            .open
            .iter()
            .filter(|(_, hold)| all || !**hold)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &ending {
            self.open.remove(name);
        }
        ending
    }
}

enum CursorSql {
    /// DECLARE name … [WITH HOLD]: the name as the server folds it, and whether it holds.
    Declare(String, bool),
    /// CLOSE name; `None` for CLOSE ALL.
    Close(Option<String>),
}

/// What a DECLARE or CLOSE statement does to the session's cursors.
fn cursor_statement(sql: &str) -> Option<CursorSql> {
    let first = sql.trim_start().get(..7)?;
    let close = first
        .get(..5)
        .is_some_and(|w| w.eq_ignore_ascii_case("close"));
    if !first.eq_ignore_ascii_case("declare") && !close {
        return None;
    }
    let scanned = pg_query::scan(sql).ok()?;
    let words: Vec<&str> = scanned
        .tokens
        .iter()
        .filter(|t| {
            !matches!(
                Token::try_from(t.token),
                Ok(Token::SqlComment | Token::CComment)
            )
        })
        .map(|t| &sql[t.start as usize..t.end as usize])
        .collect();
    let name = |word: &str| -> String {
        match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => word.to_ascii_lowercase(),
        }
    };
    match words.as_slice() {
        [declare, cursor, rest @ ..] if declare.eq_ignore_ascii_case("declare") => {
            let options = rest
                .iter()
                .take_while(|w| !w.eq_ignore_ascii_case("for"))
                .collect::<Vec<_>>();
            let hold = options
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("with") && w[1].eq_ignore_ascii_case("hold"));
            Some(CursorSql::Declare(name(cursor), hold))
        }
        [close, target, ..] if close.eq_ignore_ascii_case("close") => Some(CursorSql::Close(
            (!target.eq_ignore_ascii_case("all") || target.starts_with('"')).then(|| name(target)),
        )),
        _ => None,
    }
}

/// First code point of the range that stands for the bytes of a client's text that are not
/// UTF-8 (a client encoding such as LATIN9): byte `b` is `ESCAPE_BASE + b`, a private-use code
/// point no SQL needs, so the classifier reads the text and [`put_text`] gives the bytes back.
const ESCAPE_BASE: u32 = 0x10_FF00;

/// A client's C string as text, byte for byte: valid UTF-8 as it is, any other byte escaped.
pub fn decode_text(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_string();
    }
    let mut text = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            text.push(char::from_u32(ESCAPE_BASE + byte as u32).expect("a valid code point"));
        }
    }
    text
}

/// Whether text from [`decode_text`] holds bytes that are not UTF-8 (a client encoding such
/// as LATIN9): such text is valid on the server only under that encoding.
pub fn has_raw_bytes(text: &str) -> bool {
    text.chars().any(|c| c as u32 >= ESCAPE_BASE)
}

/// Writes text from [`decode_text`] as the client's bytes, NUL-terminated.
pub fn put_text(buf: &mut BytesMut, text: &str) {
    for c in text.chars() {
        match (c as u32).checked_sub(ESCAPE_BASE) {
            Some(byte) if byte <= 0xFF => buf.put_u8(byte as u8),
            _ if c == '\0' => {}
            _ => {
                let mut utf8 = [0; 4];
                buf.put_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    buf.put_u8(0);
}

/// PostgreSQL's own spelling of an encoding name a client gave (`utf8` → `UTF8`, `latin9` →
/// `LATIN9`, `iso-8859-15` → `LATIN9`), as the server's ParameterStatus reports it. Matched as
/// the server does: case and punctuation ignored. `None` for a name the server does not know.
pub fn canonical_encoding(name: &str) -> Option<&'static str> {
    const CANONICAL: &[&str] = &[
        "SQL_ASCII",
        "EUC_JP",
        "EUC_CN",
        "EUC_KR",
        "EUC_TW",
        "EUC_JIS_2004",
        "UTF8",
        "MULE_INTERNAL",
        "LATIN1",
        "LATIN2",
        "LATIN3",
        "LATIN4",
        "LATIN5",
        "LATIN6",
        "LATIN7",
        "LATIN8",
        "LATIN9",
        "LATIN10",
        "WIN1256",
        "WIN1258",
        "WIN866",
        "WIN874",
        "KOI8R",
        "WIN1251",
        "WIN1252",
        "ISO_8859_5",
        "ISO_8859_6",
        "ISO_8859_7",
        "ISO_8859_8",
        "WIN1250",
        "WIN1253",
        "WIN1254",
        "WIN1255",
        "WIN1257",
        "KOI8U",
        "SJIS",
        "BIG5",
        "GBK",
        "UHC",
        "GB18030",
        "JOHAB",
        "SHIFT_JIS_2004",
    ];
    const ALIASES: &[(&str, &str)] = &[
        ("abc", "WIN1258"),
        ("alt", "WIN866"),
        ("iso88591", "LATIN1"),
        ("iso88592", "LATIN2"),
        ("iso88593", "LATIN3"),
        ("iso88594", "LATIN4"),
        ("iso88599", "LATIN5"),
        ("iso885910", "LATIN6"),
        ("iso885913", "LATIN7"),
        ("iso885914", "LATIN8"),
        ("iso885915", "LATIN9"),
        ("iso885916", "LATIN10"),
        ("koi8", "KOI8R"),
        ("mskanji", "SJIS"),
        ("shiftjis", "SJIS"),
        ("tcvn", "WIN1258"),
        ("tcvn5712", "WIN1258"),
        ("unicode", "UTF8"),
        ("vscii", "WIN1258"),
        ("win", "WIN1251"),
        ("win932", "SJIS"),
        ("win936", "GBK"),
        ("win949", "UHC"),
        ("win950", "BIG5"),
        ("windows932", "SJIS"),
        ("windows936", "GBK"),
        ("windows949", "UHC"),
        ("windows950", "BIG5"),
        ("windows866", "WIN866"),
        ("windows874", "WIN874"),
    ];
    let clean = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = clean(name);
    if let Some(found) = CANONICAL.iter().find(|c| clean(c) == wanted) {
        return Some(found);
    }
    if let Some(number) = wanted.strip_prefix("windows") {
        // windows1250 … windows1258
        return CANONICAL
            .iter()
            .find(|c| clean(c) == format!("win{number}"))
            .copied();
    }
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == wanted)
        .map(|(_, canonical)| *canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_are_given_back_in_errors() {
        let mut raw = BytesMut::new();
        super::super::messages::back::error(
            &mut raw,
            "26000",
            "prepared statement \"dbsb_c12_s1\" does not exist; dbsb_cx stays",
        );
        let view = client_view(&raw).unwrap();
        let (_, message) = super::super::messages::error_fields(&view[5..]);
        assert_eq!(
            message,
            "prepared statement \"s1\" does not exist; dbsb_cx stays"
        );
        assert!(client_view(b"E\0\0\0\x05\0").is_none());
    }

    #[test]
    fn the_view_is_scoped_to_the_client() {
        let scoped = scope_prepared_view(
            "select p.name from pg_catalog.pg_prepared_statements p, pg_prepared_statements \
             where pg_prepared_statements.name <> 'pg_prepared_statements' and x.pg_prepared_statements",
            7,
        )
        .unwrap();
        assert_eq!(
            scoped
                .matches("starts_with(dbsb_p.name, 'dbsb_c7_')")
                .count(),
            2
        );
        assert!(scoped.contains(")) p,"), "{scoped}");
        assert!(scoped.contains(")) pg_prepared_statements where pg_prepared_statements.name <> 'pg_prepared_statements' and x.pg_prepared_statements"), "{scoped}");
        assert!(scope_prepared_view("select 1", 7).is_none());
    }

    #[test]
    fn cursors_end_with_the_transaction_unless_held() {
        let mut cursors = Cursors::default();
        cursors.note_sql(
            "DECLARE \"Big\" NO SCROLL CURSOR WITH HOLD FOR SELECT 1",
            None,
        );
        cursors.note_sql("declare c cursor for select 'with hold'", None);
        cursors.note_sql("DECLARE p BINARY CURSOR FOR SELECT $1", Some("s"));
        assert_eq!(cursors.take_ending(false), ["c"]);
        cursors.note_bind("s");
        cursors.note_sql("close C", None);
        cursors.note_sql("DECLARE d CURSOR FOR SELECT 1", None);
        assert_eq!(cursors.take_ending(false), ["d", "p"]);
        assert_eq!(cursors.take_ending(true), ["Big"]);
        cursors.note_sql("DECLARE e CURSOR FOR SELECT 1", None);
        cursors.note_sql("CLOSE ALL", None);
        assert!(cursors.take_ending(true).is_empty());
    }

    #[test]
    fn text_in_another_encoding_round_trips() {
        let bytes = b"select '\xe9\xa4', '\xc3\xa9'";
        let text = decode_text(bytes);
        assert!(text.starts_with("select '"));
        let mut out = BytesMut::new();
        put_text(&mut out, &text);
        assert_eq!(&out[..], &[&bytes[..], b"\0"].concat()[..]);
    }

    #[test]
    fn encodings_are_spelled_as_the_server_does() {
        assert_eq!(canonical_encoding("utf8"), Some("UTF8"));
        assert_eq!(canonical_encoding("Unicode"), Some("UTF8"));
        assert_eq!(canonical_encoding("latin9"), Some("LATIN9"));
        assert_eq!(canonical_encoding("ISO-8859-15"), Some("LATIN9"));
        assert_eq!(canonical_encoding("iso_8859_5"), Some("ISO_8859_5"));
        assert_eq!(canonical_encoding("windows-1252"), Some("WIN1252"));
        assert_eq!(canonical_encoding("sql_ascii"), Some("SQL_ASCII"));
        assert_eq!(canonical_encoding("klingon"), None);
    }
}
