//! BIRD 2 (Debian's `bird2`) in a testbed namespace: as the BGP peer of rvsd's speaker, or as
//! the routers of a topology ([`crate::BgpLab`]).
//!
//! [`BirdConfig`] writes a configuration from the common pieces (router id, `protocol device`,
//! `protocol direct`, `protocol kernel` exporting to the namespace's tables so routes really
//! forward, [`BgpPeer`] sessions with IPv4 and/or IPv6 channels, static routes to originate) or
//! takes any text. [`Bird::start`] runs `bird -f` inside a namespace with its own configuration,
//! control socket and log in a fresh directory, waits until the socket answers, and stops exactly
//! that process (by its pid, which it reaps) when dropped. Its queries go through
//! `birdc -s SOCKET`: [`Bird::protocols`] (each BGP session's state), [`Bird::route_for`] and
//! [`Bird::route`] (the best route with its AS path and next hop), and bounded waits on them.
//!
//! BIRD 2's eBGP sessions need explicit filters (`import all; export ...;`): a channel without
//! them imports and exports nothing. [`Channel`] always writes both.

use std::{
    fmt::{self, Write as _},
    fs,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::{Host, Netns, NsProcess, poll::poll_every, spawn_in};

/// How long BIRD gets to answer on its control socket after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `birdc` command may take.
const BIRDC_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped BIRD gets to send its NOTIFICATIONs and exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Between two checks of a wait: each check runs `birdc`.
const WAIT_INTERVAL: Duration = Duration::from_millis(50);
/// Longest path of a Unix socket (sun_path holds 108 bytes with the final NUL).
const MAX_SOCKET_PATH: usize = 100;

/// The BGP hold time of [`BgpPeer::new`], BIRD's smallest (besides 0, no keepalives): a peer that
/// vanishes without closing its connection is noticed within 3 s.
pub const FAST_HOLD_TIME: u16 = 3;

static NEXT_BIRD: AtomicU32 = AtomicU32::new(0);

/// Where BIRDs' directories are made: the temporary directory, or /tmp for a long one.
pub(crate) fn dir_parents() -> Vec<PathBuf> {
    let mut parents = vec![std::env::temp_dir()];
    if parents[0] != Path::new("/tmp") {
        parents.push(PathBuf::from("/tmp"));
    }
    parents
}

/// The directories of BIRDs started by this library (in any process), `<netns>-bird-...`, in
/// `parents`.
pub(crate) fn dirs_in(parents: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for parent in parents {
        let entries = match fs::read_dir(parent) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", parent.display())),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(crate::PREFIX) && name.contains("-bird-") {
                found.push(entry.path());
            }
        }
    }
    Ok(found)
}

/// An address family: of a channel, a kernel table, a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    /// Both, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::Ipv4, Family::Ipv6];

    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The family of a prefix or address written as text (IPv6 has colons).
    pub fn of_text(net: &str) -> Self {
        match net.contains(':') {
            true => Family::Ipv6,
            false => Family::Ipv4,
        }
    }

    /// BIRD's keyword: `ipv4`, `ipv6`.
    pub fn keyword(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }

    /// BIRD's default table of the family, `master4` or `master6`.
    pub fn table(self) -> &'static str {
        match self {
            Family::Ipv4 => "master4",
            Family::Ipv6 => "master6",
        }
    }
}

/// What a channel takes in (`import`) or sends out (`export`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `all`
    All,
    /// `none`
    None,
    /// `where CONDITION`, e.g. `source = RTS_STATIC` or `net ~ [ 198.19.4.0/24 ]`.
    Where(String),
    /// `filter NAME`, a filter defined in the configuration's text ([`BirdConfig::raw`]).
    Named(String),
}

impl Filter {
    /// `where CONDITION`.
    pub fn where_(condition: impl Into<String>) -> Self {
        Filter::Where(condition.into())
    }

    /// `where source = RTS_STATIC`: the static routes of [`BirdConfig::originate`].
    pub fn static_routes() -> Self {
        Filter::where_("source = RTS_STATIC")
    }

    /// `where source = RTS_BGP`: what BGP learned (for `protocol kernel`, so that connected
    /// routes are not written twice).
    pub fn bgp_routes() -> Self {
        Filter::where_("source = RTS_BGP")
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("all"),
            Filter::None => f.write_str("none"),
            Filter::Where(condition) => write!(f, "where {condition}"),
            Filter::Named(name) => write!(f, "filter {name}"),
        }
    }
}

