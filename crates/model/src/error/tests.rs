use super::*;

/// One error of every kind. The `match` has no wildcard, so a new
/// kind does not compile until it is listed here too.
fn one_of_each() -> Vec<ApError> {
    let (m, g) = (Uuid::nil(), "Guest1".to_string());
    let apqns = ApqnList(vec![Apqn::new(5, 4)]);
    let all = vec![
        ApError::invalid("apmask", b"x", "a rule"),
        ApError::NumberOutOfRange {
            target: "t".into(),
            input: "9".repeat(30),
        },
        ApError::IdAboveMaximum {
            axis: MatrixAxis::Adapter,
            id: 300,
            max: 255,
        },
        ApError::ReservedForHost {
            mdev: m,
            axis: MatrixAxis::Domain,
            id: 4,
            apqns: apqns.clone(),
            apmask_bit: 5,
            aqmask_bit: 4,
        },
        ApError::NotBoundToVfioAp {
            mdev: m,
            axis: MatrixAxis::Domain,
            id: 4,
            detail: "d".into(),
        },
        ApError::AssignedToOtherMdev {
            mdev: m,
            axis: MatrixAxis::Adapter,
            id: 5,
            apqns: apqns.clone(),
            other: m,
            other_guest: Some(g.clone()),
        },
        ApError::ApConfigReservedForHost {
            mdev: m,
            apqns: apqns.clone(),
            reason: "reserved for the host by apmask and aqmask",
        },
        ApError::ApConfigShared {
            mdev: m,
            apqns: apqns.clone(),
            other: m,
            other_guest: None,
        },
        ApError::MaskReclaimsAssigned {
            errno: Errno::EBUSY,
            mask: MaskKind::Apmask,
            new: "+5".into(),
            apqns,
            mdev: m,
            guest: None,
        },
        ApError::MatrixLockedWhileRunning {
            errno: Errno::EBUSY,
            mdev: m,
            guest: g.clone(),
        },
        ApError::NoSuchMdev(m),
        ApError::MdevExists(m),
        ApError::NoInstancesLeft {
            errno: Errno::EUSERS,
            limit: 4,
        },
        ApError::MdevInUse {
            errno: Errno::EBUSY,
            mdev: m,
            guest: g.clone(),
        },
        ApError::RemoveWaitsForRelease {
            mdev: m,
            guest: g.clone(),
        },
        ApError::NoSuchGuest(g.clone()),
        ApError::GuestExists(g.clone()),
        ApError::MdevAttachedElsewhere {
            mdev: m,
            guest: g.clone(),
        },
        ApError::GuestHasMdev {
            guest: g.clone(),
            mdev: m,
        },
        ApError::GuestHasNoMdev(g),
        ApError::DeviceUnavailable {
            device: "card05".into(),
            reason: "r".into(),
        },
    ];
    for e in &all {
        match e {
            ApError::InvalidInput { .. }
            | ApError::NumberOutOfRange { .. }
            | ApError::IdAboveMaximum { .. }
            | ApError::ReservedForHost { .. }
            | ApError::NotBoundToVfioAp { .. }
            | ApError::AssignedToOtherMdev { .. }
            | ApError::ApConfigReservedForHost { .. }
            | ApError::ApConfigShared { .. }
            | ApError::MaskReclaimsAssigned { .. }
            | ApError::MatrixLockedWhileRunning { .. }
            | ApError::NoSuchMdev(_)
            | ApError::MdevExists(_)
            | ApError::NoInstancesLeft { .. }
            | ApError::MdevInUse { .. }
            | ApError::RemoveWaitsForRelease { .. }
            | ApError::NoSuchGuest(_)
            | ApError::GuestExists(_)
            | ApError::MdevAttachedElsewhere { .. }
            | ApError::GuestHasMdev { .. }
            | ApError::GuestHasNoMdev(_)
            | ApError::DeviceUnavailable { .. } => {}
        }
    }
    all
}

#[test]
fn every_message_starts_with_the_errno_it_returns() {
    for e in one_of_each() {
        let text = e.to_string();
        let prefix = format!("{}: ", e.errno().name());
        assert!(
            text.starts_with(&prefix),
            "{text:?} does not start with {prefix:?}"
        );
    }
}

#[test]
fn errno_numbers_are_linux() {
    assert_eq!(Errno::EADDRNOTAVAIL.code(), 99);
    assert_eq!(Errno::EADDRINUSE.code(), 98);
    assert_eq!(Errno::ENODEV.code(), 19);
    assert_eq!(Errno::EINVAL.code(), 22);
    assert_eq!(Errno::EBUSY.code(), 16);
    assert_eq!(
        Errno::EADDRNOTAVAIL.strerror(),
        "Cannot assign requested address"
    );
}

#[test]
fn reserved_message_names_apqn_and_bits() {
    let e = ApError::ReservedForHost {
        mdev: Uuid::nil(),
        axis: MatrixAxis::Domain,
        id: 0x47,
        apqns: ApqnList(vec![Apqn::new(5, 0x47)]),
        apmask_bit: 5,
        aqmask_bit: 0x47,
    };
    let text = e.to_string();
    assert!(
        text.starts_with(
            "EADDRNOTAVAIL: APQN 05.0047 is reserved for the host (apmask bit 5 and aqmask bit 71 are set)"
        ),
        "{text}"
    );
    assert_eq!(e.errno(), Errno::EADDRNOTAVAIL);
}

#[test]
fn apqn_list_counts_the_rest() {
    let l = ApqnList(vec![Apqn::new(5, 4), Apqn::new(5, 5), Apqn::new(6, 4)]);
    assert_eq!(l.to_string(), "APQN 05.0004 (and 2 more)");
}
