//! The `fault` backend: another backend wrapped in an error injector, like
//! Linux dm-flakey / dm-error. Rules say which operation (read, write,
//! flush, unmap) on which block range fails with which errno, once or until
//! cleared; everything else passes through to the wrapped store. For
//! testing multipath failover and initiators' error handling without a
//! failing disk.
//!
//! A failure goes through the one errno mapping ([`crate::errno`]) and is
//! logged like a real one (the first of each errno per LU), so an initiator
//! sees exactly what a real store failing that way would produce. `unmap`
//! rules fail deallocations (UNMAP, WRITE SAME with UNMAP on a store that
//! deallocates; on other stores those are writes of zeros).
//!
//! Rules are set from the configuration (`faults = [...]`) and changed at
//! run time (`shardtgtadm fault set / clear`); every shard's handle sees
//! the same [`FaultRules`]. With no rule the per-I/O cost is one relaxed
//! atomic load; while rules exist each I/O takes a short mutex (this
//! backend is a test tool, not a data path to tune).
//!
//! Rule syntax: `OP:LBA_RANGE:ERRNO[:once]`, with OP `read`, `write`,
//! `flush`, `unmap` or `any`; LBA_RANGE `*` (every block), `N` or `N-M` (inclusive,
//! logical blocks); ERRNO a name (`EIO`, `ENOSPC`, `EROFS`, `EDQUOT`,
//! `EPERM`, `EACCES`, `EBADF`, `EINVAL`, `ENXIO`, `ENOMEM`, `ETIMEDOUT`,
//! `ENODEV`) or a number. A flush covers the whole LU, so flush rules
//! match any range.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::errno::{ErrnoLog, IoFailure};
use crate::{
    Backend, BackendError, BackendOp, BackendStatus, Completion, IoBuf, IoId, IoRequest, ShardBackend, Submit,
    SubmitQueue,
};

/// Most rules one LU may hold.
pub const RULES_MAX: usize = 64;

const ERRNOS: [(&str, i32); 12] = [
    ("EIO", libc::EIO),
    ("ENOSPC", libc::ENOSPC),
    ("EROFS", libc::EROFS),
    ("EDQUOT", libc::EDQUOT),
    ("EPERM", libc::EPERM),
    ("EACCES", libc::EACCES),
    ("EBADF", libc::EBADF),
    ("EINVAL", libc::EINVAL),
    ("ENXIO", libc::ENXIO),
    ("ENOMEM", libc::ENOMEM),
    ("ETIMEDOUT", libc::ETIMEDOUT),
    ("ENODEV", libc::ENODEV),
];

/// One injection rule (see the module documentation for its text form).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FaultRule {
    /// The operation it fails; `None`: every operation.
    pub op: Option<BackendOp>,
    /// First logical block.
    pub first_lba: u64,
    /// Last logical block (inclusive).
    pub last_lba: u64,
    /// The errno the operation fails with.
    pub errno: i32,
    /// Fire once, then disappear.
    pub once: bool,
}

impl FaultRule {
    /// Parse `OP:LBA_RANGE:ERRNO[:once]`; the error is one line saying
    /// what is wrong.
    pub fn parse(s: &str) -> Result<FaultRule, String> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let (op, range, errno, once) = match parts.as_slice() {
            [op, range, errno] => (*op, *range, *errno, false),
            [op, range, errno, "once"] => (*op, *range, *errno, true),
            _ => return Err(format!("fault rule `{s}` is not OP:LBA_RANGE:ERRNO[:once]")),
        };
        let op = match op {
            "read" => Some(BackendOp::Read),
            "write" => Some(BackendOp::Write),
            "flush" => Some(BackendOp::Flush),
            "unmap" => Some(BackendOp::Deallocate),
            "any" => None,
            o => return Err(format!("fault rule `{s}`: operation `{o}` is not read, write, flush, unmap or any")),
        };
        let num = |x: &str| x.parse::<u64>().map_err(|_| format!("fault rule `{s}`: `{x}` is not a block number"));
        let (first_lba, last_lba) = match range {
            "*" => (0, u64::MAX),
            r => match r.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(r)?, num(r)?),
            },
        };
        if first_lba > last_lba {
            return Err(format!("fault rule `{s}`: the range ends before it starts"));
        }
        let errno = match ERRNOS.iter().find(|(n, _)| n.eq_ignore_ascii_case(errno)) {
            Some((_, e)) => *e,
            None => match errno.parse::<i32>() {
                Ok(e) if e > 0 && e < 4096 => e,
                _ => return Err(format!("fault rule `{s}`: `{errno}` is not an errno name or number (1..4095)")),
            },
        };
        Ok(FaultRule { op, first_lba, last_lba, errno, once })
    }

    fn hits(&self, op: BackendOp, first: u64, last: u64) -> bool {
        self.op.is_none_or(|o| o == op)
            && (op == BackendOp::Flush || (first <= self.last_lba && self.first_lba <= last))
    }
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Some(BackendOp::Read) => "read",
            Some(BackendOp::Write) => "write",
            Some(BackendOp::Flush) => "flush",
            Some(BackendOp::Deallocate) => "unmap",
            // Rules name no MapStatus (GET LBA STATUS) operation; `any` covers it.
            Some(BackendOp::MapStatus) | None => "any",
        };
        write!(f, "{op}:")?;
        match (self.first_lba, self.last_lba) {
            (0, u64::MAX) => f.write_str("*")?,
            (a, b) if a == b => write!(f, "{a}")?,
            (a, b) => write!(f, "{a}-{b}")?,
        }
        match ERRNOS.iter().find(|(_, e)| *e == self.errno) {
            Some((n, _)) => write!(f, ":{n}")?,
            None => write!(f, ":{}", self.errno)?,
        }
        if self.once {
            f.write_str(":once")?;
        }
        Ok(())
    }
}

