//! Values as keepalived reads them: addresses, ports, integers with ranges, timers (seconds with
//! a fraction), booleans, and the helpers that fetch a statement's arguments with a positioned
//! error when one is missing or malformed.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::{
    diag::{ConfigError, Diagnostic},
    tree::{Node, Word},
};

/// The arguments of a statement, read in order.
pub(super) struct Args<'a> {
    node: &'a Node,
    next: usize,
}

impl<'a> Args<'a> {
    pub fn new(node: &'a Node) -> Args<'a> {
        Args { node, next: 0 }
    }

    /// The next argument, or an error at the keyword naming what was expected.
    pub fn required(&mut self, what: &str) -> Result<&'a Word, ConfigError> {
        match self.node.args.get(self.next) {
            Some(w) => {
                self.next += 1;
                Ok(w)
            }
            None => Err(ConfigError::at(
                &self.node.key.pos,
                format!("'{}' needs {what}", self.node.key.text),
            )),
        }
    }

    pub fn optional(&mut self) -> Option<&'a Word> {
        let w = self.node.args.get(self.next)?;
        self.next += 1;
        Some(w)
    }

    pub fn peek(&self) -> Option<&'a Word> {
        self.node.args.get(self.next)
    }

    /// Warns about arguments nobody read and a block where none belongs (keepalived ignores
    /// both).
    pub fn finish(self, warnings: &mut Vec<Diagnostic>) {
        if let Some(b) = &self.node.block {
            warnings.push(Diagnostic::new(
                &b.open,
                format!("block after '{}' ignored", self.node.key.text),
            ));
        }
        self.finish_header(warnings);
    }

    /// Warns about arguments nobody read, for a keyword that opens a block.
    pub fn finish_header(self, warnings: &mut Vec<Diagnostic>) {
        if let Some(extra) = self.node.args.get(self.next) {
            warnings.push(Diagnostic::new(
                &extra.pos,
                format!(
                    "extra argument '{}' after '{}' ignored",
                    extra.text, self.node.key.text
                ),
            ));
        }
    }
}

fn invalid(word: &Word, what: &str, expected: &str) -> ConfigError {
    ConfigError::at(
        &word.pos,
        format!("invalid {what} '{}' (expected {expected})", word.text),
    )
}

pub(super) fn ip(word: &Word) -> Result<IpAddr, ConfigError> {
    word.text
        .parse()
        .map_err(|_| invalid(word, "IP address", "an IPv4 or IPv6 address"))
}

pub(super) fn port(word: &Word) -> Result<u16, ConfigError> {
    word.text
        .parse()
        .map_err(|_| invalid(word, "port", "0..65535"))
}

pub(super) fn int<T>(word: &Word, what: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match word.text.parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(invalid(word, what, &format!("an integer {min}..{max}"))),
    }
}

/// A time in seconds, with up to microsecond fraction (`2.5`, `3`).
pub(super) fn timer(word: &Word, what: &str) -> Result<Duration, ConfigError> {
    let bad = || invalid(word, what, "seconds, e.g. 3 or 0.5");
    let text = word.text.as_str();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(bad());
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    // Keep timers within what tokio's timers take comfortably (a bit over a year).
    if secs > 1 << 25 {
        return Err(bad());
    }
    Ok(Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// keepalived's <BOOL>: on|off|true|false|yes|no; a bare keyword means true.
pub(super) fn boolean(node: &Node, warnings: &mut Vec<Diagnostic>) -> Result<bool, ConfigError> {
    let mut args = Args::new(node);
    let value = match args.optional() {
        None => true,
        Some(w) => match w.text.to_ascii_lowercase().as_str() {
            "on" | "true" | "yes" => true,
            "off" | "false" | "no" => false,
            _ => return Err(invalid(w, "boolean", "on|off|true|false|yes|no")),
        },
    };
    args.finish(warnings);
    Ok(value)
}

/// A dotted IPv4 netmask or a prefix length (as persistence_granularity takes either).
pub(super) fn netmask(word: &Word) -> Result<Netmask, ConfigError> {
    if let Ok(mask) = word.text.parse::<Ipv4Addr>() {
        return Ok(Netmask::V4(mask));
    }
    match word.text.trim_start_matches('/').parse::<u8>() {
        Ok(n) if n <= 128 => Ok(Netmask::Prefix(n)),
        _ => Err(invalid(
            word,
            "netmask",
            "a dotted IPv4 mask or a prefix length 0..128",
        )),
    }
}

/// persistence_granularity as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netmask {
    V4(Ipv4Addr),
    Prefix(u8),
}

/// A hex string as UDP_CHECK takes it: free format, whitespace separates groups, read in pairs
/// from the left, an odd last digit standing alone (`Ab12f 3 456` = AB 12 0F 03 45 06). With
/// `wildcards`, X stands for any nibble. Each byte comes with the mask of the bits that count.
pub(super) fn hex_pattern(words: &[Word], wildcards: bool) -> Result<Vec<(u8, u8)>, ConfigError> {
    let mut out = Vec::new();
    for word in words {
        let mut nibbles: Vec<(u8, u8)> = Vec::new();
        for c in word.text.chars() {
            let nibble = match c {
                'x' | 'X' if wildcards => (0, 0),
                c => match c.to_digit(16) {
                    Some(v) => (v as u8, 0xf),
                    None => return Err(invalid(word, "hex string", "hex digits")),
                },
            };
            nibbles.push(nibble);
        }
        for pair in nibbles.chunks(2) {
            match pair {
                [(hv, hm), (lv, lm)] => out.push(((hv << 4) | lv, (hm << 4) | lm)),
                [(v, m)] => out.push((*v, 0xf0 | m)),
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keepalived::diag::Pos;

    fn w(text: &str) -> Word {
        Word {
            text: text.into(),
            pos: Pos {
                file: "f".into(),
                line: 1,
                col: 1,
            },
        }
    }

    #[test]
    fn timers() {
        assert_eq!(timer(&w("3"), "t").unwrap(), Duration::from_secs(3));
        assert_eq!(
            timer(&w("2.71828"), "t").unwrap(),
            Duration::from_micros(2_718_280)
        );
        assert_eq!(timer(&w(".5"), "t").unwrap(), Duration::from_millis(500));
        assert!(timer(&w("-1"), "t").is_err());
        assert!(timer(&w("1s"), "t").is_err());
        assert!(timer(&w("."), "t").is_err());
    }

    #[test]
    fn hex() {
        let words = [w("Ab12f"), w("3"), w("456"), w("546443123")];
        let bytes: Vec<u8> = hex_pattern(&words, false)
            .unwrap()
            .iter()
            .map(|b| b.0)
            .collect();
        // The example of keepalived.conf(5).
        assert_eq!(
            bytes,
            [
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ]
        );
        assert_eq!(hex_pattern(&[w("aX")], true).unwrap(), [(0xa0, 0xf0)]);
    }
}