/// One address family of a BGP session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    pub import: Filter,
    pub export: Filter,
    /// `next hop self`: announce this speaker's own address as the next hop (what iBGP needs
    /// when the routers' other links are not known inside the AS; eBGP does it anyway).
    pub next_hop_self: bool,
    /// More lines inside the channel's block, each without its `;`.
    pub extra: Vec<String>,
}

impl Channel {
    pub fn new(import: Filter, export: Filter) -> Self {
        Self {
            import,
            export,
            next_hop_self: false,
            extra: Vec::new(),
        }
    }

    /// `import all; export all;`
    pub fn all() -> Self {
        Self::new(Filter::All, Filter::All)
    }

    /// `import all; export where source = RTS_STATIC;`: a stand-in announcer of what
    /// [`BirdConfig::originate`] adds.
    pub fn announce_static() -> Self {
        Self::new(Filter::All, Filter::static_routes())
    }

    pub fn next_hop_self(mut self) -> Self {
        self.next_hop_self = true;
        self
    }

    /// One more line inside the block, without its `;`.
    pub fn option(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    fn render(&self, family: Family, out: &mut String) {
        let _ = writeln!(out, "  {} {{", family.keyword());
        let _ = writeln!(out, "    import {};", self.import);
        let _ = writeln!(out, "    export {};", self.export);
        if self.next_hop_self {
            out.push_str("    next hop self;\n");
        }
        for line in &self.extra {
            let _ = writeln!(out, "    {line};");
        }
        out.push_str("  };\n");
    }
}

/// One BGP session (`protocol bgp NAME`).
///
/// [`BgpPeer::new`] sets fast timers for tests: hold time 3 s, keepalives every second, and 1 s
/// for BIRD's connect delay, connect retry and error wait (whose default, 60 s to 300 s after a
/// failure, would otherwise keep a restarted peer waiting a minute).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpPeer {
    pub name: String,
    pub local_as: u32,
    /// The local address of the session; BIRD picks the one facing the neighbour if `None`.
    pub local_addr: Option<IpAddr>,
    pub neighbor: IpAddr,
    pub neighbor_as: u32,
    pub ipv4: Option<Channel>,
    pub ipv6: Option<Channel>,
    pub hold_time: u16,
    pub keepalive_time: u16,
    /// Seconds between attempts to connect.
    pub connect_retry_time: u16,
    /// `graceful restart on; graceful restart time N;` (RFC 4724) with `Some(N)`; BIRD's default
    /// (aware: it understands a restarting peer's capability but asks for no time itself) with
    /// `None`.
    pub graceful_restart: Option<u32>,
    /// Only wait for the neighbour to connect.
    pub passive: bool,
    /// `multihop N` instead of a directly connected neighbour.
    pub multihop: Option<u8>,
    /// More lines inside the protocol's block, each without its `;`.
    pub extra: Vec<String>,
}

impl BgpPeer {
    /// A session named `name` from AS `local_as` to `neighbor` in AS `neighbor_as` (iBGP if they
    /// are equal), directly connected, with fast timers and no channel yet.
    pub fn new(name: impl Into<String>, local_as: u32, neighbor: IpAddr, neighbor_as: u32) -> Self {
        Self {
            name: name.into(),
            local_as,
            local_addr: None,
            neighbor,
            neighbor_as,
            ipv4: None,
            ipv6: None,
            hold_time: FAST_HOLD_TIME,
            keepalive_time: 1,
            connect_retry_time: 1,
            graceful_restart: None,
            passive: false,
            multihop: None,
            extra: Vec::new(),
        }
    }

