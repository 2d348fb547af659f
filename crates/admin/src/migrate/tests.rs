//! The migration's rules, one test each: what the target must offer, and
//! the procedure proven on copies of both hosts.

use std::collections::BTreeMap;

use apmatrix_model::profile::OLD;
use apmatrix_model::{
    Apqn, CpuModel, Host, KernelProfile, Mask256, MaskKind, MatrixAxis, Topology, SEED,
};
use uuid::Uuid;

use crate::migrate::{parse_map, plan, Plan, Refusal, Request, StageKind};

const U1: Uuid = Uuid::from_u128(0x669d9b23_fe1b_4ecb_be08_a2fabca99b71);
const U2: Uuid = Uuid::from_u128(0x8da4b1d8_3e14_4ad1_8f0e_5d2a3c4b5e6f);

fn mask(ids: &[u8]) -> Mask256 {
    ids.iter().copied().collect()
}

/// A host of these cards and usage (= control) domains whose masks give
/// the cards in `vfio` to vfio_ap.
fn host(cards: &[(u8, &str)], domains: &str, vfio: &[u8], profile: &'static KernelProfile) -> Host {
    let mut toml = format!("name = \"t\"\nusage_domains = \"{domains}\"\n");
    for (id, ty) in cards {
        toml.push_str(&format!("[[card]]\nid = {id}\ntype = \"{ty}\"\n"));
    }
    let mut h = Host::new(Topology::from_toml(&toml).unwrap(), profile);
    h.set_mask(MaskKind::Apmask, Mask256::FULL.and_not(&mask(vfio)))
        .unwrap();
    h
}

fn mdev(h: &mut Host, uuid: Uuid, adapters: &[u8], domains: &[u8], controls: &[u8]) {
    h.create_mdev(uuid).unwrap();
    for (axis, ids) in [
        (MatrixAxis::Adapter, adapters),
        (MatrixAxis::Domain, domains),
        (MatrixAxis::ControlDomain, controls),
    ] {
        for id in ids {
            h.assign(&uuid, axis, *id as u64).unwrap();
        }
    }
}

/// Cards 05 (CEX8C) and 06 (CEX8P); Guest1 on adapters 5, 6 x domains 4,
/// 0xab, control domain 4.
fn source() -> Host {
    let mut h = host(&[(5, "CEX8C"), (6, "CEX8P")], "4,0x47,0xab", &[5, 6], &SEED);
    mdev(&mut h, U1, &[5, 6], &[4, 0xab], &[4]);
    h.start_guest("Guest1", Some(U1), CpuModel::default())
        .unwrap();
    h
}

/// Cards 06 (CEX8P) and 07 (CEX8C), both for vfio_ap.
fn target() -> Host {
    host(&[(6, "CEX8P"), (7, "CEX8C")], "4,0x47,0xab", &[6, 7], &SEED)
}

fn ask(guest: &str) -> Request {
    Request {
        guest: guest.into(),
        ..Request::default()
    }
}

fn ok(source: &Host, target: &Host, request: &Request) -> Plan {
    plan(source, target, request).unwrap_or_else(|r| panic!("{r}"))
}

fn refused(source: &Host, target: &Host, request: &Request) -> Vec<String> {
    match plan(source, target, request) {
        Ok(p) => panic!("accepted: {:?}", p.adapters),
        Err(Refusal { reasons, .. }) => reasons,
    }
}

fn pairs(p: &Plan) -> Vec<(u8, u8)> {
    p.adapters.iter().map(|m| (m.from, m.to)).collect()
}

#[test]
fn an_adapter_goes_to_the_target_card_of_its_mode_and_keeps_its_number_where_it_can() {
    let p = ok(&source(), &target(), &ask("Guest1"));
    assert_eq!(pairs(&p), [(5, 7), (6, 6)]);
    assert_eq!(p.domains, [(4, 4), (0xab, 0xab)]);
    assert_eq!(p.control_domains, [(4, 4)]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.target_mdev.uuid, U1);
    assert_eq!(p.target_mdev.adapters, mask(&[6, 7]));
    assert_eq!(
        crate::migrate::configuration(&p.target_mdev),
        format!(
            "[[mdev]]\nuuid = \"{U1}\"\nadapters = \"0x06-0x07\"\ndomains = \"0x04,0xab\"\n\
             control_domains = \"0x04\"\nguest = \"Guest1\"\n"
        )
    );
}

