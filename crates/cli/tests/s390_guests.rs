//! Debian's s390x lszcrypt (2.35, under qemu-user) inside each of the seed
//! document's guests (`apmatrix exec --guest NAME`): it lists exactly the
//! cards and queues that guest's CRYCB gives it, in the tool's own format.

mod common;
mod s390;

use std::ffi::OsStr;
use std::path::Path;

fn guest_lszcrypt(host: &Path, root: &Path, guest: &str) -> String {
    let lszcrypt = root.join("usr/sbin/lszcrypt");
    let args: [&OsStr; 4] = [
        "qemu-s390x-static".as_ref(),
        "-L".as_ref(),
        root.as_os_str(),
        lszcrypt.as_os_str(),
    ];
    common::in_guest(host, guest, &args)
}

#[test]
fn real_lszcrypt_in_each_seed_guest_lists_what_its_crycb_gives_it() {
    let Some(tools) = s390::tools() else {
        return;
    };
    let (_tmp, host) = common::seed_guests_host();
    let header = "CARD.DOM TYPE  MODE        STATUS     REQUESTS\n\
                  ----------------------------------------------\n";
    let line = |id: &str, (ty, mode): (&str, &str)| {
        format!("{id:<8} {ty} {mode:<11} online            0\n")
    };
    let (c, a) = (("CEX5C", "CCA-Coproc"), ("CEX5A", "Accelerator"));
    let expected = [
        (
            "Guest1",
            vec![
                ("05", c),
                ("05.0004", c),
                ("05.00ab", c),
                ("06", a),
                ("06.0004", a),
                ("06.00ab", a),
            ],
        ),
        ("Guest2", vec![("05", c), ("05.0047", c), ("05.00ff", c)]),
        ("Guest3", vec![("06", a), ("06.0047", a), ("06.00ff", a)]),
    ];
    for (guest, rows) in expected {
        let listing: String = rows.into_iter().map(|(id, card)| line(id, card)).collect();
        assert_eq!(
            guest_lszcrypt(&host, &tools.root, guest),
            format!("{header}{listing}"),
            "{guest}"
        );
    }
}