    /// The session's local address.
    pub fn local(mut self, addr: IpAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Carries IPv4 routes with `channel`.
    pub fn ipv4(mut self, channel: Channel) -> Self {
        self.ipv4 = Some(channel);
        self
    }

    /// Carries IPv6 routes with `channel` (multiprotocol BGP, RFC 4760, whichever family the
    /// session runs over).
    pub fn ipv6(mut self, channel: Channel) -> Self {
        self.ipv6 = Some(channel);
        self
    }

    /// Carries both families, each with `channel`.
    pub fn both(self, channel: Channel) -> Self {
        self.ipv4(channel.clone()).ipv6(channel)
    }

    /// Carries the families of `families`, each with `channel`.
    pub fn families(mut self, families: &[Family], channel: &Channel) -> Self {
        for family in families {
            match family {
                Family::Ipv4 => self.ipv4 = Some(channel.clone()),
                Family::Ipv6 => self.ipv6 = Some(channel.clone()),
            }
        }
        self
    }

    pub fn hold_time(mut self, seconds: u16) -> Self {
        self.hold_time = seconds;
        self
    }

    pub fn keepalive_time(mut self, seconds: u16) -> Self {
        self.keepalive_time = seconds;
        self
    }

    /// Graceful restart (RFC 4724) on, with this restart time.
    pub fn graceful_restart(mut self, restart_time: u32) -> Self {
        self.graceful_restart = Some(restart_time);
        self
    }

    pub fn passive(mut self, on: bool) -> Self {
        self.passive = on;
        self
    }

    pub fn multihop(mut self, ttl: u8) -> Self {
        self.multihop = Some(ttl);
        self
    }

    /// One more line inside the block, without its `;`.
    pub fn option(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    /// The `protocol bgp` block.
    pub fn render(&self) -> String {
        let mut out = format!("protocol bgp {} {{\n", self.name);
        match self.local_addr {
            Some(addr) => {
                let _ = writeln!(out, "  local {addr} as {};", self.local_as);
            }
            None => {
                let _ = writeln!(out, "  local as {};", self.local_as);
            }
        }
        let _ = writeln!(out, "  neighbor {} as {};", self.neighbor, self.neighbor_as);
        match self.multihop {
            Some(ttl) => {
                let _ = writeln!(out, "  multihop {ttl};");
            }
            // BIRD takes iBGP neighbours as multihop unless told.
            None => out.push_str("  direct;\n"),
        }
        let _ = writeln!(out, "  hold time {};", self.hold_time);
        let _ = writeln!(out, "  startup hold time {};", self.hold_time);
        let _ = writeln!(out, "  keepalive time {};", self.keepalive_time);
        let _ = writeln!(out, "  connect retry time {};", self.connect_retry_time);
        out.push_str("  connect delay time 1;\n");
        out.push_str("  error wait time 1, 2;\n");
        if let Some(time) = self.graceful_restart {
            out.push_str("  graceful restart on;\n");
            let _ = writeln!(out, "  graceful restart time {time};");
        }
        if self.passive {
            out.push_str("  passive on;\n");
        }
        for line in &self.extra {
            let _ = writeln!(out, "  {line};");
        }
        if let Some(c) = &self.ipv4 {
            c.render(Family::Ipv4, &mut out);
        }
        if let Some(c) = &self.ipv6 {
            c.render(Family::Ipv6, &mut out);
        }
        out.push_str("}\n");
        out
    }
}

/// A BIRD 2 configuration, built piece by piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirdConfig {
    text: String,
}

impl BirdConfig {
    /// The start every configuration needs: logging to stderr (BIRD's log file, see
    /// [`Bird::log`]), the router id, the time formats the parsers here expect, and
    /// `protocol device` (BIRD learns the interfaces through it; direct sessions need them).
    pub fn new(router_id: Ipv4Addr) -> Self {
        let text = format!(
            "log stderr all;\n\
             router id {router_id};\n\
             timeformat protocol iso long;\n\
             timeformat route iso long;\n\
             protocol device {{\n  scan time 10;\n}}\n"
        );
        Self { text }
    }

    /// Any configuration text; the helpers append to it.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// `protocol direct`: the connected subnets of `interfaces` (every interface if empty) as
    /// routes, for BGP to announce.
    pub fn direct(mut self, families: &[Family], interfaces: &[&str]) -> Self {
        self.text.push_str("protocol direct {\n");
        for family in families {
            let _ = writeln!(self.text, "  {};", family.keyword());
        }
        if !interfaces.is_empty() {
            let list: Vec<String> = interfaces.iter().map(|i| format!("\"{i}\"")).collect();
            let _ = writeln!(self.text, "  interface {};", list.join(", "));
        }
        self.text.push_str("}\n");
        self
    }

    /// `protocol kernel` for `family`: writes what `export` passes into the namespace's main
    /// table, so the routes forward packets; learns nothing from it.
    pub fn kernel(mut self, family: Family, export: Filter) -> Self {
        let _ = writeln!(
            self.text,
            "protocol kernel {{\n  scan time 10;\n  {} {{\n    import none;\n    export {export};\n  }};\n}}",
            family.keyword()
        );
        self
    }

    /// [`BirdConfig::kernel`] for both families, with `where source = RTS_BGP`.
    pub fn kernel_bgp(self) -> Self {
        self.kernel(Family::Ipv4, Filter::bgp_routes())
            .kernel(Family::Ipv6, Filter::bgp_routes())
    }

