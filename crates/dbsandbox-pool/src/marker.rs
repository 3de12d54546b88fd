//! The marker every dbsandbox database carries in its comment, and the rules that read it.
//!
//! `COMMENT ON DATABASE x IS 'dbsandbox {json}'`. A database is ours only when its name starts with
//! `dbsandbox_` *and* its comment parses as a marker: a user's database that merely shares the
//! prefix is never touched.

use dbsandbox_server::ProcessId;
use serde::{Deserialize, Serialize};

pub(crate) const NAME_PREFIX: &str = "dbsandbox_";
const COMMENT_PREFIX: &str = "dbsandbox ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Template,
    Clone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbState {
    /// A template being built; stale if no builder holds the template's advisory lock.
    Building,
    /// A finished template.
    Ready,
    /// A clone waiting in a pool, never handed out.
    Pooled,
    /// A clone handed out to a sandbox.
    Leased,
    /// A pristine clone left by a cleanly stopped run, for the next run to adopt.
    Spare,
    /// A clone whose creator stopped between `CREATE DATABASE` and marking it: recognised by its
    /// exact clone name and the fingerprint of one of our templates (never stored, only inferred).
    Unfinished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub kind: DbKind,
    pub state: DbState,
    pub project: String,
    pub fingerprint: String,
    /// The template a clone was made from (empty for templates).
    #[serde(default)]
    pub template: String,
    pub owner: Option<ProcessId>,
    pub host: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

impl Marker {
    pub fn new(
        kind: DbKind,
        state: DbState,
        project: &str,
        fingerprint: &str,
        template: &str,
    ) -> Marker {
        Marker {
            kind,
            state,
            project: project.to_string(),
            fingerprint: fingerprint.to_string(),
            template: template.to_string(),
            owner: Some(ProcessId::current()),
            host: hostname(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub fn with_state(&self, state: DbState) -> Marker {
        Marker {
            state,
            ..self.clone()
        }
    }

    pub fn comment(&self) -> String {
        format!(
            "{COMMENT_PREFIX}{}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// The marker of database `name` with comment `comment`, if it is one of ours.
    pub fn parse(name: &str, comment: Option<&str>) -> Option<Marker> {
        if !name.starts_with(NAME_PREFIX) {
            return None;
        }
        serde_json::from_str(comment?.strip_prefix(COMMENT_PREFIX)?).ok()
    }

    /// Whether the process that owns this database is known to be gone. Owners on other hosts
    /// are never judged dead: we cannot see their processes.
    pub fn owner_is_dead(&self) -> bool {
        match &self.owner {
            Some(owner) => self.host == hostname() && !owner.is_alive(),
            None => false,
        }
    }

    /// `COMMENT ON DATABASE` for `name`.
    pub fn comment_sql(&self, name: &str) -> String {
        format!(
            "comment on database {} is {}",
            crate::quote_ident(name),
            crate::quote_literal(&self.comment())
        )
    }
}

pub(crate) fn hostname() -> String {
    nix_hostname().unwrap_or_else(|| "localhost".to_string())
}

fn nix_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prefixed_names_with_a_marker_are_ours() {
        let marker = Marker::new(DbKind::Clone, DbState::Pooled, "p", "f", "t");
        let comment = marker.comment();
        assert_eq!(
            Marker::parse("dbsandbox_c_1", Some(&comment)),
            Some(marker.clone())
        );
        assert_eq!(
            Marker::parse("myapp", Some(&comment)),
            None,
            "name without our prefix"
        );
        assert_eq!(
            Marker::parse("dbsandbox_users", None),
            None,
            "prefix without marker"
        );
        assert_eq!(
            Marker::parse("dbsandbox_users", Some("dbsandbox rocks")),
            None
        );
        assert!(!marker.owner_is_dead());
    }
}
