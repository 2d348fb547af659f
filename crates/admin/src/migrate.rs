//! Moving a guest with AP devices to another host (issue 15).
//!
//! Live migration is not possible while a guest has a vfio-ap device (the
//! seed document's Limitations; QEMU marks the device unmigratable): its
//! adapters are unassigned (hot unplug), the device is detached, the guest
//! migrates, and its matrix is assigned to an mdev on the target and
//! attached again. Nothing in the kernel checks that the target can give
//! the guest the same thing; [`plan`] does.
//!
//! Pure: the two hosts as models in, a [`Plan`] (with both hosts' states
//! after it) or every reason it cannot be done out. The plan is proven on
//! copies of both hosts: every step runs through the model (the sysfs
//! writes through the emulated tree, exactly as they are printed), so a
//! step the kernel would refuse is a refusal here.
//!
//! What is moved is the part of the guest's mdev the source has: its
//! adapters with a card, its usage domains of the source's LPAR, its
//! control domains of the LPAR. Anything else the guest does not see, and
//! is not carried over (a warning says so).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use apmatrix_model::profile::RunningGuest;
use apmatrix_model::{
    Apqn, Card, CardMode, CpuModel, Crycb, GuestUpdate, GuestView, Host, Mask256, MatrixAxis,
    Unavailable,
};
use uuid::Uuid;

use crate::{
    check, id_value, observe, plan as config_plan, EmulatedRoot, Severity, Step, SysfsRoot, Wanted,
    WantedMasks, WantedMdev, MATRIX,
};

/// What is asked: which guest, and the numbers the user fixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The guest, running on the source.
    pub guest: String,
    /// Source adapter to target adapter (`--adapters 5=7`); adapters not
    /// named are matched automatically.
    pub adapters: BTreeMap<u8, u8>,
    /// Source domain to target domain (`--domains 4=5`), for usage and
    /// control domains alike; domains not named keep their numbers.
    pub domains: BTreeMap<u8, u8>,
    /// The target mdev's UUID; without it, the source mdev's.
    pub uuid: Option<Uuid>,
}

/// One adapter of the guest and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterMove {
    pub from: u8,
    pub to: u8,
    /// The source card's type (`CEX8C`).
    pub from_type: String,
    /// The target card's type: the same mode, a hwtype at least the source's.
    pub to_type: String,
    pub mode: CardMode,
    /// Fixed by `--adapters` rather than matched.
    pub given: bool,
}

/// The parts of the procedure, in order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StageKind {
    /// On the source: unassign the guest's adapters (hot unplug).
    Unplug,
    /// On the source: detach the vfio-ap device (`virsh detach-device`).
    Detach,
    /// The hypervisor's live migration (`virsh migrate --live`).
    Migrate,
    /// On the target: create the mdev and assign the matrix.
    Assign,
    /// On the target: attach the vfio-ap device (`virsh attach-device`).
    Attach,
}

impl StageKind {
    /// `source`, `target` or `hypervisor`: where the stage happens.
    pub fn side(self) -> &'static str {
        match self {
            StageKind::Unplug | StageKind::Detach => "source",
            StageKind::Migrate => "hypervisor",
            StageKind::Assign | StageKind::Attach => "target",
        }
    }

    /// Its name in the JSON form.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Unplug => "unplug",
            StageKind::Detach => "detach",
            StageKind::Migrate => "migrate",
            StageKind::Assign => "assign",
            StageKind::Attach => "attach",
        }
    }
}

/// One stage, with what it did to the guest when it ran on the copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    pub kind: StageKind,
    /// Its sysfs writes (paths under the root), each with the guest's
    /// CRYCB change it caused, if any.
    pub writes: Vec<(Step, Option<GuestUpdate>)>,
    /// The guest's CRYCB change of the stage's own action (detach, attach).
    pub update: Option<GuestUpdate>,
    /// Said beside the stage (why a step is left out).
    pub note: Option<String>,
}

