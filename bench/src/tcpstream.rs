//! Raw loopback TCP references measured in the same run as the targets:
//! the large-block ceiling (a stream, sender pinned where the target runs,
//! receiver where the client runs: the direction of a sequential read) and
//! the QD1 floor (a request/answer ping-pong shaped like a 4K READ).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::Result;

/// Bytes per write and read (the size of a 128K-read's worth of Data-In, doubled).
const CHUNK: usize = 256 * 1024;

/// Stream for `secs` from a thread on CPU `sender_cpu` to one on
/// `receiver_cpu`; returns MB/s (10^6 bytes).
pub fn measure(secs: Duration, sender_cpu: Option<usize>, receiver_cpu: Option<usize>) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        pin(sender_cpu);
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let buf = vec![0x5au8; CHUNK];
        loop {
            if s.write_all(&buf).is_err() {
                return Ok(()); // the receiver hung up: done
            }
        }
    });
    // The receiver runs on a thread of its own so the caller stays unpinned.
    let receiver = std::thread::spawn(move || -> std::io::Result<f64> {
        pin(receiver_cpu);
        let mut c = TcpStream::connect(addr)?;
        let mut buf = vec![0u8; CHUNK];
        // Warm up briefly, then measure.
        let warm = Instant::now() + Duration::from_millis(300);
        while Instant::now() < warm {
            c.read_exact(&mut buf)?;
        }
        let t0 = Instant::now();
        let mut bytes = 0u64;
        while t0.elapsed() < secs {
            let n = c.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
        Ok(bytes as f64 / t0.elapsed().as_secs_f64() / 1e6)
    });
    let mbps = receiver.join().map_err(|_| crate::berr!("tcp receiver panicked"))??;
    let _ = sender.join();
    Ok(mbps)
}

fn pin(cpu: Option<usize>) {
    if let Some(id) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
}

/// Bytes of a request in [`ping_pong`]: one BHS, like a READ command.
const PING_LEN: usize = 48;
/// Bytes of an answer in [`ping_pong`]: a Data-In header and 4 KiB of data.
const PONG_LEN: usize = 48 + 4096;

/// The QD1 floor: one 48-byte request and one 4144-byte answer at a time
/// over loopback (the shape of a 4K READ at queue depth 1), for `secs`,
/// answerer pinned to `server_cpu`, asker to `client_cpu`. Returns the
/// median round trip in microseconds.
pub fn ping_pong(secs: Duration, server_cpu: Option<usize>, client_cpu: Option<usize>) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        pin(server_cpu);
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut req = [0u8; PING_LEN];
        let answer = vec![0x5au8; PONG_LEN];
        while s.read_exact(&mut req).is_ok() {
            s.write_all(&answer)?;
        }
        Ok(())
    });
    let client = std::thread::spawn(move || -> std::io::Result<f64> {
        pin(client_cpu);
        let mut c = TcpStream::connect(addr)?;
        c.set_nodelay(true)?;
        let req = [1u8; PING_LEN];
        let mut answer = vec![0u8; PONG_LEN];
        let mut lat = Vec::with_capacity(1 << 16);
        let t0 = Instant::now();
        while t0.elapsed() < secs {
            let t = Instant::now();
            c.write_all(&req)?;
            c.read_exact(&mut answer)?;
            lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        let m = crate::stats::MinMedMax::of(&lat).map_or(0.0, |m| m.median);
        Ok(m)
    });
    let p50 = client.join().map_err(|_| crate::berr!("ping-pong client panicked"))??;
    let _ = server.join();
    Ok(p50)
}

#[cfg(test)]
mod tests {
    #[test]
    fn streams_something() {
        let mbps = super::measure(std::time::Duration::from_millis(200), None, None).unwrap();
        assert!(mbps > 1.0, "{mbps}");
    }

    #[test]
    fn ping_pong_has_a_latency() {
        let p50 = super::ping_pong(std::time::Duration::from_millis(100), None, None).unwrap();
        assert!(p50 > 0.0 && p50 < 100_000.0, "{p50}");
    }
}
