//! keepalived.conf: the lexer and generic block tree (with `include` and positions for every
//! token), the typed configuration with keepalived's defaults, and its translation into the
//! services, real servers and checkers rvsd runs.
//!
//! ```no_run
//! let cfg = rvs::keepalived::load("/etc/keepalived/keepalived.conf".as_ref())?;
//! for w in &cfg.warnings {
//!     eprintln!("{w}"); // FILE:LINE: unknown keyword 'x'
//! }
//! let services = rvs::keepalived::desired_services(&cfg);
//! # Ok::<(), rvs::keepalived::ConfigError>(())
//! ```
//!
//! Errors (malformed values, unbalanced braces, missing arguments) stop the load with
//! `FILE:LINE:COL: message`; what keepalived only logs (unknown keywords, an `include` that
//! matches no file or cannot be read, keywords rvs does not implement, VRRP blocks) becomes a
//! warning `FILE:LINE: message`.
//!
//! Where rvs reads differently from keepalived, on purpose:
//! - the first error stops the load (keepalived logs it and goes on with what it understood);
//!   an unknown scheduler is an error here, not left for the kernel to refuse;
//! - any Unicode whitespace separates words, so configurations copied from web pages with
//!   non-breaking spaces read as their authors meant; a `{` may stand alone on the line after
//!   its keyword;
//! - the checked include variants (`includer`, `includea`, ...) act as plain `include`; globs
//!   follow the glob crate, without csh brace expansion;
//! - parameter substitution (`$NAME=...`), conditional lines (`@name`) and sequence blocks are
//!   not read (they come out as unknown keywords);
//! - `persistence_timeout 0` means not persistent.

pub mod bgp;
mod checker;
mod cluster;
mod config;
mod desired;
mod diag;
mod dump;
mod global;
pub mod l7;
mod lexer;
mod parse;
mod tree;
mod value;
mod virtual_server;
mod vrrp;
mod web;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use cluster::forwarded_services;
pub use config::*;
pub use desired::{
    desired_services, expand, l7_pool_service, mail_settings, router_id, service_name,
};
pub use diag::{ConfigError, Diagnostic, Pos};
pub use dump::dump;
pub use value::Netmask;

pub use crate::check::{DesiredDest, DesiredService, SorryServer};

/// Reads a keepalived.conf and the files it includes.
pub fn load(path: &Path) -> Result<KeepalivedConfig, ConfigError> {
    let mut warnings = Vec::new();
    let tokens = lexer::lex_file(path, &mut warnings)?;
    finish(tokens, warnings)
}

/// Reads configuration text as if it were the file `name` (includes resolve relative to its
/// directory).
pub fn parse_str(name: &str, text: &str) -> Result<KeepalivedConfig, ConfigError> {
    let mut warnings = Vec::new();
    let tokens = lexer::lex_str(name, text, &mut warnings)?;
    finish(tokens, warnings)
}

fn finish(
    tokens: Vec<lexer::Token>,
    warnings: Vec<Diagnostic>,
) -> Result<KeepalivedConfig, ConfigError> {
    let nodes = tree::build(tokens)?;
    let cfg = parse::parse(&nodes, warnings)?;
    desired::check_unique(&cfg)?;
    Ok(cfg)
}
