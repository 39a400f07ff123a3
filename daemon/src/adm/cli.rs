//! `shardtgtadm` command line → a [`Request`] (or a local action). Hand
//! parsed: positional words, then `--flag [value]` options. A usage error
//! is a [`Usage`] (exit code 2); it never connects anywhere.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::admin::protocol::{Request, DEFAULT_SOCKET};

/// Usage text.
pub const USAGE: &str = "\
Usage: shardtgtadm [--socket PATH] [--json] COMMAND

Commands:
  target new NAME [--tid N] [--alias A]
  target delete TARGET [--force]
  target show [TARGET]
  lun new TARGET LUN --backend ram|null|file|rdwr [--size S] [--path P]
          [--block-size 512|4096] [--read-only] [--write-cache on|off]
          [--direct] [--workers N] [--serial S] [--vendor V] [--product P]
  lun delete TARGET LUN
  lun update TARGET LUN [--read-only on|off] [--write-cache on|off]
  lun resize TARGET LUN SIZE            (shrink: only with nothing in use past the new end)
  portal add ADDRESS [--tpgt N]         (\"10.0.0.1:3260\", \"[::]:3260\")
  portal remove ADDRESS
  fault set TARGET LUN RULE...          (fault LUNs: OP:LBA_RANGE:ERRNO[:once],
                                         e.g. read:100-199:EIO, write:*:ENOSPC:once)
  fault clear TARGET LUN
  alua set TARGET TPGT STATE            (active-optimized, active-non-optimized,
                                         standby, unavailable, transitioning)
  acl bind TARGET RULE                  (initiator name, address, CIDR or ALL)
  acl unbind TARGET RULE
  chap account new USER SECRET          (SECRET `-`: read it from stdin)
  chap account delete USER
  chap bind TARGET USER [--outgoing]
  chap unbind TARGET USER [--outgoing]
  chap discovery bind USER [--outgoing]
  chap discovery unbind USER [--outgoing]
  session list
  session logout TSIH
  stats
  config show | config save | config reload
  tgtadm --lld iscsi --mode MODE --op OP ...   (tgt-compatible form)
  import-tgt TARGETS.CONF [--output FILE]

TARGET is an iSCSI name or a tid. Exit codes: 0 ok, 1 error, 2 usage.
";

/// A usage error (exit code 2).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Usage(pub String);

/// What to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Send a request and print its answer.
    Send(Request),
    /// tgtadm-compatible form (arguments after `tgtadm`).
    Tgtadm(Vec<String>),
    /// Convert a tgt targets.conf.
    ImportTgt {
        /// Input.
        file: PathBuf,
        /// Output (stdout when absent).
        output: Option<PathBuf>,
    },
    /// Print the usage.
    Help,
}

/// Parsed command line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Cli {
    /// Admin socket.
    pub socket: PathBuf,
    /// Print JSON.
    pub json: bool,
    /// What to do.
    pub action: Action,
}

/// Options that take no value.
const FLAGS: &[&str] = &["--force", "--outgoing", "--direct", "--json"];

/// Split words into positionals and `--name value` options. `--read-only`
/// takes a value only when the next word is on/off/true/false/yes/no/1/0.
fn split(args: &[String]) -> Result<(Vec<String>, HashMap<String, String>), Usage> {
    let mut pos = Vec::new();
    let mut opts = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(name) = a.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (name.to_string(), None),
            };
            let key = format!("--{name}");
            let value = if let Some(v) = inline {
                v
            } else if FLAGS.contains(&key.as_str()) {
                "true".into()
            } else if key == "--read-only" || key == "--write-cache" {
                match args.get(i + 1).map(|s| s.to_ascii_lowercase()) {
                    Some(v) if parse_bool(&v).is_some() => {
                        i += 1;
                        v
                    }
                    _ if key == "--read-only" => "true".into(),
                    _ => return Err(Usage(format!("{key} needs on or off"))),
                }
            } else {
                i += 1;
                args.get(i).cloned().ok_or_else(|| Usage(format!("{key} needs a value")))?
            };
            opts.insert(name, value);
        } else {
            pos.push(a.clone());
        }
        i += 1;
    }
    Ok((pos, opts))
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

struct Opts(HashMap<String, String>);

