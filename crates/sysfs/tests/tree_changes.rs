//! `tree_changes` against an independent oracle: both whole trees walked
//! and compared entry by entry. Every difference the walk finds must be
//! covered by a reported change (a cache that forgets only what is
//! reported never serves an old entry), and every reported content or
//! listing change must be a real one (nothing is forgotten for nothing).

use std::collections::BTreeMap;

use apmatrix_model::profile::PROFILES;
use apmatrix_model::{
    AdapterId, Apqn, CardMode, CpuModel, Host, Mask256, MaskKind, MatrixAxis, Op, Topology,
};
use apmatrix_sysfs::{
    child, children, read, tree_changes, tree_changes_known, Cached, Dir, Node, TreeChange,
};
use proptest::prelude::*;
use uuid::Uuid;

/// What the walk records of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Dir(Vec<String>),
    File(String),
    Link(String),
}

fn walk(host: &Host, dir: Dir, path: &str, out: &mut BTreeMap<String, Seen>) {
    let names = children(host, dir);
    out.insert(
        path.to_string(),
        Seen::Dir(names.iter().map(|(n, _)| n.clone()).collect()),
    );
    for (name, _) in names {
        let entry = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}/{name}")
        };
        match child(host, dir, &name).expect("a listed name resolves") {
            Node::Dir(d) => walk(host, d, &entry, out),
            Node::File(f) => {
                out.insert(entry, Seen::File(read(host, &f)));
            }
            Node::Link(t) => {
                out.insert(entry, Seen::Link(t));
            }
        }
    }
}

fn tree(host: &Host) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    walk(host, Dir::Root, "", &mut out);
    out
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Whether `path` or a directory above it is reported gone.
fn gone_at_or_above(changes: &[TreeChange], path: &str) -> bool {
    changes.iter().any(|c| {
        matches!(c, TreeChange::Gone(g)
            if g == path || path.starts_with(&format!("{g}/")))
    })
}

/// Checks the reported changes against the walked difference.
fn check(before: &Host, after: &Host) -> Result<(), String> {
    let changes = tree_changes(before, after);
    let (old, new) = (tree(before), tree(after));
    let has = |c: TreeChange| changes.contains(&c);
    for (path, was) in &old {
        let covered = match (was, new.get(path)) {
            (_, None) => gone_at_or_above(&changes, path),
            (Seen::File(a), Some(Seen::File(b))) if a != b => {
                has(TreeChange::Content(path.clone())) || gone_at_or_above(&changes, path)
            }
            (Seen::Link(a), Some(Seen::Link(b))) if a != b => gone_at_or_above(&changes, path),
            (Seen::Dir(a), Some(Seen::Dir(b))) if a != b => {
                has(TreeChange::Listing(path.clone())) || gone_at_or_above(&changes, path)
            }
            (a, Some(b)) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
                gone_at_or_above(&changes, path)
            }
            _ => true,
        };
        if !covered {
            return Err(format!(
                "{path} changed ({was:?} -> {:?}) but no reported change covers it: {changes:?}",
                new.get(path)
            ));
        }
    }
    for path in new.keys().filter(|p| !old.contains_key(*p)) {
        // A new entry needs its parent's listing forgotten (where the
        // parent existed before; else a parent further up says so).
        let mut above = parent(path);
        while !old.contains_key(above) {
            above = parent(above);
        }
        if !has(TreeChange::Listing(above.to_string())) && !gone_at_or_above(&changes, above) {
            return Err(format!(
                "{path} appeared but the listing of {above} is not reported: {changes:?}"
            ));
        }
    }
    for c in &changes {
        let real = match c {
            TreeChange::Content(p) => matches!(
                (old.get(p), new.get(p)),
                (Some(Seen::File(a)), Some(Seen::File(b))) if a != b
            ),
            TreeChange::Listing(p) => old.get(p) != new.get(p),
            TreeChange::Gone(p) => old.contains_key(p) && old.get(p) != new.get(p),
        };
        if !real {
            return Err(format!("{c:?} is reported but nothing changed there"));
        }
    }
    Ok(())
}