/// A migration the target can take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub guest: String,
    /// The guest's CPU model; it starts on the target with the same.
    pub cpu: CpuModel,
    /// The guest's mdev on the source.
    pub source_mdev: Uuid,
    /// What is moved, in the source's numbers.
    pub moved: crate::Matrix,
    /// The mdev made on the target for the guest.
    pub target_mdev: WantedMdev,
    pub adapters: Vec<AdapterMove>,
    /// Usage domains, source to target.
    pub domains: Vec<(u8, u8)>,
    /// Control domains, source to target.
    pub control_domains: Vec<(u8, u8)>,
    pub warnings: Vec<String>,
    /// What the guest sees on the source now.
    pub sees_now: GuestView,
    /// What it sees on the target at the end.
    pub will_see: GuestView,
    pub stages: Vec<Stage>,
    /// The source once the guest has left.
    pub source_after: Host,
    /// The target once the guest runs there with its devices.
    pub target_after: Host,
}

/// Why the guest cannot move: every reason found, one sentence each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub guest: String,
    pub reasons: Vec<String>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest {} cannot move to the target with its AP devices:",
            self.guest
        )?;
        for r in &self.reasons {
            write!(f, "\n  {r}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

/// `5=7,6=0x08` (ids as the kernel's stores read them: decimal, 0x hex).
pub fn parse_map(text: &str) -> Result<BTreeMap<u8, u8>, String> {
    let id = |t: &str| {
        apmatrix_model::parse::parse_kstrtoul(t.trim().as_bytes())
            .ok()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("{t:?} is not an id (0 to 255, decimal or 0x hex)"))
    };
    let mut map = BTreeMap::new();
    for item in text.split(',').filter(|i| !i.trim().is_empty()) {
        let Some((from, to)) = item.split_once('=') else {
            return Err(format!("{item:?} is not FROM=TO, as in 5=7"));
        };
        let (from, to) = (id(from)?, id(to)?);
        if map.insert(from, to).is_some_and(|before| before != to) {
            return Err(format!("{from:#04x} is mapped twice"));
        }
    }
    Ok(map)
}

/// A card's mode in words.
pub fn mode_words(mode: CardMode) -> &'static str {
    match mode {
        CardMode::Accelerator => "accelerator",
        CardMode::CcaCoproc => "CCA coprocessor",
        CardMode::Ep11Coproc => "EP11 coprocessor",
    }
}

/// `APQN 07.0004 is` / `APQNs 07.0004 07.00ab are`.
fn apqns_are(apqns: &[Apqn]) -> String {
    let list = Apqn::list_text(apqns);
    if apqns.len() == 1 {
        format!("APQN {list} is")
    } else {
        format!("APQNs {list} are")
    }
}

