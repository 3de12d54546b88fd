//! Where a template's schema comes from, in which order migrations run, and the fingerprint of it all.
//!
//! Migration directories follow the common tools' naming: `0001_x.sql` (sqlx, dbmate-style
//! prefixes), `20240101_x.up.sql` (golang-migrate; `.down.sql` is skipped), Flyway `V1__x.sql` and
//! `V1_1__x.sql` (then repeatable `R__x.sql` after all versioned ones; undo `U1__x.sql` skipped).
//! Files are ordered by their version number, not by name, so `V10` runs after `V9`.

use std::path::{Path, PathBuf};

use crate::PoolError;

/// Everything a template is built from.
#[derive(Debug, Clone, Default)]
pub struct SchemaSource {
    /// The project the template belongs to (old templates are collected per project).
    pub project_root: PathBuf,
    /// A directory of `.sql` migration files.
    pub migrations: Option<PathBuf>,
    /// A command that migrates the database named by `DATABASE_URL`.
    pub migrate_cmd: Option<String>,
    /// SQL files applied after the migrations.
    pub seeds: Vec<PathBuf>,
    /// Extra files or directories whose contents count in the fingerprint (what `migrate_cmd` reads).
    pub watch: Vec<PathBuf>,
    /// Migrations run as the admin role (`--superuser`) rather than the sandbox owner role: the
    /// template's objects belong to another role, so it is another template.
    pub superuser: bool,
}

/// One migration file, in the order it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub path: PathBuf,
    /// The version parsed from the name, e.g. `[1, 1]` for `V1_1__x.sql`; empty for repeatable ones.
    pub version: Vec<u64>,
}

/// The name-independent identity of a template's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 64 hex digits of BLAKE3.
    pub hex: String,
    /// A short human description of what went in ("12 migrations, 1 seed").
    pub summary: String,
}

impl Fingerprint {
    pub fn short(&self) -> &str {
        &self.hex[..16]
    }
}

impl SchemaSource {
    /// The migration files in the order they run.
    pub fn migration_files(&self) -> Result<Vec<MigrationFile>, PoolError> {
        match &self.migrations {
            Some(dir) => migration_files(dir),
            None => Ok(Vec::new()),
        }
    }

