//! The uevents a change announces tell a listener the whole truth: a udev
//! database kept only from the events (add, bind, unbind, remove) ends up
//! with exactly the devices and drivers the host has, after any sequence
//! of changes on any generation; and every event is one the driver core
//! could send at that point (no bind of a device that is not there, no
//! unbind of one that is not bound).

use std::collections::BTreeMap;

use apmatrix_model::profile::PROFILES;
use apmatrix_model::uevent::{Action, Announcer, Device};
use apmatrix_model::{Host, MaskKind, Op, Topology, WriteTarget};
use proptest::prelude::*;

/// What a listener knows of a device: it exists, bound to this driver.
type Database = BTreeMap<String, Option<String>>;

/// The devices and drivers of `host`, read from its own accessors.
fn truth(host: &Host) -> Database {
    let mut db = Database::new();
    for card in host.card_devices() {
        db.insert(Device::Card(card.id).devpath(), Some("cex4card".into()));
        for d in host.topology().usage_domains.iter() {
            let q = apmatrix_model::Apqn::new(card.id.0, d);
            let driver = host.queue_driver(q).flatten().map(|d| d.name().to_string());
            db.insert(Device::Queue(q).devpath(), driver);
        }
    }
    for m in host.mdevs() {
        db.insert(
            Device::Mdev(m.uuid).devpath(),
            Some(host.profile().sysfs.mdev_driver.to_string()),
        );
    }
    db
}

#[derive(Clone, Debug)]
enum Step {
    Write(WriteTarget, String),
    Apply(Op),
}

fn step() -> impl Strategy<Value = Step> {
    let adapter = prop_oneof![Just(4u8), Just(5), Just(6), Just(7)];
    let id = prop_oneof![Just(4u8), Just(5), Just(6), Just(0x47), Just(0xab), Just(7)];
    let uuid = (0u128..3).prop_map(uuid::Uuid::from_u128);
    prop_oneof![
        (
            any::<bool>(),
            prop::sample::subsequence(vec![4u8, 5, 6, 0x47, 0xab], 0..3),
            any::<bool>()
        )
            .prop_map(|(ap, ids, plus)| {
                let kind = if ap {
                    MaskKind::Apmask
                } else {
                    MaskKind::Aqmask
                };
                let sign = if plus { '+' } else { '-' };
                let text: Vec<String> = ids.iter().map(|i| format!("{sign}{i}")).collect();
                Step::Write(WriteTarget::Mask(kind), text.join(","))
            }),
        uuid.clone()
            .prop_map(|u| Step::Apply(Op::CreateMdev { uuid: u })),
        uuid.clone()
            .prop_map(|u| Step::Apply(Op::RemoveMdev { uuid: u })),
        (uuid, id.clone()).prop_map(|(u, d)| Step::Apply(Op::Assign {
            uuid: u,
            axis: apmatrix_model::MatrixAxis::Domain,
            id: d.into()
        })),
        (adapter.clone(), any::<bool>()).prop_map(|(a, on)| Step::Write(
            WriteTarget::CardOnline(apmatrix_model::AdapterId(a)),
            (on as u8).to_string()
        )),
        (adapter.clone(), any::<bool>()).prop_map(|(a, on)| Step::Write(
            WriteTarget::CardConfig(apmatrix_model::AdapterId(a)),
            (on as u8).to_string()
        )),
        (id, any::<bool>())
            .prop_map(|(d, present)| Step::Apply(Op::SetLparDomain { domain: d, present })),
        adapter
            .clone()
            .prop_map(|a| Step::Apply(Op::RemoveLparAdapter {
                adapter: apmatrix_model::AdapterId(a)
            })),
        (adapter, prop_oneof![Just(11u8), Just(14), Just(9)]).prop_map(|(a, hwtype)| Step::Apply(
            Op::AddLparAdapter {
                adapter: apmatrix_model::AdapterId(a),
                hwtype,
                mode: apmatrix_model::CardMode::CcaCoproc
            }
        )),
        Just(Step::Apply(Op::Rescan)),
    ]
}

/// Applies one event to the listener's database; panics on an event the
/// driver core could not have sent.
fn replay(db: &mut Database, action: Action, devpath: &str, driver: Option<&str>) {
    match action {
        Action::Add => {
            assert!(
                db.insert(devpath.into(), None).is_none(),
                "add of an existing {devpath}"
            );
        }
        Action::Bind => {
            let slot = db
                .get_mut(devpath)
                .unwrap_or_else(|| panic!("bind of a missing {devpath}"));
            assert!(slot.is_none(), "bind of a bound {devpath}");
            *slot = Some(driver.expect("a bind names its driver").to_string());
        }
        Action::Unbind => {
            let slot = db
                .get_mut(devpath)
                .unwrap_or_else(|| panic!("unbind of a missing {devpath}"));
            assert!(slot.is_some(), "unbind of an unbound {devpath}");
            assert_eq!(driver, None, "an unbind carries no DRIVER");
            *slot = None;
        }
        Action::Remove => {
            let was = db
                .remove(devpath)
                .unwrap_or_else(|| panic!("remove of a missing {devpath}"));
            assert!(
                was.is_none(),
                "remove of a bound {devpath}: unbind comes first"
            );
        }
        Action::Change | Action::Move | Action::Online | Action::Offline => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_listener_that_replays_the_events_knows_every_device_and_driver(
        profile in 0..PROFILES.len(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut host = Host::new(Topology::seed_example(), PROFILES[profile]);
        let mut announcer = Announcer::default();
        let mut db = truth(&host);
        for s in steps {
            let before = host.clone();
            let accepted = match &s {
                Step::Write(target, text) => host.write(*target, text.as_bytes()).is_ok(),
                Step::Apply(op) => host.apply(op).is_ok(),
            };
            let events = announcer.between(&before, &host);
            if !accepted {
                prop_assert_eq!(&host, &before);
                prop_assert!(events.is_empty(), "a refusal announces nothing: {:?}", events);
            }
            for e in &events {
                let driver = e.env.iter().find(|(k, _)| k == "DRIVER").map(|(_, v)| v.as_str());
                if e.action == Action::Bind || e.action == Action::Unbind || e.device != Device::ApRoot {
                    replay(&mut db, e.action, &e.devpath, driver);
                }
            }
            prop_assert_eq!(&db, &truth(&host), "after {:?}", s);
        }
    }
}
