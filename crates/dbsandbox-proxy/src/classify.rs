//! Statement classification for rollback sandboxes, using PostgreSQL's own parser (`pg_query`).
//!
//! The sandbox engine has to know what each client statement means before it forwards it: a
//! `BEGIN` becomes a savepoint, a `COMMIT` is absorbed, `LISTEN`/`NOTIFY`/`DISCARD`/`SET` touch
//! per-client state, SQL-level prepared statement names must be made private per client, some
//! statements cannot run inside the sandbox transaction at all, and `SELECT dbsandbox_reset()` is
//! ours. Text matching gets this wrong (`BEGIN` inside a `DO` block or a function body, dollar
//! quotes, comments, `BEGIN ATOMIC` bodies containing `;`), so anything that might matter goes
//! through libpg_query. Ordinary single DML/SELECT statements — the hot path — are recognised by a
//! first-keyword check and never reach the parser.
//!
//! Ranges: a [`Statement::range`] covers the statement from its first token to the end of its
//! last token, so leading and trailing whitespace and comments and the terminating `;` are
//! outside it (comments between tokens stay inside). A range therefore never ends inside a `--`
//! comment, and text can be appended after it safely.

use std::ops::Range;

use pg_query::protobuf::{
    self, a_const, AlterSubscriptionType, DiscardMode, ReindexObjectType, SetOperation, Token,
    TransactionStmtKind, VariableSetKind,
};
use pg_query::NodeEnum;

