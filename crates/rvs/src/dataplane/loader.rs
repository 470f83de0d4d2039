//! Loading the director program, with its maps pinned under a directory in bpffs so that a
//! restarted rvsd finds the same connections, and attaching it to the director's interfaces.

use std::{
    fs,
    mem::size_of,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use aya::{
    EbpfLoader,
    maps::{MapData, MapInfo, MapType, ProgramArray},
    programs::{Xdp, XdpMode},
};
use rvs_common::{
    conn::{Conn, ConnKey},
    dest::{DestConns, DestEntry},
    maps::{
        self as names, AdmitBucket, Config, LBLC_CACHE_SIZE, LblcEntry, LblcrEntry, LocalityKey,
        MAX_DESTS, MAX_SCHED_SLOTS, MAX_SERVICES, SCHED_LIST_SIZE, SYNC_RING_SIZE, conns_new_size,
    },
    mark::{MAX_PREFIXES as MARK_MAX_PREFIXES, MarkPrefix, MarkRules},
    programs,
    service::{SchedCounter, SchedDest, ServiceEntry, ServiceKey, SlotKey},
    stats::{COUNTER_COUNT, Stats},
};

use super::maps::DirectorMaps;
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
pub struct Dataplane {
    _ebpf: aya::Ebpf,
    /// Keeps the scheduling programs installed (the entry program's tail-call targets).
    _progs: ProgramArray<MapData>,
    /// (name, ifindex) of each interface the program is attached to.
    pub interfaces: Vec<(String, u32)>,
    /// The maps existed already (a restart): connections and counters carried over.
    pub resumed: bool,
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
        (names::COUNTERS, PerCpuArray, 4, 8, COUNTER_COUNT),
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

impl Dataplane {
    pub fn load(opts: &LoadOptions) -> Result<Dataplane> {
        check_bpffs(&opts.pin_dir)?;
        fs::create_dir_all(&opts.pin_dir)
            .with_context(|| format!("creating {}", opts.pin_dir.display()))?;
        let resumed = check_pins(opts)?;

        let pins: Vec<(&str, PathBuf)> = expected_layouts(opts.conn_table_size)
            .iter()
            .map(|(name, ..)| (*name, opts.pin_dir.join(name)))
            .collect();
        let mut loader = EbpfLoader::new();
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
        let mut progs: ProgramArray<MapData> = bpf
            .take_map(programs::PROGS)
            .context("the program array is missing from the object")?
            .try_into()?;
        for (slot, name) in programs::PROGRAMS.iter().enumerate() {
            let prog: &mut Xdp = bpf
                .program_mut(name)
                .with_context(|| format!("{name} missing from the object"))?
                .try_into()?;
            prog.load()
                .with_context(|| format!("the kernel refused the program {name}"))?;
            progs
                .set(slot as u32, prog.fd()?, 0)
                .with_context(|| format!("installing {name}"))?;
        }
        let prog: &mut Xdp = bpf
            .program_mut(programs::ENTRY)
            .context("rvs_director missing from the object")?
            .try_into()?;
        prog.load()
            .context("the kernel refused the director program")?;
        let mode = match opts.mode {
            AttachMode::Driver => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        };
        let mut interfaces = Vec::new();
        for name in &opts.interfaces {
            let ifindex = nix::net::if_::if_nametoindex(name.as_str())
                .with_context(|| format!("no interface {name}"))?;
            prog.attach_to_if_index(ifindex, mode).with_context(|| {
                format!(
                    "attaching the director to {name} in {mode:?} mode (try --xdp-mode generic)"
                )
            })?;
            interfaces.push((name.clone(), ifindex));
        }
        Ok(Dataplane {
            _ebpf: bpf,
            _progs: progs,
            interfaces,
            resumed,
        })
    }

    /// Fresh handles on the pinned maps.
    pub fn maps(pin_dir: &Path) -> Result<DirectorMaps> {
        DirectorMaps::open(pin_dir)
    }
}

/// Removes the pinned maps (and with them the connections they hold).
pub fn cleanup_pins(pin_dir: &Path) -> Result<()> {
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
