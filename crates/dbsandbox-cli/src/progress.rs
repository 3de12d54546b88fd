//! One status line on stderr while dbsandbox sets up: rewritten in place on a terminal, printed
//! only when it changes phase elsewhere (CI logs stay short).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub struct Progress {
    quiet: bool,
    terminal: bool,
    last_phase: Mutex<String>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        Progress {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            last_phase: Mutex::new(String::new()),
        }
    }

    /// Shows a step. Off a terminal only the first step of each phase (text before ':') is printed.
    pub fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2Kdbsandbox: {line}");
            let _ = stderr.flush();
            return;
        }
        let phase = line.split(':').next().unwrap_or(line).to_string();
        let mut last = self.last_phase.lock().unwrap_or_else(|p| p.into_inner());
        if *last != phase && phase.starts_with("building") {
            let _ = writeln!(stderr, "dbsandbox: {line}");
        }
        *last = phase;
    }

    /// Removes the status line (on a terminal; elsewhere nothing was left open).
    pub fn clear(&self) {
        if self.quiet || !self.terminal {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }

    /// Replaces the status line with a final one.
    pub fn finish(&self, line: &str) {
        if self.quiet {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = writeln!(stderr, "\r\x1b[2Kdbsandbox: {line}");
        } else {
            let _ = writeln!(stderr, "dbsandbox: {line}");
        }
    }
}