const MDEVS: [u128; 3] = [0x1111, 0x2222, 0x3333];
const ADAPTERS: [u8; 5] = [3, 4, 5, 6, 7];
const DOMAINS: [u8; 6] = [4, 5, 6, 0x47, 0xab, 8];

fn uuid(i: usize) -> Uuid {
    Uuid::from_u128(0x5ca1_e000_0000_4000_8000_0000_0000_0000 + MDEVS[i % 3])
}

fn mask(bits: u8, ids: &[u8]) -> Mask256 {
    let mut m = Mask256::EMPTY;
    for (i, id) in ids.iter().enumerate() {
        if bits & (1 << i) != 0 {
            m.set(*id);
        }
    }
    m
}

/// Host operations over a small id space, so that they collide often.
fn op() -> impl Strategy<Value = Op> {
    let a = prop::sample::select(&ADAPTERS[..]);
    let d = prop::sample::select(&DOMAINS[..]);
    let axis = prop::sample::select(
        &[
            MatrixAxis::Adapter,
            MatrixAxis::Domain,
            MatrixAxis::ControlDomain,
        ][..],
    );
    let guest = prop::sample::select(&["g1", "g2"][..]).prop_map(String::from);
    prop_oneof![
        (any::<bool>(), any::<u8>()).prop_map(|(ap, bits)| Op::SetMask {
            mask: if ap {
                MaskKind::Apmask
            } else {
                MaskKind::Aqmask
            },
            value: mask(bits, if ap { &ADAPTERS } else { &DOMAINS }).complement(),
        }),
        (0..3usize).prop_map(|i| Op::CreateMdev { uuid: uuid(i) }),
        (0..3usize).prop_map(|i| Op::RemoveMdev { uuid: uuid(i) }),
        (0..3usize, axis.clone(), d.clone(), a.clone()).prop_map(|(i, axis, d, a)| Op::Assign {
            uuid: uuid(i),
            axis,
            id: if axis == MatrixAxis::Adapter { a } else { d } as u64,
        }),
        (0..3usize, axis, d.clone(), a.clone()).prop_map(|(i, axis, d, a)| Op::Unassign {
            uuid: uuid(i),
            axis,
            id: if axis == MatrixAxis::Adapter { a } else { d } as u64,
        }),
        (guest.clone(), proptest::option::of(0..3usize)).prop_map(|(name, m)| Op::StartGuest {
            name,
            mdev: m.map(uuid),
            cpu: CpuModel::default(),
        }),
        guest.clone().prop_map(|name| Op::StopGuest { name }),
        (guest.clone(), 0..3usize).prop_map(|(guest, i)| Op::AttachMdev {
            guest,
            uuid: uuid(i)
        }),
        guest.clone().prop_map(|guest| Op::DetachMdev { guest }),
        Just(Op::Rescan),
        (a.clone(), 0..2i32).prop_map(|(a, online)| Op::SetCardOnline {
            adapter: AdapterId(a),
            online
        }),
        (a.clone(), d.clone(), 0..2i32).prop_map(|(a, d, online)| Op::SetQueueOnline {
            apqn: Apqn::new(a, d),
            online,
        }),
        (d.clone(), any::<bool>())
            .prop_map(|(domain, present)| Op::SetLparDomain { domain, present }),
        a.clone().prop_map(|a| Op::AddLparAdapter {
            adapter: AdapterId(a),
            hwtype: 13,
            mode: CardMode::Ep11Coproc,
        }),
        a.clone().prop_map(|a| Op::RemoveLparAdapter {
            adapter: AdapterId(a)
        }),
        (a.clone(), any::<bool>()).prop_map(|(a, configured)| Op::SetLparCardConfig {
            adapter: AdapterId(a),
            configured,
        }),
        (a.clone(), any::<bool>()).prop_map(|(a, chkstop)| Op::SetCardCheckstop {
            adapter: AdapterId(a),
            chkstop
        }),
        (a, 0..2i32).prop_map(|(a, config)| Op::SetCardConfig {
            adapter: AdapterId(a),
            config
        }),
        (-1..8i32).prop_map(|domain| Op::SetDefaultDomain { domain }),
        (guest, d).prop_map(|(guest, d)| Op::InGuest {
            guest,
            change: Box::new(Op::SetMask {
                mask: MaskKind::Aqmask,
                value: Mask256::single(d).complement(),
            }),
        }),
    ]
}