    /// Static routes, one protocol per family (`originate4`, `originate6`), each prefix
    /// `unreachable` here: a stand-in for a speaker that announces prefixes it does not route
    /// (rvsd announcing its VIPs). Export them with [`Channel::announce_static`].
    pub fn originate(mut self, prefixes: &[&str]) -> Self {
        for family in Family::BOTH {
            let mine: Vec<&&str> = prefixes
                .iter()
                .filter(|p| Family::of_text(p) == family)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let name = match family {
                Family::Ipv4 => "originate4",
                Family::Ipv6 => "originate6",
            };
            let _ = writeln!(
                self.text,
                "protocol static {name} {{\n  {};",
                family.keyword()
            );
            for prefix in mine {
                let _ = writeln!(self.text, "  route {prefix} unreachable;");
            }
            self.text.push_str("}\n");
        }
        self
    }

    /// A BGP session.
    pub fn bgp(mut self, peer: &BgpPeer) -> Self {
        self.text.push_str(&peer.render());
        self
    }

    /// Any text (filters, functions, other protocols), appended as it is.
    pub fn raw(mut self, text: &str) -> Self {
        self.text.push_str(text);
        if !text.ends_with('\n') {
            self.text.push('\n');
        }
        self
    }

    /// The configuration as BIRD reads it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for BirdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A running BIRD. Dropping it stops it (SIGTERM, then SIGKILL) and removes its directory (kept,
/// and named on stderr, when the thread is panicking, so a failed test's logs can be read).
#[derive(Debug)]
pub struct Bird {
    name: String,
    // Before `dir`: the process stops before its files go.
    process: Option<NsProcess>,
    dir: PathBuf,
    config: PathBuf,
    socket: PathBuf,
}

impl Bird {
    /// Writes `config` to a fresh directory, checks it (`bird -p`), starts
    /// `bird -f -c CONF -s SOCK -P PID` inside `ns` and waits until its control socket answers.
    /// `name` labels it in messages and its directory's name.
    pub fn start(ns: &Netns, name: &str, config: &str) -> Result<Bird> {
        let n = NEXT_BIRD.fetch_add(1, Ordering::Relaxed);
        let leaf = format!("{}-bird-{name}-{n}", ns.name());
        let mut dir = std::env::temp_dir().join(&leaf);
        if dir.join("bird.ctl").as_os_str().len() > MAX_SOCKET_PATH {
            dir = Path::new("/tmp").join(&leaf);
        }
        if dir.exists() {
            // Our namespace's name is unique within this process: left by a dead one.
            fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot remove stale {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut bird = Bird {
            name: name.to_owned(),
            process: None,
            config: dir.join("bird.conf"),
            socket: dir.join("bird.ctl"),
            dir,
        };
        bird.write_config(config)?;
        let check = Command::new("bird")
            .args(["-p", "-c"])
            .arg(&bird.config)
            .stdin(Stdio::null())
            .output()
            .context("cannot run bird (Debian's bird2; scripts/install-deps installs it)")?;
        if !check.status.success() {
            bail!(
                "BIRD rejects the configuration of {name}: {}\n{}",
                String::from_utf8_lossy(&check.stderr).trim(),
                numbered(config)
            );
        }
        let mut cmd = Command::new("bird");
        cmd.arg("-f")
            .arg("-c")
            .arg(&bird.config)
            .arg("-s")
            .arg(&bird.socket)
            .arg("-P")
            .arg(bird.dir.join("bird.pid"));
        bird.process = Some(spawn_in(ns, &mut cmd, bird.dir.join("bird.log"))?);
        bird.wait_ready()?;
        Ok(bird)
    }

    /// [`Bird::start`] on `host`, named after it.
    pub fn start_on(host: &Host, config: &BirdConfig) -> Result<Bird> {
        Self::start(host.netns(), host.name(), config.text())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let what = format!(
            "BIRD of {} to answer on {}",
            self.name,
            self.socket.display()
        );
        poll_every(WAIT_INTERVAL, START_TIMEOUT, &what, || {
            if let Some(status) = self.process_mut().try_wait()? {
                bail!(
                    "BIRD of {} exited ({status}) at start:\n{}",
                    self.name,
                    self.log().unwrap_or_default()
                );
            }
            if !self.socket.exists() {
                return Ok(None);
            }
            Ok(self.birdc_raw("show status")?.0.success().then_some(()))
        })
    }

    /// What it was started as (its host's name for [`Bird::start_on`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process().pid()
    }

    /// Its control socket, for `birdc -s`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The directory holding its configuration, socket, pid file and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it has logged so far.
    pub fn log(&self) -> Result<String> {
        self.process().log()
    }

    fn process(&self) -> &NsProcess {
        self.process.as_ref().expect("started")
    }

    fn process_mut(&mut self) -> &mut NsProcess {
        self.process.as_mut().expect("started")
    }

    fn write_config(&self, config: &str) -> Result<()> {
        fs::write(&self.config, config)
            .with_context(|| format!("cannot write {}", self.config.display()))
    }

    /// Runs `birdc -s SOCK COMMAND` (with a time limit) and returns its status and output.
    fn birdc_raw(&self, command: &str) -> Result<(ExitStatus, String)> {
        let limit = BIRDC_TIMEOUT.as_secs().to_string();
        let out = Command::new("timeout")
            .args(["-k", "1", &limit, "birdc", "-s"])
            .arg(&self.socket)
            .args(command.split_whitespace())
            .stdin(Stdio::null())
            .output()
            .context("cannot run birdc")?;
        if out.status.code() == Some(124) {
            bail!("birdc {command:?} to {} took over {limit} s", self.name);
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status, text))
    }

