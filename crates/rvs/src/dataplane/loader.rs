//! Loading the director program, with its maps pinned under a directory in bpffs so that a
//! restarted rvsd finds the same connections, and attaching it to the director's interfaces.
//!
//! The attachments (XDP links) and the program array of the tail-called programs are pinned
//! there too, so that the data plane outlives rvsd: if rvsd dies (a crash, kill -9), its
//! director goes on forwarding every flow it holds, as the kernel's IPVS does when keepalived
//! dies, instead of leaving the VIP's packets to a kernel that would reset every connection. A
//! restarted rvsd replaces the running program atomically (`bpf_link_update`). A stop (SIGTERM)
//! leaves it attached too, so that a restart or an upgrade loses no packet of an established
//! flow; `rvsd --detach`, `--cleanup` or `--detach-on-exit` take it off.

use std::{
    fs,
    mem::size_of,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::{
    EbpfLoader,
    maps::{MapData, MapInfo, MapType, ProgramArray},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::{DestConns, DestEntry},
    maps::{
        self as names, AdmitBucket, Config, IfaceMac, LBLC_CACHE_SIZE, LblcEntry, LblcrEntry,
        LocalityKey, MAX_DESTS, MAX_IFACES, MAX_SCHED_SLOTS, MAX_SERVICES, SCHED_LIST_SIZE,
        SYNC_RING_SIZE, conns_new_size,
    },
    mark::{MAX_PREFIXES as MARK_MAX_PREFIXES, MarkPrefix, MarkRules},
    programs,
    service::{SchedCounter, SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::{COUNTER_SLOTS, Stats},
};

use super::{maps::DirectorMaps, pin_lock::PinLock};
use crate::ebpf;

/// How the program is attached: in the driver (native XDP), or generically by the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    Driver,
    Generic,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Directory in bpffs for the pinned maps.
    pub pin_dir: PathBuf,
    /// Interfaces to attach the director to.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    /// Capacity of the connection table.
    pub conn_table_size: u32,
}

/// The loaded and attached director. Dropping it detaches the program; the pinned maps stay.
/// If the process dies without dropping it, the program stays attached (see the module's
/// comment).
pub struct Dataplane {
    _ebpf: aya::Ebpf,
    /// Keeps the scheduling programs installed (the entry program's tail-call targets).
    _progs: ProgramArray<MapData>,
    /// (name, ifindex) of each interface the program is attached to.
    pub interfaces: Vec<(String, u32)>,
    /// The maps existed already (a restart): connections and counters carried over.
    pub resumed: bool,
    /// The pins that keep the program attached after rvsd exits, removed on drop.
    pins: Vec<PathBuf>,
    /// This daemon's hold on the pin directory, let go last.
    _lock: PinLock,
}

/// The pin of the link attaching the director to interface `ifname`.
const LINK_PIN_PREFIX: &str = "RVS_LINK_";
/// The program array is pinned under this name (and first under `_NEW` while a restarted rvsd
/// replaces the running program; bpffs refuses dots in names).
const PROGS_PIN: &str = programs::PROGS;

fn link_pin(pin_dir: &Path, ifname: &str) -> PathBuf {
    pin_dir.join(format!("{LINK_PIN_PREFIX}{ifname}"))
}

/// The files under `pin_dir` that keep a director attached: link pins and the program array.
fn attachment_pins(pin_dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(pin_dir) else {
        return Vec::new();
    };
    let mut pins: Vec<PathBuf> = dir
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(LINK_PIN_PREFIX) || n == PROGS_PIN || n == format!("{PROGS_PIN}_NEW")
            })
        })
        .collect();
    pins.sort();
    pins
}

/// Removes a link's pin: the link (and the program's attachment) goes with the last reference.
fn detach_pin(path: &Path) -> Result<()> {
    fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}

/// Attaches `prog` to `ifindex`, replacing in place the director a previous rvsd left attached
/// there (its link pinned at `pin`), and pins the new link at `pin`. Returns whether it replaced
/// a running program.
fn attach_pinned(prog: &mut Xdp, ifindex: u32, mode: XdpMode, pin: &Path) -> Result<bool> {
    let mut replaced = false;
    let id = match pin.exists() {
        true => {
            let old = PinnedLink::from_pin(pin)
                .with_context(|| format!("opening the pinned link {}", pin.display()))?;
            let old: FdLink = old
                .unpin()
                .with_context(|| format!("unpinning {}", pin.display()))?;
            // A link whose interface went away cannot be updated: attach afresh.
            match XdpLink::try_from(old)
                .map_err(anyhow::Error::from)
                .and_then(|l| prog.attach_to_link(l).map_err(anyhow::Error::from))
            {
                Ok(id) => {
                    replaced = true;
                    id
                }
                Err(e) => {
                    tracing::warn!("cannot replace the program a previous rvsd left: {e:#}");
                    prog.attach_to_if_index(ifindex, mode)?
                }
            }
        }
        false => prog.attach_to_if_index(ifindex, mode)?,
    };
    let link = prog.take_link(id)?;
    match FdLink::try_from(link) {
        // Dropping the handle leaves the link to its pin.
        Ok(fd) => drop(
            fd.pin(pin)
                .with_context(|| format!("pinning {}", pin.display()))?,
        ),
        Err(_) => tracing::warn!(
            "the kernel attached the director by netlink: it is not detached when rvsd stops"
        ),
    }
    Ok(replaced)
}

