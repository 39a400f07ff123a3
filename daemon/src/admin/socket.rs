//! The admin socket: bound with mode 0600 in a directory made 0700 (a stale
//! socket file from a crashed daemon is replaced), accepted on the control
//! thread. A client gets line-by-line answers; reads time out after
//! [`IDLE_TIMEOUT_MS`], lines are capped at [`MAX_LINE`] bytes and a
//! connection at [`MAX_REQUESTS`] requests, so one client cannot hold the
//! control thread forever. It never interprets a request.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::admin::protocol::{Response, IDLE_TIMEOUT_MS, MAX_LINE};

/// Requests served on one connection before it is closed.
pub const MAX_REQUESTS: usize = 10_000;

/// The bound admin socket; the file is removed on drop.
#[derive(Debug)]
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Bind at `path` (parent created 0700 if missing; socket 0600).
    pub fn bind(path: &Path) -> io::Result<AdminSocket> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
            }
        }
        if path.exists() {
            // Another daemon still answering? Then refuse; else it is stale.
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running daemon", path.display()),
                ));
            }
            fs::remove_file(path)?;
        }
        // SAFETY: umask only changes this process's file-creation mask; it
        // closes the window in which the socket would exist with wider mode.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above, restoring the previous mask.
        unsafe { libc::umask(old) };
        let listener = bound?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(AdminSocket { listener, path: path.to_path_buf() })
    }

    /// For poll(2).
    pub fn raw_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Where it is bound.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept waiting clients and serve each until it closes or idles.
    pub fn serve_ready(&self, mut handle: impl FnMut(&str) -> Response) {
        for _ in 0..16 {
            match self.listener.accept() {
                Ok((s, _)) => {
                    let _ = serve_client(s, &mut handle);
                }
                Err(_) => return,
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn serve_client(s: UnixStream, handle: &mut impl FnMut(&str) -> Response) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(IDLE_TIMEOUT_MS)))?;
    s.set_write_timeout(Some(Duration::from_millis(IDLE_TIMEOUT_MS)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    for _ in 0..MAX_REQUESTS {
        let mut buf = Vec::new();
        let n = (&mut r).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        let resp = if buf.len() > MAX_LINE {
            let _ = w.write_all(
                format!("{}\n", Response::err(format!("request longer than {MAX_LINE} bytes")).to_line()).as_bytes(),
            );
            return Ok(());
        } else {
            match std::str::from_utf8(&buf) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => handle(line),
                Err(_) => Response::err("bad request: not UTF-8"),
            }
        };
        w.write_all(format!("{}\n", resp.to_line()).as_bytes())?;
    }
    Ok(())
}

/// Client side: send `line` and read one response line.
pub fn request(path: &Path, line: &str) -> io::Result<Response> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    w.write_all(format!("{}\n", line.trim_end()).as_bytes())?;
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(|e| io::Error::other(format!("bad response from the daemon: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn modes_and_exchange() {
        let d = std::env::temp_dir().join(format!("shardtgt-sock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let p = d.join("sub").join("a.sock");
        let sock = AdminSocket::bind(&p).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(p.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        assert!(AdminSocket::bind(&p).is_err(), "second daemon refused");
        let path = p.clone();
        let client = std::thread::spawn(move || {
            let s = UnixStream::connect(&path).unwrap();
            let mut w = s.try_clone().unwrap();
            w.write_all(b"{bad json\n{\"op\":\"stats\"}\n").unwrap();
            let mut r = BufReader::new(s);
            let (mut a, mut b) = (String::new(), String::new());
            r.read_line(&mut a).unwrap();
            r.read_line(&mut b).unwrap();
            (a, b)
        });
        // Wait for the client to connect.
        let mut served = 0;
        while served == 0 {
            std::thread::sleep(Duration::from_millis(20));
            sock.serve_ready(|l| {
                served += 1;
                match crate::admin::protocol::parse_request(l) {
                    Ok(_) => Response::ok(serde_json::json!("fine")),
                    Err(e) => Response::err(e),
                }
            });
        }
        let (a, b) = client.join().unwrap();
        assert!(a.contains("\"ok\":false") && a.contains("bad request"), "{a}");
        assert!(b.contains("fine"), "{b}");
        drop(sock);
        assert!(!p.exists());
        let _ = fs::remove_dir_all(&d);
    }
}