/// The rules of one fault LU, shared by every shard's handle.
#[derive(Debug, Default)]
pub struct FaultRules {
    count: AtomicUsize,
    rules: Mutex<Vec<FaultRule>>,
}

impl FaultRules {
    /// Replace every rule (at most [`RULES_MAX`]; the rest are dropped).
    pub fn set(&self, rules: &[FaultRule]) {
        let mut g = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        g.clear();
        g.extend(rules.iter().take(RULES_MAX).copied());
        self.count.store(g.len(), Ordering::Release);
    }

    /// The rules in force (one-shot rules that fired are gone).
    pub fn get(&self) -> Vec<FaultRule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The errno the request fails with, if a rule says so (a one-shot rule
    /// is used up).
    fn check(&self, req: &IoRequest, block_size: u32) -> Option<i32> {
        self.check_range(req.op, req.offset, u64::from(req.len), block_size)
    }

    fn check_range(&self, op: BackendOp, offset: u64, len: u64, block_size: u32) -> Option<i32> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let bs = u64::from(block_size.max(1));
        let first = offset / bs;
        let last = offset.saturating_add(len.max(1) - 1) / bs;
        let mut g = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let i = g.iter().position(|r| r.hits(op, first, last))?;
        let r = g.get(i).copied()?;
        if r.once {
            g.remove(i);
            self.count.store(g.len(), Ordering::Release);
        }
        Some(r.errno)
    }
}

/// A backend wrapped in a fault injector.
#[derive(Debug)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    rules: Arc<FaultRules>,
    log: Arc<ErrnoLog>,
}

impl FaultBackend {
    /// Wrap `inner`; `what` names the LU's store in the error log.
    pub fn new(inner: Arc<dyn Backend>, what: String) -> Self {
        FaultBackend { inner, rules: Arc::default(), log: Arc::new(ErrnoLog::new(what)) }
    }

    /// The synchronous calls (tools, the SANITIZE runner) go through the
    /// same rules as the shards' requests.
    fn sync(&self, op: BackendOp, offset: u64, len: u64) -> Result<(), BackendStatus> {
        match self.rules.check_range(op, offset, len, self.inner.block_size()) {
            Some(e) => Err(self.log.fail(op, offset, IoFailure::Errno(e))),
            None => Ok(()),
        }
    }
}

impl Backend for FaultBackend {
    fn kind(&self) -> &'static str {
        "fault"
    }
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), BackendStatus> {
        self.sync(BackendOp::Read, offset, buf.len() as u64)?;
        self.inner.read(offset, buf)
    }
    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> Result<(), BackendStatus> {
        self.sync(BackendOp::Write, offset, buf.len() as u64)?;
        self.inner.write(offset, buf, fua)
    }
    fn flush(&self) -> Result<(), BackendStatus> {
        self.sync(BackendOp::Flush, 0, 0)?;
        self.inner.flush()
    }
    fn deallocate(&self, offset: u64, len: u64) -> Result<(), BackendStatus> {
        self.sync(BackendOp::Deallocate, offset, len)?;
        self.inner.deallocate(offset, len)
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn open_shard(&self) -> Result<Box<dyn ShardBackend>, BackendError> {
        Ok(Box::new(FaultShard {
            inner: self.inner.open_shard()?,
            rules: self.rules.clone(),
            log: self.log.clone(),
            block_size: self.inner.block_size(),
        }))
    }
    fn fault_rules(&self) -> Option<&FaultRules> {
        Some(&self.rules)
    }
    fn provisioning(&self) -> crate::Provisioning {
        self.inner.provisioning()
    }
    fn resize(&self, size_bytes: u64) -> Result<(), BackendError> {
        self.inner.resize(size_bytes)
    }
}