    /// Runs a `birdc` command (`show protocols all`, `disable r22`...) and returns its output,
    /// without BIRD's greeting line. Fails if birdc does.
    pub fn birdc(&self, command: &str) -> Result<String> {
        let (status, text) = self.birdc_raw(command)?;
        if !status.success() {
            bail!(
                "birdc {command:?} to {} failed ({status}): {}",
                self.name,
                text.trim()
            );
        }
        Ok(strip_greeting(&text).to_owned())
    }

    /// `show protocols`, parsed.
    pub fn protocols(&self) -> Result<Vec<Protocol>> {
        Ok(parse_protocols(&self.birdc("show protocols")?))
    }

    /// The protocol named `name`, if there is one.
    pub fn protocol(&self, name: &str) -> Result<Option<Protocol>> {
        Ok(self.protocols()?.into_iter().find(|p| p.name == name))
    }

    /// The routes for the longest prefix matching `addr` (an address or a prefix), best first:
    /// `show route for ADDR all`.
    pub fn routes_for(&self, addr: &str) -> Result<Vec<Route>> {
        self.show_routes(&format!("show route for {addr} all"))
    }

    /// The best route for the longest prefix matching `addr` (an address or a prefix).
    pub fn route_for(&self, addr: &str) -> Result<Option<Route>> {
        Ok(best(self.routes_for(addr)?))
    }

    /// The routes for exactly `prefix`, best first: `show route PREFIX all`.
    pub fn routes(&self, prefix: &str) -> Result<Vec<Route>> {
        self.show_routes(&format!("show route {prefix} all"))
    }

    /// The best route for exactly `prefix`.
    pub fn route(&self, prefix: &str) -> Result<Option<Route>> {
        Ok(best(self.routes(prefix)?))
    }

    fn show_routes(&self, command: &str) -> Result<Vec<Route>> {
        let (status, text) = self.birdc_raw(command)?;
        let text = strip_greeting(&text);
        if text.trim() == "Network not found" {
            return Ok(Vec::new());
        }
        if !status.success() {
            bail!(
                "birdc {command:?} to {} failed ({status}): {}",
                self.name,
                text.trim()
            );
        }
        let mut routes = parse_routes(text)?;
        routes.sort_by_key(|r| !r.best);
        Ok(routes)
    }

    /// Calls `check` every 50 ms until it returns `Some`, for at most `timeout`; the error
    /// after the deadline names `what` and ends with BIRD's `show protocols`.
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Bird) -> Result<Option<T>>,
    ) -> Result<T> {
        let full = format!("{what} at {}", self.name);
        poll_every(WAIT_INTERVAL, timeout, &full, || check(self)).map_err(|e| {
            let protocols = self.birdc("show protocols").unwrap_or_default();
            e.context(format!("BIRD of {}'s protocols:\n{protocols}", self.name))
        })
    }

