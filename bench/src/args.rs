//! A small command-line option reader: `--name value`, `--name=value` and
//! `--flag`; every option must be consumed or [`Args::finish`] fails.

use crate::{berr, Result};

/// Options not yet consumed.
#[derive(Debug)]
pub struct Args {
    items: Vec<String>,
}

impl Args {
    /// Wrap the raw arguments (without the program and subcommand names).
    pub fn new(items: Vec<String>) -> Self {
        // Split `--a=b` into `--a b` once, so lookups see one form.
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            match it.split_once('=') {
                Some((k, v)) if k.starts_with("--") => {
                    out.push(k.to_string());
                    out.push(v.to_string());
                }
                _ => out.push(it),
            }
        }
        Args { items: out }
    }

    /// Whether `--name` was given (consumed).
    pub fn flag(&mut self, name: &str) -> bool {
        match self.items.iter().position(|i| i == name) {
            Some(p) => {
                self.items.remove(p);
                true
            }
            None => false,
        }
    }

    /// The value of `--name` (consumed), if given.
    pub fn value(&mut self, name: &str) -> Result<Option<String>> {
        match self.items.iter().position(|i| i == name) {
            Some(p) if p + 1 < self.items.len() => {
                let v = self.items.remove(p + 1);
                self.items.remove(p);
                Ok(Some(v))
            }
            Some(_) => Err(berr!("{name} needs a value")),
            None => Ok(None),
        }
    }

    /// The value of `--name` parsed with `f`, or `default`.
    pub fn parse_or<T>(&mut self, name: &str, default: T, f: impl Fn(&str) -> Result<T>) -> Result<T> {
        match self.value(name)? {
            Some(v) => f(&v).map_err(|e| berr!("{name}: {e}")),
            None => Ok(default),
        }
    }

    /// A number option.
    pub fn num<T: std::str::FromStr>(&mut self, name: &str, default: T) -> Result<T> {
        self.parse_or(name, default, |s| s.parse().map_err(|_| berr!("not a number: {s:?}")))
    }

    /// Fail on anything left over.
    pub fn finish(self) -> Result<()> {
        match self.items.first() {
            Some(i) => Err(berr!("unknown option or stray argument: {i}")),
            None => Ok(()),
        }
    }
}

/// Parse a size: `512`, `4k`, `128K`, `1m`, `1g` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let m = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(berr!("bad size unit in {s:?}")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| berr!("bad size {s:?}"))?;
    n.checked_mul(mult).ok_or_else(|| berr!("size {s:?} too large"))
}

/// Parse seconds, fractions allowed (`5`, `0.5`).
pub fn parse_secs(s: &str) -> Result<std::time::Duration> {
    let v: f64 = s.parse().map_err(|_| berr!("bad duration {s:?}"))?;
    if !(0.0..=1e6).contains(&v) {
        return Err(berr!("duration {s:?} out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("128K").unwrap(), 131072);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert!(parse_size("4x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn options() {
        let mut a = Args::new(["--qd=32", "--json", "--bs", "4k"].map(String::from).to_vec());
        assert_eq!(a.num("--qd", 1u32).unwrap(), 32);
        assert!(a.flag("--json"));
        assert!(!a.flag("--verify"));
        assert_eq!(a.parse_or("--bs", 0, parse_size).unwrap(), 4096);
        a.finish().unwrap();
        let mut a = Args::new(vec!["--bogus".into()]);
        assert!(a.value("--x").unwrap().is_none());
        assert!(a.finish().is_err());
    }
}
