//! Who may connect to the embedded server, and as which role.
//!
//! Only dbsandbox connects to its embedded server. `pg_hba.conf` is written by dbsandbox at every
//! start: the Unix socket (in a directory only the server's OS user and root can enter) is
//! trusted, TCP on loopback needs a scram-sha-256 password. The passwords are random secrets made
//! when the cluster is made and kept in `dbsandbox.secret` inside its data directory (mode 0600,
//! owned by the server's account): the admin role's, and the sandbox owner role's (the role
//! migrations run as, so that the template's objects are its own).
//!
//! Sandbox clients do not use either role: each clone has a role of its own, named like the
//! clone, that owns the clone's database and is a member of the owner role. It can do anything
//! to the clone's objects (DDL, TRUNCATE, sequences, trusted extensions) but cannot reach other
//! databases, signal other clones' backends, read server files or run programs.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::account::{io_error, ServerAccount};
use crate::ServerError;

/// The role that owns every template's objects (and so every clone's, by inheritance).
pub const SANDBOX_OWNER: &str = "dbsandbox_sandbox";

/// The file, inside a data directory, holding the cluster's passwords.
const SECRET_FILE: &str = "dbsandbox.secret";

/// The two passwords of a cluster.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    pub admin: String,
    pub sandbox_owner: String,
}

/// Reads the cluster's secrets, making them first when the cluster has none yet (a new cluster,
/// or one made by a dbsandbox from before passwords).
pub fn ensure_secrets(data_dir: &Path, account: &ServerAccount) -> Result<Secrets, ServerError> {
    if let Some(secrets) = read_secrets(data_dir) {
        return Ok(secrets);
    }
    let secrets = Secrets {
        admin: random_hex(24),
        sandbox_owner: random_hex(24),
    };
    let path = data_dir.join(SECRET_FILE);
    let staging = data_dir.join(format!("{SECRET_FILE}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&staging)
        .map_err(|e| io_error("creating", &staging, e))?;
    file.write_all(&serde_json::to_vec(&secrets).unwrap_or_default())
        .map_err(|e| io_error("writing", &staging, e))?;
    drop(file);
    account.chown(&staging)?;
    std::fs::rename(&staging, &path).map_err(|e| io_error("renaming", &staging, e))?;
    Ok(secrets)
}

/// The cluster's secrets, if it has them.
pub fn read_secrets(data_dir: &Path) -> Option<Secrets> {
    let bytes = std::fs::read(data_dir.join(SECRET_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes the only `pg_hba.conf` the embedded server uses.
pub fn write_hba(data_dir: &Path, account: &ServerAccount) -> Result<(), ServerError> {
    let path = data_dir.join("pg_hba.conf");
    let text = "# Written by dbsandbox at every start; edits are lost.\n\
                # The socket directory is private to the server's OS user (mode 0700): trusted.\n\
                local all all trust\n\
                # Loopback TCP: only roles with a password, which only dbsandbox knows.\n\
                host all all 127.0.0.1/32 scram-sha-256\n";
    std::fs::write(&path, text).map_err(|e| io_error("writing", &path, e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error("setting permissions of", &path, e))?;
    account.chown(&path)
}

/// SQL that gives the admin role its password and makes sure the sandbox owner role exists,
/// unprivileged, with its password. Run over the socket at every start.
pub fn roles_sql(admin: &str, secrets: &Secrets) -> String {
    format!(
        "alter role {admin} password {admin_password};\n\
         do $$ begin\n\
           create role {SANDBOX_OWNER};\n\
         exception when duplicate_object then null;\n\
         end $$;\n\
         alter role {SANDBOX_OWNER} login nosuperuser nocreatedb nocreaterole noreplication \
         nobypassrls inherit password {owner_password};",
        admin = quote_ident(admin),
        admin_password = quote_literal(&secrets.admin),
        owner_password = quote_literal(&secrets.sandbox_owner),
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `bytes` random bytes from the kernel, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buffer);
    }
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_private_and_random() {
        let dir = tempfile::tempdir().unwrap();
        let account = ServerAccount::choose(None).unwrap_or_else(|_| ServerAccount {
            name: "root".into(),
            uid: 0,
            gid: 0,
            switch_user: false,
        });
        let account = ServerAccount {
            switch_user: false,
            ..account
        };
        let first = ensure_secrets(dir.path(), &account).unwrap();
        let again = ensure_secrets(dir.path(), &account).unwrap();
        assert_eq!(first.admin, again.admin, "made once, then read");
        assert_ne!(first.admin, first.sandbox_owner);
        assert_eq!(first.admin.len(), 48);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
