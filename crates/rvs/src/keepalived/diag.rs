//! Where a token came from, and the two kinds of findings: errors, which stop the load, and
//! warnings, which keepalived logs and goes on (unknown keywords, includes that match nothing).

use std::{fmt, sync::Arc};

/// A place in a configuration file: the file as it was named when opened (the including file's
/// directory joined with the include pattern for included files), 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    /// Column in characters, 1-based.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A configuration that cannot be used. Displays as `FILE:LINE:COL: message`, or `FILE: message`
/// when the file itself could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Arc<str>,
    /// 0 when the error is about the whole file (it could not be read).
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl ConfigError {
    pub fn at(pos: &Pos, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: pos.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    pub fn file(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// A warning: the configuration is used, but part of it was skipped or is not active.
/// Displays as `FILE:LINE: message`, the form keepalived logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl Diagnostic {
    pub fn new(pos: &Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            pos: pos.clone(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.file, self.pos.line, self.message)
    }
}