#[test]
fn the_procedure_runs_through_the_model_and_the_guest_sees_the_same_under_the_new_numbers() {
    let (s, t) = (source(), target());
    let p = ok(&s, &t, &ask("Guest1"));
    let kinds: Vec<StageKind> = p.stages.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StageKind::Unplug,
            StageKind::Detach,
            StageKind::Migrate,
            StageKind::Assign,
            StageKind::Attach
        ]
    );
    let shells = |k: usize| -> Vec<String> {
        p.stages[k]
            .writes
            .iter()
            .map(|(s, _)| s.shell("/sys"))
            .collect()
    };
    let m = "/sys/devices/vfio_ap/matrix";
    assert_eq!(
        shells(0),
        [
            format!("echo 5 > {m}/{U1}/unassign_adapter"),
            format!("echo 6 > {m}/{U1}/unassign_adapter"),
        ]
    );
    // Each unassignment is a hot unplug of that adapter's queues.
    let unplugged: Vec<Vec<Apqn>> = p.stages[0]
        .writes
        .iter()
        .map(|(_, u)| u.as_ref().unwrap().unplugged())
        .collect();
    assert_eq!(
        unplugged,
        [
            vec![Apqn::new(5, 4), Apqn::new(5, 0xab)],
            vec![Apqn::new(6, 4), Apqn::new(6, 0xab)]
        ]
    );
    assert_eq!(
        shells(3),
        [
            format!("echo {U1} > {m}/mdev_supported_types/vfio_ap-passthrough/create"),
            format!("echo 6 > {m}/{U1}/assign_adapter"),
            format!("echo 7 > {m}/{U1}/assign_adapter"),
            format!("echo 0x04 > {m}/{U1}/assign_domain"),
            format!("echo 0xab > {m}/{U1}/assign_domain"),
            format!("echo 0x04 > {m}/{U1}/assign_control_domain"),
        ]
    );
    let plugged = p.stages[4].update.as_ref().unwrap().plugged();
    assert_eq!(Apqn::list_text(&plugged), "06.0004 06.00ab 07.0004 07.00ab");
    // The source: the guest is gone, its mdev keeps its domains only.
    assert!(p.source_after.guest("Guest1").is_none());
    let left = p.source_after.mdev(&U1).unwrap();
    assert_eq!(
        (left.adapters, left.domains),
        (Mask256::EMPTY, mask(&[4, 0xab]))
    );
    // The target: the guest runs with the same CPU model and sees the
    // source's cards under their new numbers.
    let g = p.target_after.guest("Guest1").unwrap();
    assert_eq!((g.mdev, g.cpu), (Some(U1), CpuModel::default()));
    assert_eq!(
        p.will_see.lszcrypt(),
        "CARD.DOMAIN TYPE  MODE\n------------------------------\n\
         06          CEX8P EP11-Coproc\n06.0004     CEX8P EP11-Coproc\n06.00ab     CEX8P EP11-Coproc\n\
         07          CEX8C CCA-Coproc\n07.0004     CEX8C CCA-Coproc\n07.00ab     CEX8C CCA-Coproc\n"
    );
    assert_eq!(p.will_see.crycb.adm, mask(&[4]));
    // The hosts given are untouched.
    assert_eq!((s, t), (source(), target()));
}

#[test]
fn a_card_of_another_mode_is_no_match_and_the_refusal_says_what_each_target_card_is() {
    let t = host(&[(6, "CEX8P"), (7, "CEX8A")], "4,0x47,0xab", &[6, 7], &SEED);
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            "adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is CEX8P \
          (EP11 coprocessor); adapter 07 is CEX8A (accelerator)"
        ]
    );
}

#[test]
fn a_target_card_must_be_at_least_as_new() {
    let older = host(&[(6, "CEX8P"), (7, "CEX7C")], "4,0x47,0xab", &[6, 7], &SEED);
    assert_eq!(
        refused(&source(), &older, &ask("Guest1")),
        [
            "adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is CEX8P \
          (EP11 coprocessor); adapter 07 is CEX7C, older than CEX8C"
        ]
    );
    // A newer one will do: CEX7C moves to CEX8C, and the guest sees the new type.
    let mut s = host(&[(5, "CEX7C")], "4", &[5], &SEED);
    mdev(&mut s, U1, &[5], &[4], &[]);
    s.start_guest("G", Some(U1), CpuModel::default()).unwrap();
    let p = ok(&s, &target(), &ask("G"));
    assert_eq!(pairs(&p), [(5, 7)]);
    assert_eq!(
        (
            p.adapters[0].from_type.as_str(),
            p.adapters[0].to_type.as_str()
        ),
        ("CEX7C", "CEX8C")
    );
}

