//! Writing to stdout and stderr without dying when the reader went away
//! (`dbsandbox status --json | true`, `… | head -1`): a closed pipe ends the output quietly,
//! while the command carries on (stopping a server it started for the moment) and exits as it
//! would have. `println!` would panic instead (exit 101).

use std::io::Write;

/// A writer that swallows "broken pipe": the bytes are dropped as if they had been read.
pub struct QuietPipe<W: Write>(pub W);

impl<W: Write> Write for QuietPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(buf.len()),
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// Stdout, quiet about a closed pipe.
pub fn stdout() -> QuietPipe<std::io::Stdout> {
    QuietPipe(std::io::stdout())
}

/// Stderr, quiet about a closed pipe.
pub fn stderr() -> QuietPipe<std::io::Stderr> {
    QuietPipe(std::io::stderr())
}

/// One line on stdout (see [`outln!`]).
pub fn out_line(args: std::fmt::Arguments<'_>) {
    let mut out = stdout().0.lock();
    let written = QuietPipe(&mut out).write_fmt(args).and_then(|()| {
        let mut quiet = QuietPipe(&mut out);
        quiet.write_all(b"\n")?;
        quiet.flush()
    });
    if let Err(e) = written {
        err_line(format_args!("dbsandbox: cannot write to stdout: {e}"));
    }
}

/// One line on stderr (see [`errln!`]); a failure to write it has nowhere to go.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut err = stderr();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// `println!` that survives a closed stdout pipe.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::out_line(format_args!($($arg)*)) };
}

/// `eprintln!` that survives a closed stderr pipe.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::err_line(format_args!($($arg)*)) };
}

pub(crate) use {errln, outln};