/// A path's bits, spread (FNV-1a), to pick some paths out of every part of
/// the tree.
fn spread(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A cache that was given the paths of `known` that are closed under
/// parents, and the listings of about half of those.
struct Cache {
    known: std::collections::BTreeSet<String>,
}

impl Cached for Cache {
    fn holds(&self, path: &str) -> bool {
        let mut p = path;
        loop {
            if !self.known.contains(p) {
                return false;
            }
            if p.is_empty() {
                return true;
            }
            p = parent(p);
        }
    }

    fn holds_listing(&self, path: &str) -> bool {
        self.holds(path) && spread(path) % 8 < 4
    }

    fn names_in(&self, path: &str) -> Option<Vec<String>> {
        let names = self
            .known
            .iter()
            .filter(|p| !p.is_empty() && parent(p) == path)
            .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
            .collect();
        Some(names)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// On every profile, after every operation of a random sequence, the
    /// reported changes of the host's tree, and of each running guest's
    /// own tree, match the walk.
    #[test]
    fn reported_changes_cover_exactly_what_the_trees_differ_in(
        profile in 0..PROFILES.len(),
        ops in prop::collection::vec(op(), 1..25),
    ) {
        let mut host = Host::new(Topology::seed_example(), PROFILES[profile]);
        // Start where every kind of change shows: queues of adapters 4 and 5
        // bound to vfio_ap, and an mdev holding some of them.
        let prelude = [
            Op::SetMask { mask: MaskKind::Apmask, value: mask(0b0110, &ADAPTERS).complement() },
            Op::CreateMdev { uuid: uuid(0) },
            Op::Assign { uuid: uuid(0), axis: MatrixAxis::Adapter, id: 4 },
            Op::Assign { uuid: uuid(0), axis: MatrixAxis::Domain, id: 4 },
            Op::Assign { uuid: uuid(0), axis: MatrixAxis::Domain, id: 5 },
        ];
        for op in &prelude {
            host.apply(op).expect("the prelude applies on every profile");
        }
        for op in ops {
            let before = host.clone();
            if host.apply(&op).is_err() {
                prop_assert_eq!(&host.to_state(), &before.to_state(), "a refusal changes nothing");
                continue;
            }
            check(&before, &host).map_err(|e| TestCaseError::fail(format!("after {op:?}: {e}")))?;
            // What a cache was given is closed under parents (a name is
            // looked up in its directory), and it holds some of those
            // directories' listings: limited to such a cache, the changes
            // are exactly the full ones on it.
            let cache = Cache {
                known: tree(&before)
                    .into_keys()
                    .filter(|p| p.is_empty() || !spread(p).is_multiple_of(4))
                    .collect(),
            };
            let limited = tree_changes_known(&before, &host, &cache);
            let expected: Vec<TreeChange> = tree_changes(&before, &host)
                .into_iter()
                .filter(|c| match c {
                    TreeChange::Listing(p) => cache.holds_listing(p),
                    _ => cache.holds(c.path()),
                })
                .collect();
            prop_assert_eq!(limited, expected);
            // A CLI command hands the server a whole new host, loaded from
            // its saved form: the same changes must come out.
            let loaded = Host::from_state(host.to_state()).expect("a saved host loads");
            prop_assert_eq!(tree_changes(&before, &loaded), tree_changes(&before, &host));
            for g in ["g1", "g2"] {
                if let (Some(was), Some(is)) = (before.guest_bus(g), host.guest_bus(g)) {
                    check(was, is).map_err(|e| {
                        TestCaseError::fail(format!("guest {g}'s tree after {op:?}: {e}"))
                    })?;
                }
            }
        }
    }
}