#[test]
fn every_apqn_of_the_cross_product_must_be_free_of_the_targets_host() {
    let mut t = target();
    // Adapter 7 in apmask again, domain 4 out of aqmask: 07.0004 is free
    // for vfio_ap, 07.00ab the host's; the guest needs both.
    t.set_mask(MaskKind::Aqmask, Mask256::FULL.and_not(&mask(&[4])))
        .unwrap();
    t.set_mask(MaskKind::Apmask, Mask256::FULL.and_not(&mask(&[6])))
        .unwrap();
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            "adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is CEX8P \
          (EP11 coprocessor); APQN 07.00ab is reserved for the target's host (apmask bit 7 and \
          aqmask bit 0xab are set)"
        ]
    );
    t.set_mask(MaskKind::Apmask, Mask256::FULL.and_not(&mask(&[6, 7])))
        .unwrap();
    t.set_mask(MaskKind::Aqmask, Mask256::FULL).unwrap();
    t.set_mask(MaskKind::Apmask, Mask256::FULL.and_not(&mask(&[6])))
        .unwrap();
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            "adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is CEX8P \
          (EP11 coprocessor); APQNs 07.0004 07.00ab are reserved for the target's host \
          (apmask bit 7 and aqmask bits 0x04, 0xab are set)"
        ]
    );
}

#[test]
fn apqns_in_another_target_mdev_are_named_with_their_mdev_and_guest() {
    let mut t = target();
    // Only 07.00ab and 06.0004 are taken: the guest needs the whole cross product.
    mdev(&mut t, U2, &[7], &[0xab], &[]);
    let u3 = Uuid::from_u128(3);
    mdev(&mut t, u3, &[6], &[4], &[]);
    t.start_guest("Other", Some(U2), CpuModel::default())
        .unwrap();
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            format!(
                "adapter 05 (CEX8C, CCA coprocessor) has no match on the target: adapter 06 is \
                 CEX8P (EP11 coprocessor); APQN 07.00ab is already assigned to mdev {U2} \
                 (guest Other)"
            ),
            format!(
                "adapter 06 (CEX8P, EP11 coprocessor) has no match on the target: APQN 06.0004 \
                 is already assigned to mdev {u3}; adapter 07 is CEX8C (CCA coprocessor)"
            ),
        ]
    );
}

#[test]
fn a_domain_mapping_moves_usage_and_control_domains_and_warns_about_master_keys() {
    let mut t = target();
    mdev(&mut t, U2, &[6, 7], &[4], &[]);
    let mut r = ask("Guest1");
    r.domains = parse_map("4=0x47").unwrap();
    let p = ok(&source(), &t, &r);
    assert_eq!(p.domains, [(4, 0x47), (0xab, 0xab)]);
    assert_eq!(p.control_domains, [(4, 0x47)]);
    assert_eq!(p.target_mdev.domains, mask(&[0x47, 0xab]));
    assert_eq!(
        p.warnings,
        [
            "domain 0x04 becomes domain 0x47 on the target: secure keys live in domains (a CCA \
          or EP11 key is wrapped by its domain's master key), so the target's domain 0x47 needs \
          the same master keys as the source's 0x04, or the guest's secure keys stop working"
        ]
    );
    assert_eq!(
        Apqn::list_text(&p.will_see.apqns()),
        "06.0047 06.00ab 07.0047 07.00ab"
    );
}

#[test]
fn a_mapping_must_name_the_guests_ids_and_keep_them_apart() {
    let mut r = ask("Guest1");
    r.domains = BTreeMap::from([(5, 6), (0xab, 4)]);
    r.adapters = BTreeMap::from([(9, 7)]);
    assert_eq!(
        refused(&source(), &target(), &r),
        [
            "--domains 0x05=0x06: domain 0x05 is none of the guest's usage or control domains \
             (0x04, 0xab)",
            "--domains gives usage domains 0x04 and 0xab the same target domain 0x04",
            "--adapters 9=7: adapter 09 is not one of the guest's (05, 06)",
        ]
    );
    let mut r = ask("Guest1");
    r.adapters = BTreeMap::from([(5, 6)]);
    assert_eq!(
        refused(&source(), &target(), &r),
        [
            "--adapters 5=6: adapter 05 (CEX8C, CCA coprocessor) cannot go to adapter 06: \
             adapter 06 is CEX8P (EP11 coprocessor)",
            "adapter 06 (CEX8P, EP11 coprocessor) has no match on the target: adapter 06 is \
             given to adapter 05 (--adapters); adapter 07 is CEX8C (CCA coprocessor)",
        ]
    );
}

