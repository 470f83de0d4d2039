//! `rvs_web { ... }`, an rvs extension at the top level of keepalived.conf: the monitor's
//! settings, as the `--web*` options give them (an option given on the command line wins).
//! keepalived itself would warn about the unknown keyword and go on.
//!
//! ```text
//! rvs_web {
//!     listen 198.18.0.1:8443      # or :8443
//!     users /etc/rvs/web-users
//!     cert /etc/rvs/web.pem       # with key; without both, a self-signed one
//!     key /etc/rvs/web.key
//!     session_idle 900
//! }
//! ```

use std::path::PathBuf;

use super::{config::WebBlock, diag::ConfigError, global::single, parse::Ctx, tree::Node, value};

pub(super) fn parse(ctx: &mut Ctx, node: &Node) -> Result<WebBlock, ConfigError> {
    value::Args::new(node).finish_header(&mut ctx.warnings);
    let mut w = WebBlock::default();
    for n in ctx.block(node)? {
        match n.key.text.as_str() {
            "listen" => {
                let mut a = value::Args::new(n);
                let word = a.required("[ADDR]:PORT")?;
                w.listen = Some(
                    crate::daemon::web::parse_listen(&word.text)
                        .map_err(|e| ConfigError::at(&word.pos, e))?,
                );
                a.finish(&mut ctx.warnings);
            }
            "users" => w.users = Some(PathBuf::from(single(ctx, n, "a file")?)),
            "cert" => w.cert = Some(PathBuf::from(single(ctx, n, "a file")?)),
            "key" => w.key = Some(PathBuf::from(single(ctx, n, "a file")?)),
            "session_idle" => {
                let mut a = value::Args::new(n);
                w.session_idle = Some(value::timer(a.required("seconds")?, "session_idle")?);
                a.finish(&mut ctx.warnings);
            }
            _ => ctx.unknown(n),
        }
    }
    if w.cert.is_some() != w.key.is_some() {
        return Err(ConfigError::at(
            &node.key.pos,
            "rvs_web: cert and key go together",
        ));
    }
    if w.listen.is_none() {
        return Err(ConfigError::at(
            &node.key.pos,
            "rvs_web needs 'listen [ADDR]:PORT'",
        ));
    }
    Ok(w)
}