fn hex_ids(mask: &Mask256) -> String {
    mask.iter()
        .map(|d| format!("{d:#04x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adapters as their card directories name them: `05, 06`.
fn adapter_ids(mask: &Mask256) -> String {
    mask.iter()
        .map(|a| format!("{a:02x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn refuse(guest: &str, reason: String) -> Refusal {
    Refusal {
        guest: guest.to_string(),
        reasons: vec![reason],
    }
}

/// Why target adapter `t` cannot take source card `card` with the
/// target domains `domains`: a phrase naming `t`, or `None` if it can.
fn misfit(card: &Card, target: &Host, t: u8, domains: &Mask256) -> Option<String> {
    let Some(tc) = target.topology().card(apmatrix_model::AdapterId(t)) else {
        return Some(format!("the target has no adapter {t:02x}"));
    };
    if tc.mode != card.mode {
        return Some(format!(
            "adapter {t:02x} is {} ({})",
            tc.type_name(),
            mode_words(tc.mode)
        ));
    }
    if tc.hwtype < card.hwtype {
        return Some(format!(
            "adapter {t:02x} is {}, older than {}",
            tc.type_name(),
            card.type_name()
        ));
    }
    let profile = target.profile();
    if !profile.vfio_ap_drives(tc.hwtype) {
        return Some(format!(
            "adapter {t:02x} is {}, which vfio_ap does not drive on the target's kernel ({})",
            tc.type_name(),
            profile.name
        ));
    }
    if !tc.config {
        return Some(format!("adapter {t:02x} is deconfigured on the target"));
    }
    let one = Mask256::single(t);
    match target.unavailable(&one, domains) {
        Some(Unavailable::ReservedForHost(apqns)) => {
            let owned: Mask256 = apqns.iter().map(|q| q.domain.0).collect();
            let bits = if owned.count() == 1 { "bit" } else { "bits" };
            return Some(format!(
                "{} reserved for the target's host (apmask bit {t} and aqmask {bits} {} are set)",
                apqns_are(&apqns),
                hex_ids(&owned)
            ));
        }
        Some(Unavailable::NotBoundToVfioAp(apqns)) => {
            return Some(format!(
                "{} not bound to vfio_ap on the target",
                apqns_are(&apqns)
            ));
        }
        None => {}
    }
    let mut held: BTreeMap<Uuid, Vec<Apqn>> = BTreeMap::new();
    for d in domains.iter() {
        let q = Apqn::new(t, d);
        if let Some(m) = target.mdev_holding(q) {
            held.entry(m.uuid).or_default().push(q);
        }
    }
    if !held.is_empty() {
        let parts: Vec<String> = held
            .iter()
            .map(|(uuid, apqns)| {
                let by = target
                    .guest_of(uuid)
                    .map(|g| format!(" (guest {g})"))
                    .unwrap_or_default();
                format!("{} already assigned to mdev {uuid}{by}", apqns_are(apqns))
            })
            .collect();
        return Some(parts.join(", "));
    }
    None
}

/// Matches each source adapter to a target adapter that fits (Kuhn's
/// augmenting paths: a full matching whenever one exists), trying the
/// candidates in the order given.
fn matching(candidates: &[Vec<u8>]) -> Vec<Option<u8>> {
    fn augment(
        i: usize,
        candidates: &[Vec<u8>],
        owner: &mut BTreeMap<u8, usize>,
        visited: &mut BTreeSet<u8>,
    ) -> bool {
        for &t in &candidates[i] {
            if !visited.insert(t) {
                continue;
            }
            let free = match owner.get(&t) {
                None => true,
                Some(&j) => augment(j, candidates, owner, visited),
            };
            if free {
                owner.insert(t, i);
                return true;
            }
        }
        false
    }
    let mut owner: BTreeMap<u8, usize> = BTreeMap::new();
    for i in 0..candidates.len() {
        augment(i, candidates, &mut owner, &mut BTreeSet::new());
    }
    let mut out = vec![None; candidates.len()];
    for (t, i) in owner {
        out[i] = Some(t);
    }
    out
}

/// The guest's CRYCB on a host (empty when it does not run there).
fn crycb_on(host: &Host, guest: &str) -> Crycb {
    host.guest(guest).map(|g| g.crycb).unwrap_or_default()
}

fn update_between(before: &Host, after: &Host, guest: &str) -> Option<GuestUpdate> {
    let (b, a) = (crycb_on(before, guest), crycb_on(after, guest));
    (b != a).then(|| GuestUpdate {
        guest: guest.to_string(),
        before: b,
        after: a,
    })
}

/// Runs sysfs writes on a host through its emulated tree, each with the
/// guest's change; the first refusal says which write on which side.
fn write_all(
    host: &mut Host,
    steps: Vec<Step>,
    side: &str,
    guest: &str,
) -> Result<Vec<(Step, Option<GuestUpdate>)>, String> {
    let mut done = Vec::new();
    for step in steps {
        let mut root = EmulatedRoot { host: host.clone() };
        if let Err(failure) = root.write(&step.path, &step.value) {
            return Err(format!(
                "on the {side}, `{}` is refused: {failure}",
                step.shell("/sys")
            ));
        }
        let update = update_between(host, &root.host, guest);
        *host = root.host;
        done.push((step, update));
    }
    Ok(done)
}

/// The target mdev as a configuration file's `[[mdev]]` (docs/configuration.md),
/// for `apmatrix check` and `apply` on the target.
pub fn configuration(m: &WantedMdev) -> String {
    let list = |mask: &Mask256| {
        if mask.is_empty() {
            String::new()
        } else {
            mask.to_hex_list()
        }
    };
    let mut out = format!(
        "[[mdev]]\nuuid = \"{}\"\nadapters = \"{}\"\ndomains = \"{}\"\ncontrol_domains = \"{}\"\n",
        m.uuid,
        list(&m.adapters),
        list(&m.domains),
        list(&m.control_domains)
    );
    if let Some(g) = &m.guest {
        out.push_str(&format!("guest = \"{g}\"\n"));
    }
    out
}

/// A domain's number on the target.
fn mapped(map: &BTreeMap<u8, u8>, d: u8) -> u8 {
    map.get(&d).copied().unwrap_or(d)
}

/// Decides whether `target` can host the guest's matrix, as `request`
/// asks, and proves the procedure on copies of both hosts.
pub fn plan(source: &Host, target: &Host, request: &Request) -> Result<Plan, Refusal> {
    let name = request.guest.as_str();
    let Some(guest) = source.guest(name) else {
        return Err(refuse(name, format!("no guest {name} runs on the source")));
    };
    let Some(source_mdev) = guest.mdev else {
        return Err(refuse(
            name,
            format!(
                "guest {name} has no vfio-ap device on the source: it has no AP devices to move; \
                 migrate it as usual"
            ),
        ));
    };
    let cpu = guest.cpu;
    let mdev = source.mdev(&source_mdev).expect("a guest's mdev exists");
    let sees_now = source.guest_view(name).expect("the guest runs");
    let topo = source.topology();
    let mut warnings = Vec::new();
    let mut reasons = Vec::new();

    // What is moved: the part of the mdev the source has.
    let adapters = mdev.adapters.and(&topo.adapters());
    let domains = mdev.domains.and(&topo.usage_domains);
    let controls = mdev.control_domains.and(&topo.control_domains);
    for (what, all, kept, why) in [
        (
            "adapters",
            mdev.adapters,
            adapters,
            "the source has no card for them",
        ),
        (
            "domains",
            mdev.domains,
            domains,
            "they are not usage domains of the source's LPAR",
        ),
        (
            "control domains",
            mdev.control_domains,
            controls,
            "they are not control domains of the source's LPAR",
        ),
    ] {
        let left = all.and_not(&kept);
        if left.is_empty() {
            continue;
        }
        let ids = if what == "adapters" {
            adapter_ids(&left)
        } else {
            hex_ids(&left)
        };
        warnings.push(format!(
            "{what} {ids} of mdev {source_mdev} are not moved: {why}, so the guest does not see them"
        ));
    }
    if adapters.is_empty() || domains.is_empty() {
        return Err(refuse(
            name,
            format!(
                "mdev {source_mdev} gives guest {name} no AP queue on the source (adapters {}, \
                 usage domains {}): there is nothing to move; migrate it as usual",
                or_none(adapter_ids(&adapters)),
                or_none(hex_ids(&domains))
            ),
        ));
    }

    // The target must not have the guest or the mdev already.
    if target.guest(name).is_some() {
        reasons.push(format!("a guest named {name} already runs on the target"));
    }
    let target_uuid = request.uuid.unwrap_or(source_mdev);
    if let Some(m) = target.mdev(&target_uuid) {
        reasons.push(format!(
            "the target already has an mdev {target_uuid} (adapters {}, domains {}): give the \
             guest's another UUID with --uuid",
            or_none(adapter_ids(&m.adapters)),
            or_none(hex_ids(&m.domains))
        ));
    }

    // Domains: the same numbers unless mapped.
    let dmap = &request.domains;
    for d in dmap.keys() {
        if !domains.contains(*d) && !controls.contains(*d) {
            reasons.push(format!(
                "--domains {d:#04x}={:#04x}: domain {d:#04x} is none of the guest's usage or \
                 control domains ({})",
                dmap[d],
                hex_ids(&domains.or(&controls))
            ));
        }
    }
    let image = |set: &Mask256, what: &str, reasons: &mut Vec<String>| {
        let mut out = Mask256::EMPTY;
        let mut by: BTreeMap<u8, u8> = BTreeMap::new();
        for d in set.iter() {
            let t = mapped(dmap, d);
            if let Some(first) = by.insert(t, d) {
                reasons.push(format!(
                    "--domains gives {what} {first:#04x} and {d:#04x} the same target domain {t:#04x}"
                ));
            }
            out.set(t);
        }
        out
    };
    let target_domains = image(&domains, "usage domains", &mut reasons);
    let target_controls = image(&controls, "control domains", &mut reasons);
    let domain_pairs: Vec<(u8, u8)> = domains.iter().map(|d| (d, mapped(dmap, d))).collect();
    let control_pairs: Vec<(u8, u8)> = controls.iter().map(|d| (d, mapped(dmap, d))).collect();
    let renamed: BTreeSet<(u8, u8)> = domain_pairs
        .iter()
        .chain(&control_pairs)
        .copied()
        .filter(|(a, b)| a != b)
        .collect();
    for (from, to) in &renamed {
        warnings.push(format!(
            "domain {from:#04x} becomes domain {to:#04x} on the target: secure keys live in \
             domains (a CCA or EP11 key is wrapped by its domain's master key), so the target's \
             domain {to:#04x} needs the same master keys as the source's {from:#04x}, or the \
             guest's secure keys stop working"
        ));
    }
    let ttopo = target.topology();
    for (from, to) in &domain_pairs {
        if !ttopo.usage_domains.contains(*to) {
            let lost: Vec<Apqn> = adapters.iter().map(|a| Apqn::new(a, *from)).collect();
            reasons.push(format!(
                "domain {to:#04x} is not a usage domain of the target's LPAR ({}): the guest \
                 would lose {}; map it to one the target has with --domains {from:#04x}=N",
                or_none(hex_ids(&ttopo.usage_domains)),
                Apqn::list_text(&lost)
            ));
        }
    }
    for (from, to) in &control_pairs {
        if !ttopo.control_domains.contains(*to) {
            reasons.push(format!(
                "control domain {to:#04x} is not a control domain of the target's LPAR ({}): \
                 the guest would lose control of domain {from:#04x}; map it with --domains \
                 {from:#04x}=N",
                or_none(hex_ids(&ttopo.control_domains))
            ));
        }
    }

    // Adapters: the given pairs, then a matching for the rest.
    let card_of = |a: u8| {
        topo.card(apmatrix_model::AdapterId(a))
            .expect("moved adapters have cards")
    };
    let described = |a: u8| {
        let c = card_of(a);
        format!(
            "adapter {a:02x} ({}, {})",
            c.type_name(),
            mode_words(c.mode)
        )
    };
    let mut pairs: BTreeMap<u8, (u8, bool)> = BTreeMap::new();
    let mut given_to: BTreeMap<u8, u8> = BTreeMap::new();
    for (&s, &t) in &request.adapters {
        if !adapters.contains(s) {
            reasons.push(format!(
                "--adapters {s}={t}: adapter {s:02x} is not one of the guest's ({})",
                adapter_ids(&adapters)
            ));
            continue;
        }
        if let Some(first) = given_to.insert(t, s) {
            reasons.push(format!(
                "--adapters gives adapters {first:02x} and {s:02x} the same target adapter {t:02x}"
            ));
            continue;
        }
        match misfit(card_of(s), target, t, &target_domains) {
            Some(why) => reasons.push(format!(
                "--adapters {s}={t}: {} cannot go to adapter {t:02x}: {why}",
                described(s)
            )),
            None => {
                pairs.insert(s, (t, true));
            }
        }
    }
    let free: Vec<u8> = adapters
        .iter()
        .filter(|a| !request.adapters.contains_key(a))
        .collect();
    let target_cards: Vec<&Card> = ttopo.cards.values().collect();
    let mut candidates = Vec::new();
    for &s in &free {
        let card = card_of(s);
        let mut fit: Vec<&Card> = target_cards
            .iter()
            .copied()
            .filter(|c| !given_to.contains_key(&c.id.0))
            .filter(|c| misfit(card, target, c.id.0, &target_domains).is_none())
            .collect();
        // The same number first, then the same hwtype, then the oldest
        // that is new enough, then the lowest number.
        fit.sort_by_key(|c| (c.id.0 != s, c.hwtype != card.hwtype, c.hwtype, c.id.0));
        candidates.push(fit.iter().map(|c| c.id.0).collect::<Vec<u8>>());
    }
    let matched = matching(&candidates);
    let taken: BTreeMap<u8, u8> = free
        .iter()
        .zip(&matched)
        .filter_map(|(s, t)| t.map(|t| (t, *s)))
        .collect();
    for (&s, t) in free.iter().zip(&matched) {
        if let Some(t) = t {
            pairs.insert(s, (*t, false));
            continue;
        }
        let card = card_of(s);
        let why: Vec<String> = if target_cards.is_empty() {
            vec!["the target has no adapters".into()]
        } else {
            target_cards
                .iter()
                .map(|c| {
                    let t = c.id.0;
                    if let Some(other) = given_to.get(&t) {
                        format!("adapter {t:02x} is given to adapter {other:02x} (--adapters)")
                    } else if let Some(why) = misfit(card, target, t, &target_domains) {
                        why
                    } else {
                        let other = taken.get(&t).copied().unwrap_or(t);
                        format!("adapter {t:02x} fits but is the match of adapter {other:02x}")
                    }
                })
                .collect()
        };
        reasons.push(format!(
            "{} has no match on the target: {}",
            described(s),
            why.join("; ")
        ));
    }
    if !reasons.is_empty() {
        return Err(Refusal {
            guest: name.to_string(),
            reasons,
        });
    }
    let adapter_moves: Vec<AdapterMove> = pairs
        .iter()
        .map(|(&s, &(t, given))| {
            let c = card_of(s);
            let tc = ttopo
                .card(apmatrix_model::AdapterId(t))
                .expect("matched to a card");
            AdapterMove {
                from: s,
                to: t,
                from_type: c.type_name(),
                to_type: tc.type_name(),
                mode: c.mode,
                given,
            }
        })
        .collect();
    let target_mdev = WantedMdev {
        uuid: target_uuid,
        label: target_uuid.to_string(),
        adapters: adapter_moves.iter().map(|m| m.to).collect(),
        domains: target_domains,
        control_domains: target_controls,
        guest: Some(name.to_string()),
        autostart: false,
    };

    // Prove it on copies: every step through the model.
    let fail = |reason: String| refuse(name, reason);
    let mut src = source.clone();
    let mut stages = Vec::new();
    let unplug = match source.profile().running_guest {
        RunningGuest::HotPlug => {
            let steps = mdev
                .adapters
                .iter()
                .map(|a| {
                    let path = |verb: &str| format!("{MATRIX}/{source_mdev}/{verb}_adapter");
                    let value = id_value(MatrixAxis::Adapter, a);
                    Step {
                        path: path("unassign"),
                        value: value.clone(),
                        undo: Some((path("assign"), value)),
                    }
                })
                .collect();
            Stage {
                kind: StageKind::Unplug,
                writes: write_all(&mut src, steps, "source", name).map_err(fail)?,
                update: None,
                note: None,
            }
        }
        RunningGuest::Refuse(errno) => Stage {
            kind: StageKind::Unplug,
            writes: Vec::new(),
            update: None,
            note: Some(format!(
                "the source's kernel ({}) refuses every unassign while a guest uses the mdev \
                 ({}); detaching the device unplugs all of the guest's AP devices at once",
                source.profile().name,
                errno.name()
            )),
        },
    };
    stages.push(unplug);
    let before = src.clone();
    src.detach_mdev(name)
        .map_err(|e| fail(format!("on the source, detaching the vfio-ap device: {e}")))?;
    stages.push(Stage {
        kind: StageKind::Detach,
        writes: Vec::new(),
        update: update_between(&before, &src, name),
        note: None,
    });
    src.stop_guest(name)
        .map_err(|e| fail(format!("on the source, the guest's end there: {e}")))?;
    let mut dst = target.clone();
    dst.start_guest(name, None, cpu)
        .map_err(|e| fail(format!("on the target, starting the guest: {e}")))?;
    stages.push(Stage {
        kind: StageKind::Migrate,
        writes: Vec::new(),
        update: None,
        note: None,
    });
    let wanted = Wanted {
        masks: WantedMasks::Keep,
        mdevs: vec![target_mdev.clone()],
    };
    let seen = observe(&EmulatedRoot { host: dst.clone() }).map_err(|e| fail(e.to_string()))?;
    let errors: Vec<String> = check(&wanted, &seen)
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| format!("on the target: {}", p.message))
        .collect();
    if !errors.is_empty() {
        return Err(Refusal {
            guest: name.to_string(),
            reasons: errors,
        });
    }
    let steps = config_plan(&wanted, &seen);
    let writes = write_all(&mut dst, steps, "target", name).map_err(fail)?;
    let seen = observe(&EmulatedRoot { host: dst.clone() }).map_err(|e| fail(e.to_string()))?;
    let left = config_plan(&wanted, &seen);
    if !left.is_empty() {
        return Err(fail(format!(
            "on the target, the mdev reads back differently: `{}` is still to do",
            left[0].shell("/sys")
        )));
    }
    stages.push(Stage {
        kind: StageKind::Assign,
        writes,
        update: None,
        note: None,
    });
    let before = dst.clone();
    dst.attach_mdev(name, &target_uuid)
        .map_err(|e| fail(format!("on the target, attaching the vfio-ap device: {e}")))?;
    stages.push(Stage {
        kind: StageKind::Attach,
        writes: Vec::new(),
        update: update_between(&before, &dst, name),
        note: None,
    });

    // The guest must see on the target all it saw, under the new numbers.
    let will_see = dst.guest_view(name).expect("the guest runs on the target");
    let amap: BTreeMap<u8, u8> = adapter_moves.iter().map(|m| (m.from, m.to)).collect();
    let expected: BTreeMap<Apqn, Apqn> = sees_now
        .apqns()
        .into_iter()
        .map(|q| {
            let a = amap.get(&q.adapter.0).copied().unwrap_or(q.adapter.0);
            (Apqn::new(a, mapped(dmap, q.domain.0)), q)
        })
        .collect();
    let seen_after: BTreeSet<Apqn> = will_see.apqns().into_iter().collect();
    let lost: Vec<String> = expected
        .iter()
        .filter(|(t, _)| !seen_after.contains(t))
        .map(|(t, s)| format!("{t} (its {s})"))
        .collect();
    if !lost.is_empty() {
        let mut reason = format!("on the target the guest would not see {}", lost.join(", "));
        for note in &will_see.notes {
            reason.push_str(&format!(": {note}"));
        }
        return Err(fail(reason));
    }
    let more: Vec<Apqn> = seen_after
        .iter()
        .filter(|q| !expected.contains_key(q))
        .copied()
        .collect();
    if !more.is_empty() {
        warnings.push(format!(
            "on the target the guest also sees {}, which it does not see on the source",
            Apqn::list_text(&more)
        ));
    }
    let adm_expected: Mask256 = sees_now.crycb.adm.iter().map(|d| mapped(dmap, d)).collect();
    let adm_lost = adm_expected.and_not(&will_see.crycb.adm);
    if !adm_lost.is_empty() {
        return Err(fail(format!(
            "on the target the guest would not get control domains {}",
            hex_ids(&adm_lost)
        )));
    }
    Ok(Plan {
        guest: name.to_string(),
        cpu,
        source_mdev,
        moved: crate::Matrix {
            adapters,
            domains,
            control_domains: controls,
        },
        target_mdev,
        adapters: adapter_moves,
        domains: domain_pairs,
        control_domains: control_pairs,
        warnings,
        sees_now,
        will_see,
        stages,
        source_after: src,
        target_after: dst,
    })
}

/// The text, or `none` when it is empty.
fn or_none(text: String) -> String {
    if text.is_empty() {
        "none".into()
    } else {
        text
    }
}
