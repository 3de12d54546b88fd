//! Helpers the CLI and daemon end-to-end tests share.

use std::process::Output;

/// An output's status, stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// True while the process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// SIGKILLs a process and then its direct children (a killed `dbsandbox run` leaves its test
/// command behind), without touching other tests' processes.
pub fn kill_with_children(child: &mut std::process::Child) {
    let children: Vec<i32> = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|list| {
                    list.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