/// A shard's handle: checks the rules, then hands the request to the
/// wrapped store's own handle (whose io_uring entries and completions pass
/// through untouched).
#[derive(Debug)]
struct FaultShard {
    inner: Box<dyn ShardBackend>,
    rules: Arc<FaultRules>,
    log: Arc<ErrnoLog>,
    block_size: u32,
}

impl ShardBackend for FaultShard {
    fn submit(&mut self, id: IoId, req: &IoRequest, buf: IoBuf, q: &mut dyn SubmitQueue) -> Submit {
        if let Some(e) = self.rules.check(req, self.block_size) {
            return Submit::Done(self.log.fail(req.op, req.offset, IoFailure::Errno(e)));
        }
        self.inner.submit(id, req, buf, q)
    }

    fn complete(&mut self, c: Completion, q: &mut dyn SubmitQueue, done: &mut dyn FnMut(IoId, BackendStatus)) {
        self.inner.complete(c, q, done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create, BackendKind, BackendSpec};

    #[test]
    fn rules_parse_print_and_refuse_garbage() {
        for s in
            ["read:*:EIO", "write:10-19:ENOSPC:once", "flush:*:EROFS", "any:7:ENODEV", "read:0-3:99", "unmap:5-6:EIO"]
        {
            assert_eq!(FaultRule::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(FaultRule::parse("read:5:eio").unwrap().errno, libc::EIO);
        for (bad, why) in [
            ("read:*", "OP:LBA_RANGE"),
            ("trim:*:EIO", "operation `trim`"),
            ("read:x:EIO", "`x` is not a block number"),
            ("read:9-3:EIO", "ends before"),
            ("read:*:EWHAT", "`EWHAT` is not an errno"),
            ("read:*:0", "`0` is not an errno"),
            ("read:*:EIO:twice", "OP:LBA_RANGE"),
        ] {
            let e = FaultRule::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn rules_fail_matching_requests_and_pass_the_rest() {
        let inner = create(&BackendSpec::memory(BackendKind::Ram, 64 << 10, 512)).unwrap();
        let b = FaultBackend::new(inner, "test".into());
        let rules = b.fault_rules().unwrap();
        let set = |v: &[&str]| rules.set(&v.iter().map(|s| FaultRule::parse(s).unwrap()).collect::<Vec<_>>());
        let mut buf = vec![7u8; 1024];
        assert_eq!(b.write(0, &buf, false), Ok(()));
        set(&["read:4-5:EIO", "write:10:ENOSPC:once", "flush:*:EROFS", "write:20:ENODEV"]);
        assert_eq!(b.read(0, &mut buf), Ok(()), "blocks 0-1 untouched");
        assert_eq!(b.read(3 * 512, &mut buf), Err(BackendStatus::MediumError), "blocks 3-4 overlap 4-5");
        assert_eq!(b.write(3 * 512, &buf, false), Ok(()), "a read rule does not fail writes");
        assert_eq!(b.write(10 * 512, &buf[..512], false), Err(BackendStatus::NoSpace));
        assert_eq!(b.write(10 * 512, &buf[..512], false), Ok(()), "one-shot rule used up");
        assert_eq!(b.flush(), Err(BackendStatus::ReadOnly));
        assert_eq!(b.write(20 * 512, &buf[..512], false), Err(BackendStatus::Other(libc::ENODEV)));
        assert_eq!(rules.get().len(), 3);
        // Through a shard handle too.
        let mut h = b.open_shard().unwrap();
        let r = IoRequest { op: BackendOp::Read, offset: 5 * 512, len: 512, fua: false };
        let mut q = NoQueue;
        assert_eq!(
            h.submit(IoId(1), &r, IoBuf::from_slice(&mut buf[..512]), &mut q),
            Submit::Done(BackendStatus::MediumError)
        );
        set(&[]);
        assert_eq!(h.submit(IoId(2), &r, IoBuf::from_slice(&mut buf[..512]), &mut q), Submit::Done(BackendStatus::Ok));
        assert_eq!(b.flush(), Ok(()));
        set(&["unmap:100000000:EIO"]);
        assert_eq!(b.deallocate(0, 1 << 40), Err(BackendStatus::MediumError), "a range beyond 4 GiB still matches");
        assert_eq!(b.deallocate(0, 512), Err(BackendStatus::Other(libc::EOPNOTSUPP)), "else the inner store answers");
        assert_eq!(b.log.errors(), 6);
    }

    struct NoQueue;
    impl SubmitQueue for NoQueue {
        unsafe fn push(&mut self, _e: io_uring::squeue::Entry, _c: u64) -> Result<(), crate::QueueFull> {
            Err(crate::QueueFull)
        }
    }
}