#[test]
fn given_adapter_pairs_are_kept_and_the_rest_matched_around_them() {
    let t = host(
        &[(6, "CEX8P"), (7, "CEX8C"), (8, "CEX8C")],
        "4,0x47,0xab",
        &[6, 7, 8],
        &SEED,
    );
    let mut r = ask("Guest1");
    r.adapters = parse_map("5=8").unwrap();
    let p = ok(&source(), &t, &r);
    assert_eq!(pairs(&p), [(5, 8), (6, 6)]);
    assert!(p.adapters[0].given && !p.adapters[1].given);
}

#[test]
fn the_matching_moves_an_earlier_choice_when_a_later_adapter_has_no_other() {
    // Source 05 (CEX7C) prefers target 05 (its own number), but 06
    // (CEX8C) fits nowhere else; 05 then takes 08 (CEX7C).
    let mut s = host(&[(5, "CEX7C"), (6, "CEX8C")], "4", &[5, 6], &SEED);
    mdev(&mut s, U1, &[5, 6], &[4], &[]);
    s.start_guest("G", Some(U1), CpuModel::default()).unwrap();
    let t = host(&[(5, "CEX8C"), (8, "CEX7C")], "4", &[5, 8], &SEED);
    assert_eq!(pairs(&ok(&s, &t, &ask("G"))), [(5, 8), (6, 5)]);
    // One card for two: the second is told who took it.
    let t = host(&[(5, "CEX8C")], "4", &[5], &SEED);
    assert_eq!(
        refused(&s, &t, &ask("G")),
        [
            "adapter 06 (CEX8C, CCA coprocessor) has no match on the target: adapter 05 fits but \
          is the match of adapter 05"
        ]
    );
}

#[test]
fn domains_and_control_domains_must_exist_on_the_target() {
    let t = host(&[(6, "CEX8P"), (7, "CEX8C")], "0x47,0xab", &[6, 7], &SEED);
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            "domain 0x04 is not a usage domain of the target's LPAR (0x47, 0xab): the guest \
             would lose 05.0004 06.0004; map it to one the target has with --domains 0x04=N",
            "control domain 0x04 is not a control domain of the target's LPAR (0x47, 0xab): \
             the guest would lose control of domain 0x04; map it with --domains 0x04=N",
        ]
    );
    let mut r = ask("Guest1");
    r.domains = parse_map("4=0x47").unwrap();
    assert_eq!(ok(&source(), &t, &r).warnings.len(), 1);
}

#[test]
fn the_target_must_not_run_the_guest_or_have_its_mdev() {
    let mut t = target();
    t.create_mdev(U1).unwrap();
    t.start_guest("Guest1", None, CpuModel::default()).unwrap();
    assert_eq!(
        refused(&source(), &t, &ask("Guest1")),
        [
            "a guest named Guest1 already runs on the target".to_string(),
            format!(
                "the target already has an mdev {U1} (adapters none, domains none): give the \
                 guest's another UUID with --uuid"
            ),
        ]
    );
    let mut t = target();
    t.create_mdev(U1).unwrap();
    let mut r = ask("Guest1");
    r.uuid = Some(U2);
    let p = ok(&source(), &t, &r);
    assert_eq!(p.target_after.guest("Guest1").unwrap().mdev, Some(U2));
}

#[test]
fn only_a_running_guest_with_an_mdev_has_anything_to_move() {
    assert_eq!(
        refused(&source(), &target(), &ask("Nobody")),
        ["no guest Nobody runs on the source"]
    );
    let mut s = source();
    s.start_guest("Plain", None, CpuModel::default()).unwrap();
    assert_eq!(
        refused(&s, &target(), &ask("Plain")),
        [
            "guest Plain has no vfio-ap device on the source: it has no AP devices to move; \
          migrate it as usual"
        ]
    );
}