    /// Waits until the BGP protocol `name` is Established.
    pub fn wait_established(&self, name: &str, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, &format!("BGP {name} Established"), |b| {
            Ok(b.protocol(name)?
                .is_some_and(|p| p.is_established())
                .then_some(()))
        })
    }

    /// Waits until every BGP protocol is Established.
    pub fn wait_all_established(&self, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, "every BGP session Established", |b| {
            let protocols = b.protocols()?;
            let bgp = protocols.iter().filter(|p| p.proto == "BGP");
            Ok(bgp.clone().all(Protocol::is_established).then_some(()))
        })
    }

    /// Waits until the best route for `addr` (longest match, see [`Bird::route_for`]) has the AS
    /// path `as_path`, and returns it. The timeout's error shows the last route seen.
    pub fn wait_as_path(&self, addr: &str, as_path: &[u32], timeout: Duration) -> Result<Route> {
        let mut last = None;
        self.wait_until(timeout, &format!("AS path {as_path:?} for {addr}"), |b| {
            let route = b.route_for(addr)?;
            let found = route.as_ref().is_some_and(|r| r.as_path == as_path);
            last = route.clone();
            Ok(route.filter(|_| found))
        })
        .map_err(|e| e.context(format!("the last best route for {addr}: {last:?}")))
    }

    /// Waits until no route covers `addr`.
    pub fn wait_no_route(&self, addr: &str, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, &format!("no route for {addr}"), |b| {
            Ok(b.route_for(addr)?.is_none().then_some(()))
        })
    }

    /// Replaces its configuration with `config` and has it re-read (`birdc configure`); a
    /// configuration it rejects fails this and leaves the running one.
    pub fn reconfigure(&self, config: &str) -> Result<()> {
        self.write_config(config)?;
        let out = self.birdc("configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("BIRD of {} did not reconfigure: {}", self.name, out.trim());
        }
        Ok(())
    }

    /// Stops it with SIGTERM: BIRD closes its sessions with a NOTIFICATION (Cease) and exits;
    /// SIGKILL after 3 s.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.process.take().expect("started").stop(STOP_GRACE)
    }

    /// Kills it with SIGKILL: no NOTIFICATION, the kernel closes its TCP connections (the peers
    /// see the session end at once, as after a crash of the machine's daemon, not of the machine).
    pub fn kill(mut self) -> Result<ExitStatus> {
        self.process.take().expect("started").kill()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        drop(self.process.take());
        if std::thread::panicking() {
            eprintln!(
                "rvs-testbed: keeping BIRD {}'s files in {}",
                self.name,
                self.dir.display()
            );
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("rvs-testbed: cannot remove {}: {e}", self.dir.display());
        }
    }
}

/// One line of `show protocols`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    /// `BGP`, `Kernel`, `Static`, `Device`, `Direct`.
    pub proto: String,
    /// `---` for BGP (its channels have the tables).
    pub table: String,
    /// `up`, `start`, `down`, `flush`.
    pub state: String,
    /// What follows the time: for BGP the session state (`Established`, `Active`, `Connect`,
    /// `Idle`...) and maybe the last error (`Socket: Connection closed`).
    pub info: String,
}

impl Protocol {
    /// The BGP session's state (`Established`, `Active`...): the first word of its info.
    pub fn bgp_state(&self) -> Option<&str> {
        (self.proto == "BGP").then(|| self.info.split_whitespace().next().unwrap_or(""))
    }

    pub fn is_established(&self) -> bool {
        self.bgp_state() == Some("Established")
    }
}

/// One route of `show route ... all`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Route {
    /// The prefix, as BIRD prints it: `198.19.4.0/24`, `2001:db8:4::/64`.
    pub network: String,
    /// `unicast`, `unreachable`, `blackhole`, `prohibited`.
    pub kind: String,
    /// The protocol it came from (the BGP session's name).
    pub protocol: String,
    /// The peer it came from, when BIRD shows it (it does when the next hop is another address).
    pub from: Option<IpAddr>,
    /// Whether BIRD selected it (`*`).
    pub best: bool,
    pub preference: Option<u32>,
    /// The gateway of its first `via` line.
    pub via: Option<IpAddr>,
    /// The interface of its first `via` line, or of `dev IFACE`.
    pub interface: Option<String>,
    /// `BGP.as_path`, nearest AS first (members of an AS_SET in order, without braces).
    pub as_path: Vec<u32>,
    /// `BGP.next_hop`: one address, or for IPv6 the global and the link-local one.
    pub next_hop: Vec<IpAddr>,
    pub local_pref: Option<u32>,
    /// `BGP.origin`: `IGP`, `EGP`, `Incomplete`.
    pub origin: Option<String>,
    /// Every `NAME: VALUE` attribute line (`Type`, `BGP.as_path`, `BGP.community`...).
    pub attributes: Vec<(String, String)>,
}

impl Route {
    /// The value of attribute `name`, as BIRD printed it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn best(routes: Vec<Route>) -> Option<Route> {
    routes.into_iter().find(|r| r.best)
}

/// The text without birdc's first line, `BIRD 2.0.12 ready.`.
fn strip_greeting(text: &str) -> &str {
    match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("BIRD ") => rest,
        _ => text,
    }
}

