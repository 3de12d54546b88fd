//! `dbsandbox --version`: the release, the commit it was built from and the control API version
//! the integrations check.

use std::process::Command;

#[test]
fn version_names_the_release_the_commit_and_the_control_api() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbsandbox"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let rest = line
        .trim_end()
        .strip_prefix(&format!("dbsandbox {} (commit ", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    let (commit, api) = rest.split_once(", ").unwrap_or_else(|| panic!("{line}"));
    // Built from this repository: the commit git names, not `unknown`.
    assert!(
        commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
    let expected = format!("control API v{})", dbsandbox_control::API_VERSION);
    assert_eq!(api, expected, "{line}");
}