    /// Hashes every input: migration names and contents, the command, seeds, watched files,
    /// and the server's major version (a template is only valid for one major version).
    pub fn fingerprint(&self, server_major: u32) -> Result<Fingerprint, PoolError> {
        let mut hasher = blake3::Hasher::new();
        let mut add = |label: &str, bytes: &[u8]| {
            hasher.update(label.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        // v2: templates carry the pg_notify() rollback sandboxes deliver (see notify.rs).
        add("format", b"dbsandbox-template-v2");
        add("server-major", server_major.to_string().as_bytes());
        add(
            "owner",
            if self.superuser {
                b"admin"
            } else {
                b"sandbox-role"
            },
        );
        let migrations = self.migration_files()?;
        for file in &migrations {
            add("migration", file_name(&file.path).as_bytes());
            add("contents", &read(&file.path)?);
        }
        if let Some(cmd) = &self.migrate_cmd {
            add("migrate-cmd", cmd.as_bytes());
        }
        for seed in &self.seeds {
            add("seed", file_name(seed).as_bytes());
            add("contents", &read(seed)?);
        }
        let mut watched = 0;
        for path in &self.watch {
            for file in walk_files(path)? {
                add("watch", file.display().to_string().as_bytes());
                add("contents", &read(&file)?);
                watched += 1;
            }
        }
        let mut parts = vec![format!(
            "{} migration{}",
            migrations.len(),
            plural(migrations.len())
        )];
        if self.migrate_cmd.is_some() {
            parts.push("a migrate command".to_string());
        }
        if !self.seeds.is_empty() {
            parts.push(format!(
                "{} seed{}",
                self.seeds.len(),
                plural(self.seeds.len())
            ));
        }
        if watched > 0 {
            parts.push(format!("{watched} watched file{}", plural(watched)));
        }
        Ok(Fingerprint {
            hex: hasher.finalize().to_hex().to_string(),
            summary: parts.join(", "),
        })
    }

    /// A short stable id of the project, used in template names.
    pub fn project_id(&self) -> String {
        let root =
            std::fs::canonicalize(&self.project_root).unwrap_or_else(|_| self.project_root.clone());
        blake3::hash(root.display().to_string().as_bytes()).to_hex()[..8].to_string()
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<Vec<u8>, PoolError> {
    std::fs::read(path)
        .map_err(|e| PoolError::Input(format!("cannot read {}: {e}", path.display())))
}

/// Names inside a watched directory that are caches written by running the project (Python's
/// bytecode, editors' and VCS state), not inputs of the schema: counting them would rebuild the
/// template whenever a test run writes them.
fn is_generated(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    matches!(
        name.as_ref(),
        "__pycache__" | ".pytest_cache" | ".mypy_cache" | ".git" | "node_modules" | ".DS_Store"
    ) || name.ends_with(".pyc")
        || name.ends_with(".pyo")
        || name.ends_with(".swp")
        || name.ends_with('~')
}

fn walk_files(path: &Path) -> Result<Vec<PathBuf>, PoolError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| PoolError::Input(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| PoolError::Input(format!("cannot list {}: {e}", path.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| !is_generated(p))
        .collect();
    entries.sort();
    for entry in entries {
        files.extend(walk_files(&entry)?);
    }
    Ok(files)
}

/// Lists `dir`'s migrations in the order they run.
pub fn migration_files(dir: &Path) -> Result<Vec<MigrationFile>, PoolError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        PoolError::Input(format!(
            "cannot read the migrations directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_file() || !name.ends_with(".sql") || name.ends_with(".down.sql") {
            continue;
        }
        match classify(&name) {
            Kind::Versioned(version) => files.push((0, MigrationFile { path: entry.path(), version })),
            Kind::Repeatable => files.push((1, MigrationFile { path: entry.path(), version: Vec::new() })),
            Kind::Skipped => {}
            Kind::Unversioned => {
                return Err(PoolError::Input(format!(
                    "{}: migration file names must start with a version (0001_name.sql, 20240101_name.up.sql, V1__name.sql)",
                    entry.path().display()
                )))
            }
        }
    }
    files.sort_by(|(ga, a), (gb, b)| {
        ga.cmp(gb)
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.path.cmp(&b.path))
    });
    let files: Vec<MigrationFile> = files.into_iter().map(|(_, f)| f).collect();
    for pair in files.windows(2) {
        if !pair[0].version.is_empty() && pair[0].version == pair[1].version {
            return Err(PoolError::Input(format!(
                "two migrations share version {}: {} and {}",
                pair[0]
                    .version
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
                pair[0].path.display(),
                pair[1].path.display()
            )));
        }
    }
    Ok(files)
}

enum Kind {
    Versioned(Vec<u64>),
    Repeatable,
    Skipped,
    Unversioned,
}

fn classify(name: &str) -> Kind {
    let stem = name.trim_end_matches(".sql").trim_end_matches(".up");
    // Flyway: V<version>__desc, U<version>__desc (undo), R__desc (repeatable).
    if let Some((prefix, _)) = stem.split_once("__") {
        let mut chars = prefix.chars();
        match chars.next() {
            Some('R') if prefix.len() == 1 => return Kind::Repeatable,
            Some('U') if parse_version(chars.as_str()).is_some() => return Kind::Skipped,
            Some('V') | Some('v') => {
                if let Some(version) = parse_version(chars.as_str()) {
                    return Kind::Versioned(version);
                }
            }
            _ => {}
        }
    }
    let digits: String = stem.chars().take_while(|c| c.is_ascii_digit()).collect();
    match digits.parse() {
        Ok(number) => Kind::Versioned(vec![number]),
        Err(_) => Kind::Unversioned,
    }
}

/// `1`, `1_1`, `1.1` → [1, 1].
fn parse_version(text: &str) -> Option<Vec<u64>> {
    if text.is_empty() {
        return None;
    }
    text.split(['_', '.']).map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        migration_files(dir)
            .unwrap()
            .iter()
            .map(|f| file_name(&f.path))
            .collect()
    }

    fn touch(dir: &Path, names: &[&str]) {
        for name in names {
            std::fs::write(dir.join(name), format!("-- {name}")).unwrap();
        }
    }

    #[test]
    fn watched_directories_skip_caches_that_running_the_project_writes() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app/migrations");
        std::fs::create_dir_all(app.join("__pycache__")).unwrap();
        touch(&app, &["0001_initial.py", "0002_data.py"]);
        touch(&app.join("__pycache__"), &["0001_initial.cpython-311.pyc"]);
        touch(dir.path(), &["models.pyc", "models.py"]);
        let found: Vec<String> = walk_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            found,
            [
                "app/migrations/0001_initial.py",
                "app/migrations/0002_data.py",
                "models.py"
            ]
        );
    }