#[test]
fn what_the_guest_does_not_see_on_the_source_is_not_moved() {
    let mut s = host(&[(5, "CEX8C")], "4", &[5, 9], &SEED);
    mdev(&mut s, U1, &[5, 9], &[4, 0x20], &[4, 0x21]);
    s.start_guest("G", Some(U1), CpuModel::default()).unwrap();
    let p = ok(&s, &target(), &ask("G"));
    assert_eq!(pairs(&p), [(5, 7)]);
    assert_eq!(
        p.warnings,
        [
            format!(
                "adapters 09 of mdev {U1} are not moved: the source has no card for them, so \
                 the guest does not see them"
            ),
            format!(
                "domains 0x20 of mdev {U1} are not moved: they are not usage domains of the \
                 source's LPAR, so the guest does not see them"
            ),
            format!(
                "control domains 0x21 of mdev {U1} are not moved: they are not control domains \
                 of the source's LPAR, so the guest does not see them"
            ),
        ]
    );
    // Both unassigned on the source, so the guest keeps nothing there.
    assert_eq!(p.stages[0].writes.len(), 2);
}

#[test]
fn a_source_kernel_that_refuses_changes_under_a_running_guest_is_unplugged_by_the_detach() {
    let mut s = host(&[(5, "CEX7C"), (6, "CEX7P")], "4,0x47,0xab", &[5, 6], &OLD);
    mdev(&mut s, U1, &[5, 6], &[4, 0xab], &[4]);
    s.start_guest("Guest1", Some(U1), CpuModel::default())
        .unwrap();
    let p = ok(&s, &target(), &ask("Guest1"));
    assert!(p.stages[0].writes.is_empty());
    assert_eq!(
        p.stages[0].note.as_deref(),
        Some(
            "the source's kernel (old) refuses every unassign while a guest uses the mdev \
             (EBUSY); detaching the device unplugs all of the guest's AP devices at once"
        )
    );
    assert_eq!(p.stages[1].update.as_ref().unwrap().unplugged().len(), 4);
    // The mdev keeps its matrix on the source, unused.
    assert_eq!(p.source_after.mdev(&U1).unwrap().adapters, mask(&[5, 6]));
}

#[test]
fn a_cpu_model_that_hides_the_new_domains_is_refused_by_what_the_guest_would_see() {
    let mut s = host(&[(5, "CEX8C")], "4", &[5], &SEED);
    mdev(&mut s, U1, &[5], &[4], &[]);
    let cpu = CpuModel::from_features("apqci=off").unwrap();
    s.start_guest("G", Some(U1), cpu).unwrap();
    let t = host(&[(7, "CEX8C")], "4,0x20", &[7], &SEED);
    let mut r = ask("G");
    r.domains = parse_map("4=0x20").unwrap();
    assert_eq!(
        refused(&s, &t, &r),
        [
            "on the target the guest would not see 07.0020 (its 05.0004): the CPU model has \
          apqci=off: domains above 15 are invisible to the guest (0x20)"
        ]
    );
}

#[test]
fn maps_are_pairs_of_kernel_ids() {
    assert_eq!(
        parse_map("5=7, 0x06=8").unwrap(),
        BTreeMap::from([(5, 7), (6, 8)])
    );
    assert_eq!(parse_map("").unwrap(), BTreeMap::new());
    assert_eq!(
        parse_map("5").unwrap_err(),
        "\"5\" is not FROM=TO, as in 5=7"
    );
    assert_eq!(
        parse_map("5=256").unwrap_err(),
        "\"256\" is not an id (0 to 255, decimal or 0x hex)"
    );
    assert_eq!(parse_map("5=7,5=8").unwrap_err(), "0x05 is mapped twice");
}

/// A guest name may hold `"` and `\` (printable ASCII): the target's
/// configuration quotes it as TOML does, so it reads back.
#[test]
fn the_target_configuration_reads_back_whatever_the_guest_is_called() {
    let m = crate::WantedMdev {
        adapters: [7u8].into_iter().collect(),
        domains: [4u8].into_iter().collect(),
        guest: Some(r#"we"ird\name"#.to_string()),
        ..crate::WantedMdev::empty(uuid::Uuid::from_u128(9))
    };
    let text = super::configuration(&m);
    let back = crate::Config::from_toml(&text).unwrap().resolve().unwrap();
    assert_eq!(
        back.mdevs[0].guest.as_deref(),
        Some(r#"we"ird\name"#),
        "{text}"
    );
    assert_eq!(
        (back.mdevs[0].adapters, back.mdevs[0].domains),
        (m.adapters, m.domains)
    );
}
