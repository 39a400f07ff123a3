//! The acceptor thread: waits on every portal's listening socket (plain
//! `poll(2)`; accepting is not on the I/O path), sets socket options and
//! hands each connection to the least-loaded shard through the
//! [`Dispatcher`]. It never reads or writes a connection.

use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use shardtgt_transport_tcp::addr::format_portal;
use shardtgt_transport_tcp::sockopt::prepare_accepted;
use tracing::{debug, warn};

use crate::msg::Accepted;
use crate::pool::Dispatcher;
use crate::wake::EventFd;

/// Connections accepted from one listener per wake-up before the others get a turn.
const ACCEPT_BURST: usize = 64;

/// A bound portal.
#[derive(Debug)]
pub struct Listener {
    /// Bound, listening, non-blocking socket.
    pub listener: TcpListener,
    /// Its target portal group tag.
    pub tpgt: u16,
}

/// The running acceptor; [`Acceptor::stop`] ends it and closes the listeners.
#[derive(Debug)]
pub struct Acceptor {
    stop: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Listener>>>,
}

impl Acceptor {
    /// Start accepting on `listeners`.
    pub fn start(listeners: Vec<Listener>, dispatcher: Arc<Dispatcher>) -> io::Result<Acceptor> {
        let stop = Arc::new(EventFd::new()?);
        let stopping = Arc::new(AtomicBool::new(false));
        let (s2, f2) = (stop.clone(), stopping.clone());
        let thread = std::thread::Builder::new().name("acceptor".into()).spawn(move || {
            accept_loop(&listeners, &dispatcher, &s2, &f2);
            listeners
        })?;
        Ok(Acceptor { stop, stopping, thread: Some(thread) })
    }

    /// Stop accepting, close the listeners and wait for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Stop accepting and hand the (still bound and listening) sockets
    /// back, so the control thread can restart the acceptor with a changed
    /// portal list; connections arriving meanwhile wait in the backlog.
    pub fn stop_take(mut self) -> Vec<Listener> {
        self.halt()
    }

    fn halt(&mut self) -> Vec<Listener> {
        self.stopping.store(true, Ordering::Release);
        self.stop.signal();
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.halt();
    }
}

fn accept_loop(listeners: &[Listener], dispatcher: &Dispatcher, stop: &EventFd, stopping: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| libc::pollfd { fd: l.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    fds.push(libc::pollfd { fd: stop.raw_fd(), events: libc::POLLIN, revents: 0 });
    loop {
        for f in fds.iter_mut() {
            f.revents = 0;
        }
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structures.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1_000) };
        if stopping.load(Ordering::Acquire) {
            return;
        }
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                warn!("acceptor poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        for (l, f) in listeners.iter().zip(fds.iter()) {
            if f.revents != 0 {
                accept_burst(l, dispatcher);
            }
        }
    }
}

fn accept_burst(l: &Listener, dispatcher: &Dispatcher) {
    for _ in 0..ACCEPT_BURST {
        match l.listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = prepare_accepted(&stream) {
                    debug!(peer = %format_portal(&peer), "dropping connection: socket options: {e}");
                    continue;
                }
                match dispatcher.dispatch(Accepted { stream, peer, tpgt: l.tpgt }) {
                    Ok(shard) => debug!(peer = %format_portal(&peer), shard, "connection dispatched"),
                    Err(e) => warn!(peer = %format_portal(&e.0.peer), "no shard can take the connection: dropped"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) => {
                // Out of descriptors or memory: back off instead of spinning
                // on a listener that stays readable.
                warn!("accept: {e}; backing off");
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            Err(e) => debug!("accept: {e}"),
        }
    }
}