    #[test]
    fn orders_sqlx_and_migrate_names_by_number_and_skips_down() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &["0010_c.sql", "0002_b.sql", "0001_a.sql", "notes.txt"],
        );
        assert_eq!(
            names(dir.path()),
            ["0001_a.sql", "0002_b.sql", "0010_c.sql"]
        );

        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "20240102_y.up.sql",
                "20240102_y.down.sql",
                "20240101_x.up.sql",
                "20240101_x.down.sql",
            ],
        );
        assert_eq!(
            names(dir.path()),
            ["20240101_x.up.sql", "20240102_y.up.sql"]
        );
    }

    #[test]
    fn orders_flyway_versions_numerically_then_repeatables() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "V10__ten.sql",
                "V9__nine.sql",
                "V1_1__one_one.sql",
                "V1__one.sql",
                "R__views.sql",
                "U9__undo.sql",
            ],
        );
        assert_eq!(
            names(dir.path()),
            [
                "V1__one.sql",
                "V1_1__one_one.sql",
                "V9__nine.sql",
                "V10__ten.sql",
                "R__views.sql"
            ]
        );
    }

    #[test]
    fn unversioned_and_duplicate_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["schema.sql"]);
        let err = migration_files(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("schema.sql") && err.contains("must start with a version"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["1_a.sql", "001_b.sql"]);
        let err = migration_files(dir.path()).unwrap_err().to_string();
        assert!(err.contains("share version 1"), "{err}");
    }

    #[test]
    fn fingerprint_changes_with_every_input_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["0001_a.sql"]);
        let mut source = SchemaSource {
            project_root: dir.path().to_path_buf(),
            migrations: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let base = source.fingerprint(15).unwrap();
        assert_eq!(
            base,
            source.fingerprint(15).unwrap(),
            "stable for the same inputs"
        );
        assert_eq!(base.summary, "1 migration");
        assert_ne!(
            base,
            source.fingerprint(16).unwrap(),
            "server major version counts"
        );
        source.superuser = true;
        assert_ne!(
            base,
            source.fingerprint(15).unwrap(),
            "who owns the objects counts"
        );
        source.superuser = false;
        std::fs::write(dir.path().join("0001_a.sql"), "create table x();").unwrap();
        let edited = source.fingerprint(15).unwrap();
        assert_ne!(base, edited, "contents count");
        std::fs::rename(dir.path().join("0001_a.sql"), dir.path().join("0002_a.sql")).unwrap();
        let renamed = source.fingerprint(15).unwrap();
        assert_ne!(edited, renamed, "names count");
        source.migrate_cmd = Some("true".into());
        assert_ne!(
            renamed,
            source.fingerprint(15).unwrap(),
            "the command counts"
        );
    }
}