fn numbered(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("{:4} {l}\n", i + 1))
        .collect()
}

/// Parses `show protocols` (without the greeting).
pub fn parse_protocols(text: &str) -> Vec<Protocol> {
    text.lines()
        .filter(|l| !l.starts_with("Name ") && !l.trim().is_empty())
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, proto, table, state) =
                (words.next()?, words.next()?, words.next()?, words.next()?);
            // Then the time, in one or two words (`2026-01-01 12:00:00`, `12:00:00.123`).
            let rest: Vec<&str> = words
                .skip_while(|w| w.chars().all(|c| c.is_ascii_digit() || ":-.".contains(c)))
                .collect();
            Some(Protocol {
                name: name.to_owned(),
                proto: proto.to_owned(),
                table: table.to_owned(),
                state: state.to_owned(),
                info: rest.join(" "),
            })
        })
        .collect()
}

/// Parses `show route ... all` (without the greeting): header lines start with the network, or
/// for further routes of the same network with spaces; detail lines with a tab.
pub fn parse_routes(text: &str) -> Result<Vec<Route>> {
    let mut routes: Vec<Route> = Vec::new();
    let mut network = String::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            continue;
        }
        if let Some(detail) = line.strip_prefix('\t') {
            let route = routes
                .last_mut()
                .with_context(|| format!("a detail before any route: {line:?}"))?;
            parse_detail(route, detail.trim());
            continue;
        }
        let rest = match line.starts_with(' ') {
            true => line.trim_start(),
            false => {
                let (net, rest) = line
                    .split_once(char::is_whitespace)
                    .with_context(|| format!("not a route: {line:?}"))?;
                network = net.to_owned();
                rest.trim_start()
            }
        };
        routes
            .push(parse_header(&network, rest).with_context(|| format!("not a route: {line:?}"))?);
    }
    Ok(routes)
}

/// `unicast [r22 2026-01-01 12:00:00 from 198.18.25.52] * (100) [AS5i]`
fn parse_header(network: &str, rest: &str) -> Result<Route> {
    let (kind, rest) = rest.split_once(" [").context("no protocol in brackets")?;
    let (inside, after) = rest.split_once(']').context("no closing bracket")?;
    let mut words = inside.split_whitespace();
    let protocol = words.next().context("no protocol")?.to_owned();
    let words: Vec<&str> = words.collect();
    let from = words
        .iter()
        .position(|&w| w == "from")
        .and_then(|i| words.get(i + 1))
        .and_then(|ip| ip.parse().ok());
    let after = after.trim_start();
    let best = after.starts_with('*');
    let preference = after
        .split_once('(')
        .and_then(|(_, p)| p.split(['/', ')']).next())
        .and_then(|p| p.parse().ok());
    let mut route = Route {
        network: network.to_owned(),
        kind: kind.trim().to_owned(),
        protocol,
        from,
        best,
        preference,
        ..Route::default()
    };
    // `unicast` routes carry their gateway on a `via` line; others may say `dev IFACE` here.
    if let Some(dev) = after.split_whitespace().skip_while(|&w| w != "dev").nth(1) {
        route.interface = Some(dev.to_owned());
    }
    Ok(route)
}