impl Opts {
    fn take(&mut self, k: &str) -> Option<String> {
        self.0.remove(k)
    }
    fn bool(&mut self, k: &str) -> Result<Option<bool>, Usage> {
        self.take(k).map(|v| parse_bool(&v).ok_or_else(|| Usage(format!("--{k}: `{v}` is not on/off")))).transpose()
    }
    fn num<T: std::str::FromStr>(&mut self, k: &str) -> Result<Option<T>, Usage> {
        self.take(k).map(|v| v.parse().map_err(|_| Usage(format!("--{k}: `{v}` is not a number")))).transpose()
    }
    fn done(self) -> Result<(), Usage> {
        match self.0.keys().next() {
            Some(k) => Err(Usage(format!("unknown option --{k} for this command (try --help)"))),
            None => Ok(()),
        }
    }
}

fn lun_arg(s: &str) -> Result<u16, Usage> {
    s.parse().map_err(|_| Usage(format!("LUN `{s}` is not a number 0..=16383")))
}

/// Parse `shardtgtadm` arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Cli, Usage> {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut json = false;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        match args[i].as_str() {
            "--socket" => {
                i += 1;
                socket = PathBuf::from(args.get(i).ok_or_else(|| Usage("--socket needs a path".into()))?);
            }
            "--json" => json = true,
            "-h" | "--help" => return Ok(Cli { socket, json, action: Action::Help }),
            o => return Err(Usage(format!("unknown option {o} (try --help)"))),
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.first().map(String::as_str) == Some("tgtadm") {
        return Ok(Cli { socket, json, action: Action::Tgtadm(rest[1..].to_vec()) });
    }
    let (pos, opts) = split(rest)?;
    let mut o = Opts(opts);
    if o.take("json").is_some() {
        json = true;
    }
    if let Some(s) = o.take("socket") {
        socket = PathBuf::from(s);
    }
    let p: Vec<&str> = pos.iter().map(String::as_str).collect();
    let req = match p.as_slice() {
        [] => return Ok(Cli { socket, json, action: Action::Help }),
        ["help"] => return Ok(Cli { socket, json, action: Action::Help }),
        ["import-tgt", file] => {
            let output = o.take("output").map(PathBuf::from);
            o.done()?;
            return Ok(Cli { socket, json, action: Action::ImportTgt { file: PathBuf::from(file), output } });
        }
        ["target", "new", name] => {
            Request::TargetNew { name: name.to_string(), tid: o.num("tid")?, alias: o.take("alias") }
        }
        ["target", "delete", t] => Request::TargetDelete { target: t.to_string(), force: o.take("force").is_some() },
        ["target", "show"] => Request::TargetShow { target: None },
        ["target", "show", t] => Request::TargetShow { target: Some(t.to_string()) },
        ["lun", "new", t, lun] => Request::LunNew {
            target: t.to_string(),
            lun: lun_arg(lun)?,
            backend: o.take("backend").ok_or_else(|| Usage("lun new needs --backend ram|null|file|rdwr".into()))?,
            size: o.take("size"),
            path: o.take("path"),
            block_size: o.num("block-size")?,
            read_only: o.bool("read-only")?,
            write_cache: o.bool("write-cache")?,
            direct: o.bool("direct")?,
            workers: o.num("workers")?,
            serial: o.take("serial"),
            vendor: o.take("vendor"),
            product: o.take("product"),
        },
        ["lun", "delete", t, lun] => Request::LunDelete { target: t.to_string(), lun: lun_arg(lun)? },
        ["lun", "update", t, lun] => Request::LunUpdate {
            target: t.to_string(),
            lun: lun_arg(lun)?,
            read_only: o.bool("read-only")?,
            write_cache: o.bool("write-cache")?,
        },
        ["lun", "resize", t, lun, size] => {
            Request::LunResize { target: t.to_string(), lun: lun_arg(lun)?, size: size.to_string() }
        }
        ["portal", "add", a] => Request::PortalAdd { address: a.to_string(), tpgt: o.num("tpgt")? },
        ["portal", "remove", a] => Request::PortalRemove { address: a.to_string() },
        ["fault", "set", t, lun, rules @ ..] if !rules.is_empty() => Request::FaultSet {
            target: t.to_string(),
            lun: lun_arg(lun)?,
            rules: rules.iter().map(|r| r.to_string()).collect(),
        },
        ["fault", "clear", t, lun] => {
            Request::FaultSet { target: t.to_string(), lun: lun_arg(lun)?, rules: Vec::new() }
        }
        ["alua", "set", t, g, s] => Request::AluaSet {
            target: t.to_string(),
            tpgt: g.parse().map_err(|_| Usage(format!("`{g}` is not a portal group tag (1..=65535)")))?,
            state: s.to_string(),
        },
        ["acl", "bind", t, r] => Request::AclBind { target: t.to_string(), rule: r.to_string() },
        ["acl", "unbind", t, r] => Request::AclUnbind { target: t.to_string(), rule: r.to_string() },
        ["chap", "account", "new", u, s] => {
            let secret = if *s == "-" {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(|e| Usage(format!("reading the secret: {e}")))?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                s.to_string()
            };
            Request::AccountNew { user: u.to_string(), secret }
        }
        ["chap", "account", "delete", u] => Request::AccountDelete { user: u.to_string() },
        ["chap", "discovery", "bind", u] => {
            Request::ChapBind { target: None, user: u.to_string(), outgoing: o.take("outgoing").is_some() }
        }
        ["chap", "discovery", "unbind", u] => {
            Request::ChapUnbind { target: None, user: u.to_string(), outgoing: o.take("outgoing").is_some() }
        }
        ["chap", "bind", t, u] => Request::ChapBind {
            target: Some(t.to_string()),
            user: u.to_string(),
            outgoing: o.take("outgoing").is_some(),
        },
        ["chap", "unbind", t, u] => Request::ChapUnbind {
            target: Some(t.to_string()),
            user: u.to_string(),
            outgoing: o.take("outgoing").is_some(),
        },
        ["session", "list"] => Request::SessionList,
        ["session", "logout", t] => {
            Request::SessionLogout { tsih: t.parse().map_err(|_| Usage(format!("TSIH `{t}` is not a number")))? }
        }
        ["stats"] => Request::Stats,
        ["config", "show"] => Request::ConfigShow,
        ["config", "save"] => Request::ConfigSave,
        ["config", "reload"] => Request::ConfigReload,
        [w, ..] => {
            let known = ["target", "lun", "portal", "acl", "chap", "session", "stats", "config", "import-tgt"];
            return Err(Usage(if known.contains(w) {
                format!("wrong arguments for `{}` (try --help)", p.join(" "))
            } else {
                format!("unknown command `{w}` (try --help)")
            }));
        }
    };
    o.done()?;
    Ok(Cli { socket, json, action: Action::Send(req) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Cli, Usage> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn req(s: &str) -> Request {
        match p(s).unwrap().action {
            Action::Send(r) => r,
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            req("target new iqn.2026-11.a:b --tid 3"),
            Request::TargetNew { name: "iqn.2026-11.a:b".into(), tid: Some(3), alias: None }
        );
        assert!(matches!(
            req("lun new 1 0 --backend ram --size 1G --read-only --write-cache off"),
            Request::LunNew { lun: 0, read_only: Some(true), write_cache: Some(false), .. }
        ));
        assert_eq!(
            req("lun update 1 0 --read-only off"),
            Request::LunUpdate { target: "1".into(), lun: 0, read_only: Some(false), write_cache: None }
        );
        assert_eq!(
            req("chap discovery bind u --outgoing"),
            Request::ChapBind { target: None, user: "u".into(), outgoing: true }
        );
        assert_eq!(req("session logout 7"), Request::SessionLogout { tsih: 7 });
        assert_eq!(req("config reload"), Request::ConfigReload);
        let c = p("--socket /x.sock --json target show").unwrap();
        assert!(c.json);
        assert_eq!(c.socket, PathBuf::from("/x.sock"));
        assert!(matches!(p("tgtadm --mode target --op show").unwrap().action, Action::Tgtadm(v) if v.len() == 4));
        assert!(matches!(p("import-tgt /etc/tgt/targets.conf").unwrap().action, Action::ImportTgt { .. }));
    }

    #[test]
    fn usage_errors() {
        assert!(p("frob").unwrap_err().0.contains("unknown command"));
        assert!(p("target new").unwrap_err().0.contains("wrong arguments"));
        assert!(p("lun new 1 0").unwrap_err().0.contains("--backend"));
        assert!(p("lun new 1 x --backend ram").unwrap_err().0.contains("not a number"));
        assert!(p("target show --bogus 1").unwrap_err().0.contains("unknown option --bogus"));
        assert!(p("lun update 1 0 --write-cache").unwrap_err().0.contains("on or off"));
        assert!(p("session logout abc").is_err());
    }
}