/// What a pinned map must look like for this build: (name, type, key size, value size, entries).
type Layout = (&'static str, MapType, usize, usize, u32);

fn expected_layouts(conn_table_size: u32) -> Vec<Layout> {
    use MapType::*;
    vec![
        (
            names::SERVICES,
            Hash,
            size_of::<ServiceKey>(),
            size_of::<ServiceEntry>(),
            MAX_SERVICES,
        ),
        (names::DESTS, Array, 4, size_of::<DestEntry>(), MAX_DESTS),
        (
            names::DEST_CONNS,
            Array,
            4,
            size_of::<DestConns>(),
            MAX_DESTS,
        ),
        (
            names::SCHED_SLOTS,
            Hash,
            size_of::<SlotKey>(),
            4,
            MAX_SCHED_SLOTS,
        ),
        (
            names::SCHED_COUNTERS,
            Array,
            4,
            size_of::<SchedCounter>(),
            MAX_SERVICES,
        ),
        (
            names::SCHED_LIST,
            Array,
            4,
            size_of::<SchedDest>(),
            SCHED_LIST_SIZE,
        ),
        (
            names::CONNS,
            Hash,
            size_of::<ConnKey>(),
            size_of::<Conn>(),
            conn_table_size,
        ),
        (
            names::CONNS_NEW,
            Hash,
            size_of::<ConnKey>(),
            size_of::<Conn>(),
            conns_new_size(conn_table_size),
        ),
        (
            names::NAT_REPLIES,
            Hash,
            size_of::<ConnKey>(),
            size_of::<ConnKey>(),
            conn_table_size,
        ),
        (
            names::SVC_STATS,
            PerCpuArray,
            4,
            size_of::<Stats>(),
            MAX_SERVICES,
        ),
        (
            names::DEST_STATS,
            PerCpuArray,
            4,
            size_of::<Stats>(),
            MAX_DESTS,
        ),
        (names::COUNTERS, PerCpuArray, 4, 8, COUNTER_SLOTS),
        (
            names::LBLC,
            LruHash,
            size_of::<LocalityKey>(),
            size_of::<LblcEntry>(),
            LBLC_CACHE_SIZE,
        ),
        (
            names::LBLCR,
            LruHash,
            size_of::<LocalityKey>(),
            size_of::<LblcrEntry>(),
            LBLC_CACHE_SIZE,
        ),
        (
            names::MARK_RULES,
            LpmTrie,
            4 + size_of::<MarkPrefix>(),
            size_of::<MarkRules>(),
            MARK_MAX_PREFIXES,
        ),
        (names::CONFIG, Array, 4, size_of::<Config>(), 1),
        (names::ADMIT, PerCpuArray, 4, size_of::<AdmitBucket>(), 1),
        (names::SYNC_RING, RingBuf, 0, 0, SYNC_RING_SIZE),
    ]
}

/// Refuses pinned maps left by an rvs whose layouts differ, rather than letting the program
/// misread them.
fn check_pins(opts: &LoadOptions) -> Result<bool> {
    let mut present = 0;
    let layouts = expected_layouts(opts.conn_table_size);
    for (name, kind, key, value, entries) in &layouts {
        let path = opts.pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        present += 1;
        let info = MapInfo::from_pin(&path)
            .with_context(|| format!("reading pinned map {}", path.display()))?;
        let found = (
            info.map_type()?,
            info.key_size() as usize,
            info.value_size() as usize,
            info.max_entries(),
        );
        if found != (*kind, *key, *value, *entries) {
            bail!(
                "pinned map {} has layout {:?} but this rvsd needs {:?}: it was left by another \
                 version or another --conn-table-size; run `rvsd --cleanup --pin-dir {}` (this \
                 drops the connections it holds) or start with the old settings",
                path.display(),
                found,
                (kind, key, value, entries),
                opts.pin_dir.display()
            );
        }
    }
    if present != 0 && present != layouts.len() {
        bail!(
            "only {present} of {} maps are pinned under {}; run `rvsd --cleanup --pin-dir {}`",
            layouts.len(),
            opts.pin_dir.display(),
            opts.pin_dir.display()
        );
    }
    Ok(present == layouts.len())
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;
/// Where bpffs is normally mounted.
const BPFFS: &str = "/sys/fs/bpf";

fn on_bpffs(dir: &Path) -> Result<bool> {
    let probe = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let st =
        nix::sys::statfs::statfs(probe).with_context(|| format!("statfs {}", probe.display()))?;
    Ok(st.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}

/// Makes sure the pin directory is on a bpf filesystem. A machine that has none mounted at
/// /sys/fs/bpf gets one there, as systemd would mount it at boot.
fn check_bpffs(dir: &Path) -> Result<()> {
    if on_bpffs(dir)? {
        return Ok(());
    }
    if dir.starts_with(BPFFS) {
        nix::mount::mount(
            Some("bpf"),
            BPFFS,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting a bpf filesystem on {BPFFS}"))?;
        tracing::info!("mounted a bpf filesystem on {BPFFS}");
    }
    if !on_bpffs(dir)? {
        bail!(
            "{} is not on a bpf filesystem; mount one (`mount -t bpf bpf /sys/fs/bpf`) or pass \
             --pin-dir under a bpffs mount",
            dir.display()
        );
    }
    Ok(())
}

/// The ifindex and MAC of each interface in `names` that has one, for the program's check that a
/// frame is addressed to this host.
fn iface_macs(names: &[String]) -> Result<[IfaceMac; MAX_IFACES]> {
    let mut out = [IfaceMac::NONE; MAX_IFACES];
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs()
        .context("listing the interfaces")?
        .collect();
    let mut n = 0;
    for name in names.iter().take(MAX_IFACES) {
        let Ok(ifindex) = nix::net::if_::if_nametoindex(name.as_str()) else {
            continue;
        };
        let mac = addrs
            .iter()
            .filter(|a| a.interface_name == *name)
            .find_map(|a| a.address.as_ref()?.as_link_addr()?.addr());
        if let Some(mac) = mac {
            out[n] = IfaceMac {
                ifindex,
                mac,
                _pad0: [0; 2],
            };
            n += 1;
        }
    }
    Ok(out)
}

impl Dataplane {
    pub fn load(opts: &LoadOptions) -> Result<Dataplane> {
        check_bpffs(&opts.pin_dir)?;
        fs::create_dir_all(&opts.pin_dir)
            .with_context(|| format!("creating {}", opts.pin_dir.display()))?;
        // Before anything in it is read or replaced.
        let lock = PinLock::take(&opts.pin_dir)?;
        let resumed = check_pins(opts)?;

        let pins: Vec<(&str, PathBuf)> = expected_layouts(opts.conn_table_size)
            .iter()
            .map(|(name, ..)| (*name, opts.pin_dir.join(name)))
            .collect();
        let macs = iface_macs(&opts.interfaces)?;
        let mut loader = EbpfLoader::new();
        loader.override_global(names::IFACE_MACS, &macs, true);
        loader.map_max_entries(names::CONNS, opts.conn_table_size);
        loader.map_max_entries(names::CONNS_NEW, conns_new_size(opts.conn_table_size));
        loader.map_max_entries(names::NAT_REPLIES, opts.conn_table_size);
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut bpf = loader
            .load(ebpf::DIRECTOR)
            .context("loading the director program")?;

        // The scheduling and forwarding programs first, into the program array the entry
        // tail-calls into.
        let progs_map = bpf
            .take_map(programs::PROGS)
            .context("the program array is missing from the object")?;
        // The program array outlives this process with the program (the kernel empties a
        // program array when its last user reference goes): pinned beside the old one until
        // the old program is replaced.
        let progs_new = opts.pin_dir.join(format!("{PROGS_PIN}_NEW"));
        let progs_pin = opts.pin_dir.join(PROGS_PIN);
        if progs_new.exists() {
            detach_pin(&progs_new)?;
        }
        progs_map
            .pin(&progs_new)
            .with_context(|| format!("pinning {}", progs_new.display()))?;
        let mut progs: ProgramArray<MapData> = progs_map.try_into()?;
        // The entry first: it has a slot of its own too (a decapsulated packet enters it again).
        let entry: &mut Xdp = bpf
            .program_mut(programs::ENTRY)
            .context("rvs_director missing from the object")?
            .try_into()?;
        entry
            .load()
            .context("the kernel refused the director program")?;
        for (slot, name) in programs::PROGRAMS.iter().enumerate() {
            let prog: &mut Xdp = bpf
                .program_mut(name)
                .with_context(|| format!("{name} missing from the object"))?
                .try_into()?;
            if *name != programs::ENTRY {
                prog.load()
                    .with_context(|| format!("the kernel refused the program {name}"))?;
            }
            progs
                .set(slot as u32, prog.fd()?, 0)
                .with_context(|| format!("installing {name}"))?;
        }
        let prog: &mut Xdp = bpf
            .program_mut(programs::ENTRY)
            .context("rvs_director missing from the object")?
            .try_into()?;
        let mode = match opts.mode {
            AttachMode::Driver => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        };
        let mut interfaces = Vec::new();
        let mut pins = Vec::new();
        // On an error, what this call pinned goes again, so nothing stays attached.
        let undo = |pins: &[PathBuf], e: anyhow::Error| {
            for pin in pins.iter().chain([&progs_new]) {
                let _ = fs::remove_file(pin);
            }
            e
        };
        for name in &opts.interfaces {
            let ifindex = nix::net::if_::if_nametoindex(name.as_str())
                .with_context(|| format!("no interface {name}"))
                .map_err(|e| undo(&pins, e))?;
            let pin = link_pin(&opts.pin_dir, name);
            let replaced = attach_pinned(prog, ifindex, mode, &pin)
                .with_context(|| {
                    format!(
                        "attaching the director to {name} in {mode:?} mode (try --xdp-mode \
                         generic)"
                    )
                })
                .map_err(|e| undo(&pins, e))?;
            if replaced {
                tracing::info!("replaced the director a previous rvsd left on {name}");
            }
            interfaces.push((name.clone(), ifindex));
            pins.push(pin);
        }
        // Interfaces a previous rvsd was attached to and this one is not: detached.
        for stale in attachment_pins(&opts.pin_dir) {
            let name = stale.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(LINK_PIN_PREFIX) && !pins.contains(&stale) {
                detach_pin(&stale)?;
            }
        }
        fs::rename(&progs_new, &progs_pin)
            .with_context(|| format!("renaming {} in place", progs_new.display()))
            .map_err(|e| undo(&pins, e))?;
        pins.push(progs_pin);
        Ok(Dataplane {
            _ebpf: bpf,
            _progs: progs,
            interfaces,
            resumed,
            pins,
            _lock: lock,
        })
    }

    /// Fresh handles on the pinned maps.
    /// Runs the entry program once on `frame` as if it had arrived on `ifindex`, by
    /// BPF_PROG_TEST_RUN: nothing is sent, but maps and counters change as for a real packet.
    /// Returns the XDP action and the length of the frame as the program left it in `out`.
    pub fn test_run(&mut self, frame: &[u8], ifindex: u32, out: &mut [u8]) -> Result<(u32, usize)> {
        use aya::{TestRun, TestRunOptions};
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index,
        // egress_ifindex; the kernel wants data 0 and data_end the frame's length.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let prog: &mut Xdp = self
            ._ebpf
            .program_mut(programs::ENTRY)
            .context("rvs_director missing from the object")?
            .try_into()?;
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(out),
                ctx_in: Some(&ctx),
                ..TestRunOptions::new()
            })
            .context("BPF_PROG_TEST_RUN")?;
        Ok((r.return_value, r.data_size_out as usize))
    }

    pub fn maps(pin_dir: &Path) -> Result<DirectorMaps> {
        DirectorMaps::open(pin_dir)
    }
}

impl Dataplane {
    /// Lets rvsd exit with the program still attached and forwarding what the maps hold, for
    /// the next rvsd to take over in place.
    pub fn leave_attached(mut self) {
        self.pins.clear();
    }
}

impl Drop for Dataplane {
    /// Dropped (rather than left attached), the program is detached: the pins that kept it
    /// attached go.
    fn drop(&mut self) {
        for pin in &self.pins {
            if let Err(e) = detach_pin(pin) {
                tracing::warn!("detaching the director: {e:#}");
            }
        }
    }
}

/// Detaches the director a stopped (or killed) rvsd left attached, keeping its maps: the next
/// rvsd still finds the connections and counters. Returns how many attachments went.
pub fn detach_pins(pin_dir: &Path) -> Result<usize> {
    if !pin_dir.exists() {
        return Ok(0);
    }
    let _lock = PinLock::take(pin_dir)?;
    let pins = attachment_pins(pin_dir);
    for pin in &pins {
        detach_pin(pin)?;
    }
    Ok(pins.len())
}

/// Removes the pinned maps (and with them the connections they hold), and detaches a director
/// that a killed rvsd left attached.
pub fn cleanup_pins(pin_dir: &Path) -> Result<()> {
    // Not the pins of a running rvsd.
    let _lock = match pin_dir.exists() {
        true => Some(PinLock::take(pin_dir)?),
        false => None,
    };
    for pin in attachment_pins(pin_dir) {
        detach_pin(&pin)?;
    }
    for (name, ..) in expected_layouts(0) {
        let path = pin_dir.join(name);
        if path.exists() {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    if pin_dir.exists() {
        let _ = fs::remove_dir(pin_dir);
    }
    Ok(())
}
