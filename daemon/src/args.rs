//! Command-line arguments of `shardtgtd`. Hand-parsed: six options do not
//! need a parser crate. It never reads files or the environment.

use std::ffi::OsString;
use std::path::PathBuf;

/// Usage text for `--help`.
pub const USAGE: &str = "\
Usage: shardtgtd [OPTIONS]

iSCSI target with one io_uring reactor per CPU.

Options:
  --config PATH   configuration file (default /etc/shardtgt/shardtgt.toml; when
                  that file is absent and --config is not given, a built-in
                  default is served: one 1 GiB RAM LUN on 127.0.0.1:3260)
  --shards N      number of reactor threads (overrides global.shards)
  --log LEVEL     log filter: error, warn, info, debug, trace, or a tracing
                  EnvFilter directive (default: RUST_LOG, else info)
  --admin-socket PATH
                  management socket for shardtgtadm (default
                  /run/shardtgt/shardtgtd.sock; created 0600, directory 0700)
  --check         validate the configuration and exit
  -h, --help      print this help
  -V, --version   print the version

Exit codes: 0 ok, 1 runtime error, 2 configuration or usage error.
Signals: SIGTERM/SIGINT ask initiators to log out, drain and exit 0;
SIGHUP re-reads --config and applies what changed (an invalid file is refused).
";

/// Parsed arguments.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Args {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--shards N`.
    pub shards: Option<usize>,
    /// `--log LEVEL`.
    pub log: Option<String>,
    /// `--admin-socket PATH`.
    pub admin_socket: Option<PathBuf>,
    /// `--check`.
    pub check: bool,
    /// `--help`.
    pub help: bool,
    /// `--version`.
    pub version: bool,
}

impl Args {
    /// Parse arguments (without the program name).
    pub fn parse<I: IntoIterator<Item = OsString>>(it: I) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = it.into_iter();
        while let Some(arg) = it.next() {
            let arg = arg.into_string().map_err(|a| format!("argument {a:?} is not UTF-8"))?;
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> Result<String, String> {
                match inline.clone() {
                    Some(v) => Ok(v),
                    None => it
                        .next()
                        .and_then(|v| v.into_string().ok())
                        .ok_or_else(|| format!("{name} needs a value ({what})")),
                }
            };
            match name.as_str() {
                "--config" | "-c" => a.config = Some(PathBuf::from(value("a file path")?)),
                "--shards" => {
                    let v = value("a number")?;
                    let n: usize = v.parse().map_err(|_| format!("--shards: `{v}` is not a number"))?;
                    if !(1..=1024).contains(&n) {
                        return Err(format!("--shards: {n} is out of range 1..=1024"));
                    }
                    a.shards = Some(n);
                }
                "--log" => a.log = Some(value("a level")?),
                "--admin-socket" => a.admin_socket = Some(PathBuf::from(value("a socket path")?)),
                "--check" => a.check = true,
                "-h" | "--help" => a.help = true,
                "-V" | "--version" => a.version = true,
                other => return Err(format!("unknown argument `{other}` (try --help)")),
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Args, String> {
        Args::parse(v.iter().map(OsString::from))
    }

    #[test]
    fn parses_options() {
        let a = p(&["--config", "/x.toml", "--shards=3", "--log", "debug", "--check"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/x.toml")));
        assert_eq!(a.shards, Some(3));
        assert_eq!(a.log.as_deref(), Some("debug"));
        assert!(a.check);
        assert!(p(&["-h"]).unwrap().help);
        assert!(p(&["--version"]).unwrap().version);
        assert_eq!(p(&[]).unwrap(), Args::default());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(p(&["--shards"]).unwrap_err().contains("needs a value"));
        assert!(p(&["--shards", "x"]).unwrap_err().contains("not a number"));
        assert!(p(&["--shards", "0"]).unwrap_err().contains("out of range"));
        assert!(p(&["--frobnicate"]).unwrap_err().contains("unknown argument"));
    }
}