/// What one SQL statement means to the rollback sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Anything the backend runs as-is (SELECT, INSERT, DDL, DO blocks, CREATE FUNCTION whose
    /// body says BEGIN, ...).
    Ordinary,
    /// `BEGIN`, `START TRANSACTION`, with any options: `READ ONLY` / `READ WRITE` is
    /// `read_only` (the isolation level and DEFERRABLE are ignored: a savepoint cannot change them).
    Begin { read_only: Option<bool> },
    /// `COMMIT`, `END`, `COMMIT AND [NO] CHAIN`.
    Commit { chain: bool },
    /// `ROLLBACK`, `ABORT`, `ROLLBACK AND [NO] CHAIN`.
    Rollback { chain: bool },
    /// `SAVEPOINT name`, with the name folded as PostgreSQL folds identifiers.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    Release(String),
    /// `ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name`.
    RollbackTo(String),
    /// `PREPARE TRANSACTION 'gid'`.
    PrepareTransaction,
    /// `COMMIT PREPARED 'gid'`.
    CommitPrepared,
    /// `ROLLBACK PREPARED 'gid'`.
    RollbackPrepared,
    /// Cannot run inside a transaction block. The string is the command's name exactly as
    /// PostgreSQL 15 puts it in its own "%s cannot run inside a transaction block" error.
    NotInTransaction(&'static str),
    /// `CREATE DATABASE` or `DROP DATABASE` (the string): refused through the proxy in both
    /// isolations, since each database name is a sandbox key and a real database made there
    /// would be one dbsandbox does not manage ([`crate::key::database_command_refused`]).
    DatabaseCommand(&'static str),
    /// `LISTEN channel`.
    Listen(String),
    /// `UNLISTEN channel`; `None` for `UNLISTEN *`.
    Unlisten(Option<String>),
    /// `NOTIFY channel [, 'payload']`; `payload` is `None` when absent or empty (PostgreSQL
    /// treats both the same).
    Notify {
        channel: String,
        payload: Option<String>,
    },
    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`.
    Discard(DiscardWhat),
    /// `SET [SESSION] name {TO | =} value` or `RESET name` / `SET name TO DEFAULT` (value `None`).
    /// `name` is lower-cased (the special forms map to their parameter: `SET TIME ZONE` is
    /// `timezone`, `SET NAMES` is `client_encoding`, `SET SCHEMA` is `search_path`, `SET ROLE`
    /// is `role`, ...). `value` is the value's SQL text as the client wrote it (quotes kept,
    /// lists kept), ready to be pasted after `SET name TO `.
    SetSession { name: String, value: Option<String> },
    /// `RESET ALL`.
    ResetAll,
    /// `SET LOCAL ...`, `SET TRANSACTION ...`, `SET SESSION CHARACTERISTICS AS TRANSACTION ...`:
    /// the backend runs them as-is, but they are not per-client session state to re-apply.
    SetLocal,
    /// `SET TRANSACTION READ ONLY` (true) or `READ WRITE` (false): run as-is, and the rest of
    /// the client's transaction stays in that mode.
    SetTransactionReadOnly(bool),
    /// `SET TRANSACTION` with an isolation level or `[NOT] DEFERRABLE`, which a savepoint cannot
    /// change: answered by the engine (accepted and ignored, as `BEGIN ISOLATION LEVEL …` is),
    /// its `READ ONLY`/`READ WRITE` (`read_only`) kept for the rest of the transaction.
    SetTransaction { read_only: Option<bool> },
    /// `PREPARE name [(types)] AS statement`.
    Prepare(String),
    /// `EXECUTE name [(args)]`.
    Execute(String),
    /// `DEALLOCATE [PREPARE] name`; `None` for `DEALLOCATE [PREPARE] ALL`.
    Deallocate(Option<String>),
    /// The in-band control statement `SELECT dbsandbox_reset()`.
    SandboxReset,
    /// `SELECT dbsandbox_reset('point')`: back to a named reset point.
    SandboxResetTo(String),
    /// `SELECT dbsandbox_snapshot('point')`: takes a named reset point.
    SandboxSnapshot(String),
}

/// The target of a `DISCARD` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardWhat {
    All,
    Plans,
    Sequences,
    Temp,
}

/// One statement of a (possibly multi-statement) query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: Kind,
    /// Byte range of the statement's text in the original string: first token to last token,
    /// without surrounding whitespace, comments or the `;`.
    pub range: Range<usize>,
}

/// First keywords of statements that can only ever be [`Kind::Ordinary`].
const ORDINARY_FIRST_KEYWORDS: &[&str] = &[
    "select", "insert", "update", "delete", "with", "values", "table", "merge", "copy", "explain",
    "show",
];

/// Splits and classifies a simple-protocol query string.
///
/// A single ordinary DML/SELECT statement takes a fast path without the parser (see
/// [`needs_parser`]). Everything else is parsed as a whole, as the server itself does; a string
/// that does not parse is returned as one [`Kind::Ordinary`] statement so that the server reports
/// the syntax error (and, like the server, runs none of it). An empty string or one holding only
/// comments and `;` yields no statement.
pub fn classify(sql: &str) -> Vec<Statement> {
    match fast_path_range(sql) {
        Some(range) => vec![Statement {
            kind: Kind::Ordinary,
            range,
        }],
        None => classify_with_parser(sql),
    }
}

/// [`classify`] without the fast path: always asks the parser.
pub fn classify_with_parser(sql: &str) -> Vec<Statement> {
    if first_token_start(sql) == Some(sql.len()) {
        // Nothing but whitespace and comments: an empty query.
        return Vec::new();
    }
    let parsed = match pg_query::parse(sql) {
        Ok(parsed) => parsed,
        Err(_) => {
            let start = first_token_start(sql).unwrap_or(0);
            let end = start + sql[start..].trim_end_matches(is_sql_whitespace).len();
            return vec![Statement {
                kind: Kind::Ordinary,
                range: start..end,
            }];
        }
    };
    let mut tokens = LazyTokens::new(sql);
    parsed
        .protobuf
        .stmts
        .iter()
        .map(|raw| {
            let start = raw.stmt_location.max(0) as usize;
            // A length of 0 means "up to the end of the string" (the last statement, no `;`).
            let end = match raw.stmt_len {
                0 => sql.len(),
                len => start + len as usize,
            };
            let range = tokens.trim(start..end);
            let kind = match raw.stmt.as_ref().and_then(|node| node.node.as_ref()) {
                Some(node) => classify_node(node, sql, &range),
                None => Kind::Ordinary,
            };
            Statement { kind, range }
        })
        .collect()
}

/// The `CREATE DATABASE` or `DROP DATABASE` among the statements of `sql` (a Query's string or
/// a Parse's), if any. Strings that do not mention "database" are not parsed, so this costs a
/// scan on the pass-through relay's hot path.
pub fn database_command(sql: &str) -> Option<&'static str> {
    if !contains_ignore_ascii_case(sql, b"database") {
        return None;
    }
    classify_with_parser(sql)
        .into_iter()
        .find_map(|statement| match statement.kind {
            Kind::DatabaseCommand(command) => Some(command),
            _ => None,
        })
}

/// Classifies the single statement of an extended-protocol Parse message. An empty string, a
/// string that does not parse and a string with several statements (which the server refuses
/// in a Parse) are all [`Kind::Ordinary`]: the server produces the right answer for them.
pub fn classify_one(sql: &str) -> Kind {
    let mut statements = classify(sql);
    if statements.len() == 1 {
        statements
            .pop()
            .map_or(Kind::Ordinary, |statement| statement.kind)
    } else {
        Kind::Ordinary
    }
}

/// Whether [`classify`] has to call the parser for `sql`, i.e. the string is not a single
/// ordinary statement recognisable by its first keyword.
///
/// The fast path takes a string whose first keyword (after whitespace and comments) is one of
/// SELECT, INSERT, UPDATE, DELETE, WITH, VALUES, TABLE, MERGE, COPY, EXPLAIN, SHOW, that holds
/// no `dbsandbox_` anywhere (the reset statement), and whose rest a small lexer reads as one
/// statement: string literals, quoted identifiers and comments (so a `;` or `--` inside them
/// is no surprise), an optional final `;` followed by nothing but whitespace and comments. A
/// backslash in a string literal or a possible dollar quote sends the string to the parser.
/// A false alarm only costs a parse.
pub fn needs_parser(sql: &str) -> bool {
    fast_path_range(sql).is_none()
}

/// The statement range when `sql` qualifies for the fast path (see [`needs_parser`]).
fn fast_path_range(sql: &str) -> Option<Range<usize>> {
    let start = first_token_start(sql)?;
    let rest = &sql[start..];
    let keyword_len = rest
        .bytes()
        .position(|byte| !byte.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    // `selectx` is an identifier, not SELECT: anything that could continue an identifier sends
    // the string to the parser.
    if rest[keyword_len..]
        .bytes()
        .next()
        .is_some_and(is_identifier_byte)
    {
        return None;
    }
    let keyword = &rest[..keyword_len];
    if !ORDINARY_FIRST_KEYWORDS
        .iter()
        .any(|candidate| candidate.eq_ignore_ascii_case(keyword))
    {
        return None;
    }
    if contains_ignore_ascii_case(rest, b"dbsandbox_") {
        return None;
    }
    let end = single_statement_end(sql, start + keyword_len)?;
    Some(start..end)
}

/// Lexes the rest of a statement from `from` (just after a token) and returns the end of its
/// last token, or `None` when the text holds a second statement or anything this lexer leaves
/// to the real one: a literal with a backslash (`E'...'` escapes, or any string when
/// `standard_conforming_strings` is off), a possible dollar quote, an unterminated literal or
/// comment. Comments are skipped, so a range never ends in one.
fn single_statement_end(sql: &str, from: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut last_token_end = from;
    let mut at = from;
    while at < bytes.len() {
        match bytes[at] {
            byte if is_sql_whitespace(byte as char) => at += 1,
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = match bytes[at..].iter().position(|&b| b == b'\n' || b == b'\r') {
                    Some(newline) => at + newline + 1,
                    None => bytes.len(),
                };
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at += skip_block_comment(&bytes[at..])?;
            }
            b';' => {
                // Only whitespace and comments may follow: else there is another statement.
                let after = &sql[at + 1..];
                return (first_token_start(after) == Some(after.len())).then_some(last_token_end);
            }
            quote @ (b'\'' | b'"') => {
                // A doubled quote stands for itself; the literal ends at a single one.
                let mut close = at + 1;
                loop {
                    let offset = bytes[close..].iter().position(|&b| b == quote)?;
                    close += offset;
                    if bytes.get(close + 1) == Some(&quote) {
                        close += 2;
                    } else {
                        break;
                    }
                }
                if quote == b'\'' && bytes[at..close].contains(&b'\\') {
                    return None;
                }
                at = close + 1;
                last_token_end = at;
            }
            // `$1` is a parameter and `a$b` an identifier; any other `$` may open a dollar quote.
            b'$' if !(bytes.get(at + 1).is_some_and(u8::is_ascii_digit)
                || at > 0 && is_identifier_byte(bytes[at - 1])) =>
            {
                return None;
            }
            _ => {
                at += 1;
                last_token_end = at;
            }
        }
    }
    Some(last_token_end)
}

/// A byte that can continue an identifier (scan.l `ident_cont`, plus UTF-8 bytes).
fn is_identifier_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// Length of the (nested) block comment at the start of `bytes`, `None` if unterminated.
fn skip_block_comment(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = 0;
    loop {
        if bytes[at..].starts_with(b"/*") {
            depth += 1;
            at += 2;
        } else if bytes[at..].starts_with(b"*/") {
            depth -= 1;
            at += 2;
            if depth == 0 {
                return Some(at);
            }
        } else if at < bytes.len() {
            at += 1;
        } else {
            return None;
        }
    }
}

/// PostgreSQL's whitespace (scan.l `space`).
fn is_sql_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b')
}

/// Whether `haystack` contains `needle`, ASCII letters in any case (no allocation: the checks
/// that run on every statement's text use it before anything is parsed).
pub(crate) fn contains_ignore_ascii_case(haystack: &str, needle: &[u8]) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Byte offset of the first token after leading whitespace and comments (`sql.len()` when there
/// is none), or `None` when a block comment is not terminated (a syntax error for the server).
fn first_token_start(sql: &str) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut at = 0;
    loop {
        while at < bytes.len() && is_sql_whitespace(bytes[at] as char) {
            at += 1;
        }
        if bytes[at..].starts_with(b"--") {
            at = match bytes[at..]
                .iter()
                .position(|&byte| byte == b'\n' || byte == b'\r')
            {
                Some(newline) => at + newline + 1,
                None => bytes.len(),
            };
        } else if bytes[at..].starts_with(b"/*") {
            at += skip_block_comment(&bytes[at..])?;
        } else {
            return Some(at);
        }
    }
}

/// The scanner's tokens of the whole string, computed only when a statement's text has a
/// comment to trim (otherwise trimming whitespace is enough).
struct LazyTokens<'a> {
    sql: &'a str,
    /// Start and end of every token that is not a comment, in order.
    tokens: Option<Vec<(usize, usize)>>,
}

impl<'a> LazyTokens<'a> {
    fn new(sql: &'a str) -> Self {
        Self { sql, tokens: None }
    }

    /// Narrows a statement's raw text (as the parser delimits it) to its first..last token.
    fn trim(&mut self, raw: Range<usize>) -> Range<usize> {
        let text = &self.sql[raw.clone()];
        if !text.contains("--") && !text.contains("/*") {
            let start = raw.end - text.trim_start_matches(is_sql_whitespace).len();
            let end = raw.start + text.trim_end_matches(is_sql_whitespace).len();
            return start..end.max(start);
        }
        let sql = self.sql;
        let tokens = self.tokens.get_or_insert_with(|| scan_tokens(sql));
        // Tokens are in order: find the statement's first one, then take those it contains.
        let first = tokens.partition_point(|&(start, _)| start < raw.start);
        let count = tokens[first..]
            .iter()
            .take_while(|&&(_, end)| end <= raw.end)
            .count();
        match &tokens[first..first + count] {
            [(first_start, _), .., (_, last_end)] => *first_start..*last_end,
            [(start, end)] => *start..*end,
            [] => raw,
        }
    }
}

/// Start and end of every non-comment token of `sql` (empty if the scanner fails, which cannot
/// happen for text the parser accepted).
fn scan_tokens(sql: &str) -> Vec<(usize, usize)> {
    let Ok(scanned) = pg_query::scan(sql) else {
        return Vec::new();
    };
    scanned
        .tokens
        .iter()
        .filter(|token| {
            !matches!(
                Token::try_from(token.token),
                Ok(Token::SqlComment | Token::CComment)
            )
        })
        .map(|token| (token.start as usize, token.end as usize))
        .collect()
}

/// Classifies one parsed statement; `sql` is the whole string and `range` the statement's
/// trimmed range in it (for the text of SET values).
fn classify_node(node: &NodeEnum, sql: &str, range: &Range<usize>) -> Kind {
    match node {
        NodeEnum::TransactionStmt(stmt) => classify_transaction(stmt),
        NodeEnum::VariableSetStmt(stmt) => classify_set(stmt, sql, range),
        NodeEnum::SelectStmt(stmt) if sandbox_control(stmt).is_some() => {
            sandbox_control(stmt).unwrap_or(Kind::SandboxReset)
        }
        NodeEnum::ListenStmt(stmt) => Kind::Listen(stmt.conditionname.clone()),
        // A NULL condition name (`UNLISTEN *`) arrives as "", which is not a valid channel name.
        NodeEnum::UnlistenStmt(stmt) => {
            Kind::Unlisten(Some(stmt.conditionname.clone()).filter(|name| !name.is_empty()))
        }
        NodeEnum::NotifyStmt(stmt) => Kind::Notify {
            channel: stmt.conditionname.clone(),
            payload: Some(stmt.payload.clone()).filter(|payload| !payload.is_empty()),
        },
        NodeEnum::DiscardStmt(stmt) => match DiscardMode::try_from(stmt.target) {
            Ok(DiscardMode::DiscardAll) => Kind::Discard(DiscardWhat::All),
            Ok(DiscardMode::DiscardPlans) => Kind::Discard(DiscardWhat::Plans),
            Ok(DiscardMode::DiscardSequences) => Kind::Discard(DiscardWhat::Sequences),
            Ok(DiscardMode::DiscardTemp) => Kind::Discard(DiscardWhat::Temp),
            _ => Kind::Ordinary,
        },
        NodeEnum::PrepareStmt(stmt) => Kind::Prepare(stmt.name.clone()),
        NodeEnum::ExecuteStmt(stmt) => Kind::Execute(stmt.name.clone()),
        NodeEnum::DeallocateStmt(stmt) => {
            Kind::Deallocate(Some(stmt.name.clone()).filter(|_| !stmt.isall))
        }
        NodeEnum::CreatedbStmt(_) => Kind::DatabaseCommand("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Kind::DatabaseCommand("DROP DATABASE"),
        other => match not_in_transaction(other) {
            Some(command) => Kind::NotInTransaction(command),
            None => Kind::Ordinary,
        },
    }
}

fn classify_transaction(stmt: &protobuf::TransactionStmt) -> Kind {
    match TransactionStmtKind::try_from(stmt.kind) {
        Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
            Kind::Begin {
                read_only: boolean_option(&stmt.options, "transaction_read_only"),
            }
        }
        Ok(TransactionStmtKind::TransStmtCommit) => Kind::Commit { chain: stmt.chain },
        Ok(TransactionStmtKind::TransStmtRollback) => Kind::Rollback { chain: stmt.chain },
        Ok(TransactionStmtKind::TransStmtSavepoint) => Kind::Savepoint(stmt.savepoint_name.clone()),
        Ok(TransactionStmtKind::TransStmtRelease) => Kind::Release(stmt.savepoint_name.clone()),
        Ok(TransactionStmtKind::TransStmtRollbackTo) => {
            Kind::RollbackTo(stmt.savepoint_name.clone())
        }
        Ok(TransactionStmtKind::TransStmtPrepare) => Kind::PrepareTransaction,
        Ok(TransactionStmtKind::TransStmtCommitPrepared) => Kind::CommitPrepared,
        Ok(TransactionStmtKind::TransStmtRollbackPrepared) => Kind::RollbackPrepared,
        Ok(TransactionStmtKind::Undefined) | Err(_) => Kind::Ordinary,
    }
}

fn classify_set(stmt: &protobuf::VariableSetStmt, sql: &str, range: &Range<usize>) -> Kind {
    if stmt.is_local {
        return Kind::SetLocal;
    }
    let name = stmt.name.to_ascii_lowercase();
    match VariableSetKind::try_from(stmt.kind) {
        Ok(VariableSetKind::VarSetValue) => {
            let value = stmt
                .args
                .first()
                .and_then(|arg| arg.node.as_ref())
                .and_then(value_start)
                .filter(|start| range.contains(start))
                .map(|start| sql[start..range.end].to_string());
            Kind::SetSession { name, value }
        }
        Ok(VariableSetKind::VarSetDefault | VariableSetKind::VarReset) => {
            Kind::SetSession { name, value: None }
        }
        Ok(VariableSetKind::VarResetAll) => Kind::ResetAll,
        // SET TRANSACTION ..., SET SESSION CHARACTERISTICS AS TRANSACTION ...,
        // SET TRANSACTION SNAPSHOT ...
        Ok(VariableSetKind::VarSetMulti) if name == "transaction" => {
            let read_only = boolean_option(&stmt.args, "transaction_read_only");
            if has_option(&stmt.args, "transaction_isolation")
                || has_option(&stmt.args, "transaction_deferrable")
            {
                Kind::SetTransaction { read_only }
            } else {
                read_only.map_or(Kind::SetLocal, Kind::SetTransactionReadOnly)
            }
        }
        Ok(VariableSetKind::VarSetMulti) => Kind::SetLocal,
        // `SET name FROM CURRENT` sets the parameter to the value it already has.
        Ok(VariableSetKind::VarSetCurrent | VariableSetKind::Undefined) | Err(_) => Kind::Ordinary,
    }
}

/// Where the first value of a SET starts in the query string. Values are constants, or for
/// `SET TIME ZONE INTERVAL '...' HOUR TO MINUTE` a cast whose type name comes first.
fn value_start(node: &NodeEnum) -> Option<usize> {
    let locations = match node {
        NodeEnum::AConst(constant) => vec![constant.location],
        NodeEnum::TypeCast(cast) => {
            let mut locations = vec![cast.location];
            if let Some(type_name) = &cast.type_name {
                locations.push(type_name.location);
            }
            if let Some(NodeEnum::AConst(constant)) =
                cast.arg.as_ref().and_then(|arg| arg.node.as_ref())
            {
                locations.push(constant.location);
            }
            locations
        }
        _ => return None,
    };
    locations
        .into_iter()
        .filter(|&location| location >= 0)
        .min()
        .map(|location| location as usize)
}

/// The in-band control statements, and nothing else: `SELECT dbsandbox_reset()`,
/// `SELECT dbsandbox_reset('point')` and `SELECT dbsandbox_snapshot('point')`, one unaliased
/// target calling the unqualified function with no argument or one string literal, no other
/// clause.
fn sandbox_control(stmt: &protobuf::SelectStmt) -> Option<Kind> {
    let [target] = stmt.target_list.as_slice() else {
        return None;
    };
    let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else {
        return None;
    };
    let Some(NodeEnum::FuncCall(call)) = target.val.as_ref().and_then(|val| val.node.as_ref())
    else {
        return None;
    };
    let [name] = call.funcname.as_slice() else {
        return None;
    };
    let Some(NodeEnum::String(name)) = name.node.as_ref() else {
        return None;
    };
    let point = match call.args.as_slice() {
        [] => None,
        [arg] => match arg.node.as_ref() {
            Some(NodeEnum::AConst(protobuf::AConst {
                val: Some(a_const::Val::Sval(text)),
                ..
            })) => Some(text.sval.clone()),
            _ => return None,
        },
        _ => return None,
    };
    let kind = match (name.sval.as_str(), point) {
        ("dbsandbox_reset", None) => Kind::SandboxReset,
        ("dbsandbox_reset", Some(point)) => Kind::SandboxResetTo(point),
        ("dbsandbox_snapshot", Some(point)) => Kind::SandboxSnapshot(point),
        _ => return None,
    };
    let plain_call = call.agg_order.is_empty()
        && call.agg_filter.is_none()
        && call.over.is_none()
        && !call.agg_star
        && !call.agg_distinct
        && !call.func_variadic;
    let plain_select = stmt.distinct_clause.is_empty()
        && stmt.into_clause.is_none()
        && stmt.from_clause.is_empty()
        && stmt.where_clause.is_none()
        && stmt.group_clause.is_empty()
        && stmt.having_clause.is_none()
        && stmt.window_clause.is_empty()
        && stmt.values_lists.is_empty()
        && stmt.sort_clause.is_empty()
        && stmt.limit_offset.is_none()
        && stmt.limit_count.is_none()
        && stmt.locking_clause.is_empty()
        && stmt.with_clause.is_none()
        && stmt.op == SetOperation::SetopNone as i32;
    (plain_call && plain_select && target.name.is_empty() && target.indirection.is_empty())
        .then_some(kind)
}

/// The PostgreSQL 15 `PreventInTransactionBlock` callers that the statement's syntax alone
/// decides, with the command name PostgreSQL uses in its error. Not decidable from syntax (left
/// to the server's own 25001 error): CLUSTER/REINDEX TABLE/REINDEX INDEX of a partitioned table.
fn not_in_transaction(node: &NodeEnum) -> Option<&'static str> {
    match node {
        // ANALYZE alone is allowed in a transaction; VACUUM (with or without ANALYZE) is not.
        NodeEnum::VacuumStmt(stmt) if stmt.is_vacuumcmd => Some("VACUUM"),
        // `ALTER DATABASE d SET TABLESPACE t` and its spelling `ALTER DATABASE d WITH TABLESPACE t`.
        NodeEnum::AlterDatabaseStmt(stmt) if has_option(&stmt.options, "tablespace") => {
            Some("ALTER DATABASE SET TABLESPACE")
        }
        NodeEnum::IndexStmt(stmt) if stmt.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(stmt) if stmt.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(stmt) => {
            if boolean_option(&stmt.params, "concurrently").unwrap_or(false) {
                return Some("REINDEX CONCURRENTLY");
            }
            match ReindexObjectType::try_from(stmt.kind) {
                Ok(ReindexObjectType::ReindexObjectSchema) => Some("REINDEX SCHEMA"),
                Ok(ReindexObjectType::ReindexObjectSystem) => Some("REINDEX SYSTEM"),
                Ok(ReindexObjectType::ReindexObjectDatabase) => Some("REINDEX DATABASE"),
                _ => None,
            }
        }
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        // Only creating the replication slot is refused; `create_slot` defaults to `connect`,
        // which defaults to true.
        NodeEnum::CreateSubscriptionStmt(stmt) => {
            let connect = boolean_option(&stmt.options, "connect").unwrap_or(true);
            let create_slot = boolean_option(&stmt.options, "create_slot").unwrap_or(connect);
            create_slot.then_some("CREATE SUBSCRIPTION ... WITH (create_slot = true)")
        }
        NodeEnum::AlterSubscriptionStmt(stmt) => match AlterSubscriptionType::try_from(stmt.kind) {
            Ok(AlterSubscriptionType::AlterSubscriptionRefresh) => {
                Some("ALTER SUBSCRIPTION ... REFRESH")
            }
            Ok(
                AlterSubscriptionType::AlterSubscriptionSetPublication
                | AlterSubscriptionType::AlterSubscriptionAddPublication
                | AlterSubscriptionType::AlterSubscriptionDropPublication,
            ) if boolean_option(&stmt.options, "refresh").unwrap_or(true) => {
                Some("ALTER SUBSCRIPTION with refresh")
            }
            _ => None,
        },
        // Refused by the server only when the subscription has a replication slot, which is
        // the normal case; `SET (slot_name = NONE)` first is how it is dropped in a transaction.
        NodeEnum::DropSubscriptionStmt(_) => Some("DROP SUBSCRIPTION"),
        // CLUSTER without a table processes every table, each in its own transaction.
        NodeEnum::ClusterStmt(stmt) if stmt.relation.is_none() => Some("CLUSTER"),
        NodeEnum::AlterTableStmt(stmt) if stmt.cmds.iter().any(is_detach_concurrently) => {
            Some("ALTER TABLE ... DETACH CONCURRENTLY")
        }
        _ => None,
    }
}

fn is_detach_concurrently(cmd: &pg_query::Node) -> bool {
    let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
        return false;
    };
    cmd.subtype == protobuf::AlterTableType::AtDetachPartition as i32
        && matches!(
            cmd.def.as_ref().and_then(|def| def.node.as_ref()),
            Some(NodeEnum::PartitionCmd(partition)) if partition.concurrent
        )
}

fn option<'a>(options: &'a [pg_query::Node], name: &str) -> Option<&'a protobuf::DefElem> {
    options
        .iter()
        .find_map(|option| match option.node.as_ref() {
            Some(NodeEnum::DefElem(element)) if element.defname == name => Some(element.as_ref()),
            _ => None,
        })
}

fn has_option(options: &[pg_query::Node], name: &str) -> bool {
    option(options, name).is_some()
}

/// A boolean option's value as PostgreSQL's `defGetBoolean` reads it (no argument means true);
/// `None` when the option is absent. An unreadable value counts as true: the server rejects it
/// anyway, and erring towards "cannot run in a transaction" only changes the error message.
pub(crate) fn boolean_option(options: &[pg_query::Node], name: &str) -> Option<bool> {
    let element = option(options, name)?;
    let value = match element.arg.as_ref().and_then(|arg| arg.node.as_ref()) {
        None => true,
        Some(NodeEnum::Boolean(boolean)) => boolean.boolval,
        Some(NodeEnum::Integer(integer)) => integer.ival != 0,
        Some(NodeEnum::String(text)) => !matches!(
            text.sval.to_ascii_lowercase().as_str(),
            "false" | "off" | "f" | "n" | "no" | "0"
        ),
        Some(NodeEnum::AConst(constant)) => !matches!(
            &constant.val,
            Some(a_const::Val::Boolval(protobuf::Boolean { boolval: false }))
                | Some(a_const::Val::Ival(protobuf::Integer { ival: 0 }))
        ),
        Some(_) => true,
    };
    Some(value)
}

/// Rewrites the name of a SQL-level `PREPARE`/`EXECUTE`/`DEALLOCATE [PREPARE]` statement to
/// `rename(name)` (quoted as an identifier), leaving every other byte of the text as it was.
/// `rename` receives the name as PostgreSQL folds it. `None` when `sql` is not one of those
/// statements, or is `DEALLOCATE ALL` (which names nothing: the caller handles
/// `Kind::Deallocate(None)` itself).
pub fn rename_prepared(sql: &str, rename: &dyn Fn(&str) -> String) -> Option<String> {
    let (name, keyword) = match classify_one(sql) {
        Kind::Prepare(name) => (name, Token::Prepare),
        Kind::Execute(name) => (name, Token::Execute),
        Kind::Deallocate(Some(name)) => (name, Token::Deallocate),
        _ => return None,
    };
    let scanned = pg_query::scan(sql).ok()?;
    let mut tokens = scanned.tokens.iter().filter(|token| {
        !matches!(
            Token::try_from(token.token),
            Ok(Token::SqlComment | Token::CComment)
        )
    });
    let first = tokens.next()?;
    if Token::try_from(first.token) != Ok(keyword) {
        return None;
    }
    let mut name_token = tokens.next()?;
    // `DEALLOCATE PREPARE name`; but in `DEALLOCATE prepare` the keyword is the name.
    if keyword == Token::Deallocate && Token::try_from(name_token.token) == Ok(Token::Prepare) {
        if let Some(next) = tokens.next() {
            name_token = next;
        }
    }
    let (start, end) = (name_token.start as usize, name_token.end as usize);
    let renamed = rename(&name);
    let written = &sql[start..end];
    // A plain identifier keeps its spelling behind the new prefix, so that the statement's text
    // gives the client's own back when the prefix is removed (`pg_prepared_statements`).
    let plain = written
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b >= 0x80)
        && written.bytes().all(is_identifier_byte);
    let replacement = match renamed.strip_suffix(name.as_str()) {
        Some(prefix)
            if plain
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            format!("{prefix}{written}")
        }
        _ => quote_ident(&renamed),
    };
    Some(format!("{}{replacement}{}", &sql[..start], &sql[end..]))
}

/// Quotes an identifier for SQL: always double-quoted, inner double quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
