//! Admission of a key's new connections: a connection whose client has closed is cleaned up (and,
//! as the key's last, resets the key) before any later connection of the key is admitted. The
//! client sees its socket closed before the proxy has read the close (its session task may not
//! even have run yet, or wait for the key's turn), so a test's next connection could otherwise
//! reach the key first and see the rows of the test before. Each session registers its client's
//! socket; a new connection looks at them (without reading) and waits until those that ended
//! have left.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::TcpStream as StdTcpStream;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::sandbox::{ClientId, Sandbox};

/// The client sockets of a sandbox's sessions, and a signal for each session that leaves.
#[derive(Default)]
pub struct Admission {
    /// A second handle on each session's client socket, only ever peeked at.
    sockets: Mutex<HashMap<ClientId, Watched>>,
    left: Notify,
}

impl Admission {
    fn sockets(&self) -> MutexGuard<'_, HashMap<ClientId, Watched>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn any_client_closed(&self) -> bool {
        self.sockets()
            .values()
            .any(|watched| client_closed(&watched.socket, watched.encrypted))
    }

    /// Returns once no session of the sandbox has a client that closed: each such session has
    /// left (and reset the key if it was the last). `waiting` counts the connections waiting here.
    /// The wait is bounded ([`ADMISSION_WAIT`]): a session whose clean-up never comes must not
    /// keep the key's new connections out for good (the 10⁶-message fuzz run found such
    /// sessions, piling up tens of thousands of waiting connections); past the bound the
    /// connection is admitted, with a warning.
    pub async fn wait_for_closed_sessions(&self, key: &str, waiting: &AtomicU64) {
        let waited = tokio::time::timeout(ADMISSION_WAIT, self.wait_unbounded(waiting)).await;
        if waited.is_err() {
            tracing::warn!(
                key,
                "a closed connection of the key was not cleaned up within {} s; a new connection \
                 is admitted without waiting for it (it may see that connection's writes)",
                ADMISSION_WAIT.as_secs()
            );
        }
    }

    async fn wait_unbounded(&self, waiting: &AtomicU64) {
        loop {
            let left = self.left.notified();
            tokio::pin!(left);
            // Registered before the check, so a session that leaves in between is not missed.
            left.as_mut().enable();
            if !self.any_client_closed() {
                return;
            }
            let _counted = Waiting::count(waiting);
            left.await;
        }
    }
}

/// Longest wait of a new connection for the clean-up of the key's closed ones (milliseconds
/// when all is well).
pub const ADMISSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Counts a connection waiting for admission, however its wait ends.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn count(waiting: &'a AtomicU64) -> Waiting<'a> {
        waiting.fetch_add(1, Relaxed);
        Waiting(waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A session's client socket.
struct Watched {
    socket: StdTcpStream,
    /// TLS: its Terminate is encrypted, so only the peer's close says the client left.
    encrypted: bool,
}

/// Whether the client closed its side: end of stream, a reset, or a Terminate message waiting
/// to be read (an idle session has no partial message before it). Never reads or waits: the
/// socket is non-blocking. A TLS client's Terminate (and close_notify) cannot be recognised
/// without decrypting, and they stand before the end of stream, so on Linux its socket is
/// asked whether the peer shut down its side (POLLRDHUP), unread bytes or not.
fn client_closed(socket: &StdTcpStream, encrypted: bool) -> bool {
    if encrypted {
        if let Some(closed) = peer_shut_down(socket) {
            return closed;
        }
    }
    let mut head = [0u8; 5];
    match socket.peek(&mut head) {
        Ok(0) => true,
        Ok(n) => n == head.len() && head == [b'X', 0, 0, 0, 4],
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
    }
}

#[cfg(target_os = "linux")]
fn peer_shut_down(socket: &StdTcpStream) -> Option<bool> {
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
    // epoll, not poll: nix 0.29 names EPOLLRDHUP but not POLLRDHUP. Admission checks are rare
    // (a key's new connection), so the three system calls do not matter.
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok()?;
    epoll
        .add(socket, EpollEvent::new(EpollFlags::EPOLLRDHUP, 0))
        .ok()?;
    let mut events = [EpollEvent::empty()];
    let ready = epoll.wait(&mut events, EpollTimeout::ZERO).ok()?;
    let closed = EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
    Some(ready > 0 && events[0].events().intersects(closed))
}

#[cfg(not(target_os = "linux"))]
fn peer_shut_down(_socket: &StdTcpStream) -> Option<bool> {
    None
}

/// A session's registration; it leaves (and wakes the connections waiting) when dropped, after
/// the session's clean-up.
pub struct Admitted {
    sandbox: Arc<Sandbox>,
    id: ClientId,
}

impl Admitted {
    pub fn register(
        sandbox: &Arc<Sandbox>,
        id: ClientId,
        client: &TcpStream,
        encrypted: bool,
    ) -> Admitted {
        match client.as_fd().try_clone_to_owned() {
            Ok(fd) => {
                let socket = StdTcpStream::from(fd);
                sandbox
                    .admission
                    .sockets()
                    .insert(id, Watched { socket, encrypted });
            }
            // Out of file descriptors: the connection works, later ones just do not wait for it.
            Err(e) => tracing::warn!(key = %sandbox.key, "cannot watch a client socket: {e}"),
        }
        Admitted {
            sandbox: Arc::clone(sandbox),
            id,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let admission = &self.sandbox.admission;
        admission.sockets().remove(&self.id);
        admission.left.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A connected pair: (the proxy's side, the client's side).
    fn pair() -> (StdTcpStream, StdTcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = StdTcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (server, client)
    }

    /// Waits (bounded) until the kernel shows what the client did on the proxy's side.
    fn eventually(check: impl Fn() -> bool) -> bool {
        (0..200).any(|_| {
            let seen = check();
            if !seen {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            seen
        })
    }

    #[test]
    fn an_idle_client_is_open_and_a_plain_terminate_is_a_close() {
        let (server, mut client) = pair();
        assert!(!client_closed(&server, false));
        assert!(!client_closed(&server, true));
        client.write_all(&[b'X', 0, 0, 0, 4]).unwrap();
        assert!(eventually(|| client_closed(&server, false)));
    }

    #[test]
    fn a_tls_client_that_closed_after_unread_bytes_is_closed() {
        let (server, mut client) = pair();
        // An encrypted Terminate and close_notify: bytes nobody can read as a Terminate.
        client.write_all(&[0x17, 3, 3, 0, 2, 0xab, 0xcd]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!client_closed(&server, true), "bytes alone are not a close");
        drop(client);
        assert!(eventually(|| client_closed(&server, true)));
        assert!(
            !client_closed(&server, false),
            "plain text: those bytes are no Terminate"
        );
    }
}
