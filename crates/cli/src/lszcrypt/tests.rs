//! lszcrypt on the emulated host's tree (the FUSE-free path); the real
//! tool's output is compared in tests/s390_tools.rs.

use apmatrix_admin::EmulatedRoot;
use apmatrix_model::{AdapterId, Apqn, Host, WriteTarget};

use super::*;

fn table_text(host: Host, options: Options) -> Listing {
    run(&EmulatedRoot { host }, &Action::Table, &options).0
}

fn verbose() -> Options {
    Options {
        verbose: true,
        ..Options::default()
    }
}

#[test]
fn dash_lines_match_the_header_width() {
    for (options, width) in [(Options::default(), 46), (verbose(), 92)] {
        let text = table_text(Host::seed_example(), options).text;
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        let dashes = lines.next().unwrap();
        assert_eq!(header.len(), dashes.len());
        assert_eq!(dashes.len(), width);
    }
}

#[test]
fn offline_queues_and_cards_show_as_offline() {
    let mut host = Host::seed_example();
    host.write(WriteTarget::QueueOnline(Apqn::new(4, 0x47)), b"0")
        .unwrap();
    host.write(WriteTarget::CardOnline(AdapterId(6)), b"0")
        .unwrap();
    let (_, rows) = run(&EmulatedRoot { host }, &Action::Table, &Options::default());
    let status = |id: &str| rows.iter().find(|r| r.id == id).unwrap().status.clone();
    assert_eq!(status("04.0047"), "offline");
    assert_eq!(status("04.0004"), "online");
    assert_eq!(status("06"), "offline");
    assert_eq!(status("06.00ab"), "offline");
}

#[test]
fn two_filters_of_a_kind_are_refused() {
    let both = Options {
        cca: true,
        ep11: true,
        ..Options::default()
    };
    let l = table_text(Host::seed_example(), both);
    assert_eq!(l.text, "");
    assert_eq!(
        l.failure.as_deref(),
        Some("Only one of --accelonly or --ccaonly or --ep11only can be specified")
    );
    let both = Options {
        cards: true,
        queues: true,
        ..Options::default()
    };
    let l = table_text(Host::seed_example(), both);
    assert_eq!(
        l.failure.as_deref(),
        Some("Only one of --cardonly or --queueonly can be specified")
    );
}

#[test]
fn device_ids_print_what_they_name_and_stop_at_a_missing_one() {
    let ids = |ids: &[&str]| Options {
        ids: ids.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    };
    let l = table_text(Host::seed_example(), ids(&["5.47", "zz", "9", "4"]));
    let lines: Vec<&str> = l.text.lines().skip(2).collect();
    assert_eq!(lines.len(), 2, "{}", l.text);
    assert!(lines[0].starts_with("05.0047  CEX5C CCA-Coproc  online"));
    assert_eq!(lines[1], "Invalid adpater id!");
    assert_eq!(
        l.failure.as_deref(),
        Some("Error - cryptographic device card09 does not exist.")
    );
    let l = table_text(Host::seed_example(), ids(&[".0047", ".0007"]));
    assert_eq!(l.text.lines().count(), 2 + 3);
    assert_eq!(
        l.failure.as_deref(),
        Some("No queue devices with given domain value found.")
    );
}

#[test]
fn domains_show_all_256_whatever_the_maximum() {
    use apmatrix_model::Topology;
    let text = "usage_domains = \"0-3,84\"\ncontrol_domains = \"0-7\"\nmax_domain_id = 84\n\
                [[card]]\nid = 1\ntype = \"CEX7C\"\n";
    let (host, _) = Host::boot(
        Topology::from_toml(text).unwrap(),
        &apmatrix_model::profile::SEED,
    );
    let root = EmulatedRoot { host };
    let l = run(&root, &Action::Domains, &Options::default()).0;
    let lines: Vec<&str> = l.text.lines().collect();
    assert_eq!(lines.len(), 22, "{}", l.text);
    assert_eq!(
        lines[2],
        "    00  B  B  B  B  C  C  C  C  .  .  .  .  .  .  .  ."
    );
    assert_eq!(
        lines[7],
        "    50  .  .  .  .  U  .  .  .  .  .  .  .  .  .  .  ."
    );
    assert_eq!(
        lines[17],
        "    f0  .  .  .  .  .  .  .  .  .  .  .  .  .  .  .  ."
    );
    let bus = run(&root, &Action::Bus, &Options::default()).0.text;
    assert!(bus.contains("ap_max_domain_id=0x54\n"), "{bus}");
}

#[test]
fn drivers_come_from_the_driver_links() {
    let mut host = Host::seed_example();
    host.write_mask(apmatrix_model::MaskKind::Apmask, b"-5")
        .unwrap();
    let (_, rows) = run(&EmulatedRoot { host }, &Action::Table, &verbose());
    let driver = |id: &str| rows.iter().find(|r| r.id == id).unwrap().driver.clone();
    assert_eq!(driver("05"), "cex4card");
    assert_eq!(driver("04.0004"), "cex4queue");
    assert_eq!(driver("05.0004"), "vfio_ap");
    let pending = |id: &str| rows.iter().find(|r| r.id == id).unwrap().pending.clone();
    assert_eq!(pending("04.0004"), "0");
    assert_eq!(pending("05.0004"), "-");
}