fn parse_detail(route: &mut Route, detail: &str) {
    if let Some(via) = detail.strip_prefix("via ") {
        if route.via.is_none() {
            let mut words = via.split_whitespace();
            route.via = words.next().and_then(|ip| ip.parse().ok());
            if words.next() == Some("on") {
                route.interface = words.next().map(str::to_owned);
            }
        }
        return;
    }
    if let Some(dev) = detail.strip_prefix("dev ") {
        route.interface = dev.split_whitespace().next().map(str::to_owned);
        return;
    }
    let Some((name, value)) = detail.split_once(':') else {
        return;
    };
    let (name, value) = (name.trim(), value.trim());
    match name {
        "BGP.as_path" => {
            route.as_path = value
                .split(|c: char| c.is_whitespace() || c == '{' || c == '}' || c == ',')
                .filter_map(|w| w.parse().ok())
                .collect();
        }
        "BGP.next_hop" => {
            route.next_hop = value
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
        }
        "BGP.local_pref" => route.local_pref = value.parse().ok(),
        "BGP.origin" => route.origin = Some(value.to_owned()),
        _ => {}
    }
    route.attributes.push((name.to_owned(), value.to_owned()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Table master4:
198.19.4.0/24        unicast [r31 2026-12-02 19:44:41] * (100) [AS5i]
\tvia 198.18.33.31 on eth1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 1 5
\tBGP.next_hop: 198.18.33.31
\tBGP.local_pref: 100
                     unicast [r22 2026-12-02 19:44:42] (100) [AS5i]
\tvia 198.18.23.22 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 2 1 5
\tBGP.next_hop: 198.18.23.22
\tBGP.local_pref: 100

Table master6:
2001:db8:4::/64      unicast [r22 2026-12-02 19:44:41 from 198.18.23.22] * (100) [AS5i]
\tvia 2001:db8:23::22 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 2 {5 7}
\tBGP.next_hop: 2001:db8:23::22 fe80::1
\tBGP.local_pref: 100
198.19.4.0/24        unreachable [originate4 2026-12-02 19:44:39] * (200)
\tType: static univ
";

    #[test]
    fn routes_parse_with_their_paths_and_gateways() {
        let routes = parse_routes(ROUTES).unwrap();
        assert_eq!(routes.len(), 4);
        let r = &routes[0];
        assert_eq!(
            (r.network.as_str(), r.kind.as_str(), r.protocol.as_str()),
            ("198.19.4.0/24", "unicast", "r31")
        );
        assert!(r.best);
        assert_eq!(r.preference, Some(100));
        assert_eq!(r.as_path, [1, 5]);
        assert_eq!(r.via, Some("198.18.33.31".parse().unwrap()));
        assert_eq!(r.interface.as_deref(), Some("eth1"));
        assert_eq!(r.local_pref, Some(100));
        assert_eq!(r.origin.as_deref(), Some("IGP"));
        assert_eq!(r.attribute("Type"), Some("BGP univ"));
        let alt = &routes[1];
        assert_eq!(alt.network, "198.19.4.0/24");
        assert!(!alt.best);
        assert_eq!(alt.as_path, [2, 1, 5]);
        let v6 = &routes[2];
        assert_eq!(v6.network, "2001:db8:4::/64");
        assert_eq!(v6.from, Some("198.18.23.22".parse().unwrap()));
        assert_eq!(v6.as_path, [2, 5, 7]);
        assert_eq!(v6.next_hop.len(), 2);
        let st = &routes[3];
        assert_eq!((st.kind.as_str(), st.best), ("unreachable", true));
        assert_eq!(st.preference, Some(200));
        assert!(st.as_path.is_empty());
    }

    #[test]
    fn protocols_parse_with_their_bgp_state() {
        let text = "Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-12-02 19:44:39  
kernel1    Kernel     master4    up     12:00:01.123
lb1        BGP        ---        up     2026-12-02 19:44:40  Established   
r31        BGP        ---        start  2026-12-02 19:44:42  Active        Socket: Connection closed
";
        let p = parse_protocols(text);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].bgp_state(), None);
        assert_eq!(p[1].table, "master4");
        assert_eq!(p[1].info, "");
        assert!(p[2].is_established());
        assert_eq!(p[3].bgp_state(), Some("Active"));
        assert_eq!(p[3].info, "Active Socket: Connection closed");
        assert_eq!(p[3].state, "start");
    }

    #[test]
    fn a_session_renders_fast_timers_and_explicit_filters() {
        let text = BgpPeer::new("r11", 5, "198.18.15.11".parse().unwrap(), 1)
            .local("198.18.15.51".parse().unwrap())
            .ipv4(Channel::announce_static())
            .ipv6(Channel::new(
                Filter::None,
                Filter::where_("net ~ [ 2001:db8:4::/64 ]"),
            ))
            .graceful_restart(30)
            .render();
        for line in [
            "protocol bgp r11 {",
            "  local 198.18.15.51 as 5;",
            "  neighbor 198.18.15.11 as 1;",
            "  hold time 3;",
            "  error wait time 1, 2;",
            "  graceful restart on;",
            "  graceful restart time 30;",
            "  ipv4 {\n    import all;\n    export where source = RTS_STATIC;\n  };",
            "  ipv6 {\n    import none;\n    export where net ~ [ 2001:db8:4::/64 ];\n  };",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        let config = BirdConfig::new(Ipv4Addr::new(198, 18, 255, 51))
            .originate(&["198.19.4.0/24", "2001:db8:4::/64"])
            .text()
            .to_owned();
        assert!(
            config.contains(
                "protocol static originate4 {\n  ipv4;\n  route 198.19.4.0/24 unreachable;"
            )
        );
        assert!(config.contains(
            "protocol static originate6 {\n  ipv6;\n  route 2001:db8:4::/64 unreachable;"
        ));
    }
}
