//! The page, without a browser: escaping, every owner, the drift marks, size.

use std::path::Path;

use apmatrix_admin::definitions::read_definitions;
use apmatrix_admin::persistent::{boot_masks, cmdline_parameters};
use apmatrix_admin::status::{status, Layers};
use apmatrix_admin::{export, observe, EmulatedRoot, WantedMdev};
use apmatrix_model::{CpuModel, Host, Mask256, MaskKind, MatrixAxis, Topology, SEED};

use super::*;

/// The status of a model host, with the definitions under `etc`.
fn status_of(host: Host, etc: Option<&Path>) -> Status {
    let guests = crate::source::emulated_guests(&host);
    let seen = observe(&EmulatedRoot { host }).unwrap();
    let definitions = etc.map(read_definitions).unwrap_or_default();
    let boot = boot_masks(None, &cmdline_parameters(""));
    status(&Layers {
        seen: &seen,
        guests: &guests,
        boot: &boot,
        definitions: &definitions,
        ap_check: true,
    })
}

fn define(etc: &Path, uuid: Uuid, adapters: &[u8], domains: &[u8], autostart: bool) {
    let dir = etc.join("mdevctl.d/matrix");
    std::fs::create_dir_all(&dir).unwrap();
    let m = WantedMdev {
        adapters: adapters.iter().copied().collect(),
        domains: domains.iter().copied().collect(),
        autostart,
        ..WantedMdev::empty(uuid)
    };
    std::fs::write(dir.join(uuid.to_string()), export::mdevctl_json(&m)).unwrap();
}

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);

/// Every owner: card 01 is a CEX3C given to vfio_ap, which does not
/// drive it (unbound), 02 the host's, 03 given to vfio_ap with mdev A (guest g1) on 03.0000-0001 and the rest free,
/// and a definition of B on adapter 20, which has no card (none).
fn every_owner() -> (Status, tempfile::TempDir) {
    let topology = Topology::from_toml(
        "name = \"small\"\napxa = true\nusage_domains = \"0-3\"\ncontrol_domains = \"0-3\"\n\n\
         [[card]]\nid = 1\ntype = \"CEX3C\"\n\n[[card]]\nid = 2\ntype = \"CEX7C\"\n\n\
         [[card]]\nid = 3\ntype = \"CEX7C\"\n",
    )
    .unwrap();
    let (mut host, _) = Host::boot(topology, &SEED);
    let apmask: Mask256 = (0..=255u8).filter(|a| *a != 1 && *a != 3).collect();
    host.set_mask(MaskKind::Apmask, apmask).unwrap();
    host.create_mdev(A).unwrap();
    host.assign(&A, MatrixAxis::Adapter, 3).unwrap();
    host.assign(&A, MatrixAxis::Domain, 0).unwrap();
    host.assign(&A, MatrixAxis::Domain, 1).unwrap();
    host.start_guest("g1", Some(A), CpuModel::default())
        .unwrap();
    let etc = tempfile::tempdir().unwrap();
    define(etc.path(), B, &[0x20], &[0], true);
    (status_of(host, Some(etc.path())), etc)
}

/// The attributes of each `<td class="apqn ...">`, in page order.
fn cells(page: &str) -> Vec<HashMap<String, String>> {
    page.match_indices("<td class=\"apqn")
        .map(|(at, _)| {
            let tag = &page[at + 4..at + page[at..].find('>').unwrap()];
            attributes(tag)
        })
        .collect()
}

fn attributes(tag: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].rsplit(' ').next().unwrap().to_string();
        let value_end = rest[eq + 2..].find('"').unwrap();
        out.insert(name, rest[eq + 2..eq + 2 + value_end].to_string());
        rest = &rest[eq + 2 + value_end + 1..];
    }
    out
}

fn cell<'a>(cells: &'a [HashMap<String, String>], apqn: &str) -> &'a HashMap<String, String> {
    cells
        .iter()
        .find(|c| c["data-apqn"] == apqn)
        .unwrap_or_else(|| panic!("no cell {apqn}"))
}

#[test]
fn every_owner_kind_is_a_cell_with_its_glyph() {
    let (s, _etc) = every_owner();
    let page = page(&s, "small");
    let cells = cells(&page);
    assert_eq!(cells.len(), s.apqns.len());
    for q in &s.apqns {
        let c = cell(&cells, &q.apqn.to_string());
        assert_eq!(c["data-owner"], q.owner, "{}", q.apqn);
        assert!(c["class"].contains(&format!("owner-{}", q.owner)));
        assert_eq!(c["data-at-boot"], q.at_boot);
        let changes = q.after_boot != q.owner || q.after_boot_mdev != q.mdev;
        assert_eq!(
            c.get("data-after-boot").map(String::as_str),
            changes.then_some(q.after_boot)
        );
    }
    let owners: BTreeSet<&str> = s.apqns.iter().map(|q| q.owner).collect();
    assert_eq!(
        owners,
        BTreeSet::from(["host", "free", "unbound", "mdev", "none"])
    );
    for (apqn, owner, glyph) in [
        ("01.0000", "unbound", ">-</td>"),
        ("02.0000", "host", ">H</td>"),
        ("03.0002", "free", ">.</td>"),
        ("03.0000", "mdev", ">a</td>"),
        ("20.0000", "none", "\"></td>"),
    ] {
        let c = cell(&cells, apqn);
        assert_eq!(c["data-owner"], owner);
        let at = page.find(&format!("data-apqn=\"{apqn}\"")).unwrap();
        let end = at + page[at..].find("</td>").unwrap() + 5;
        assert!(page[..end].ends_with(glyph), "{apqn}: {}", &page[at..end]);
    }
    let a = cell(&cells, "03.0000");
    assert_eq!(a["data-mdev"], A.to_string());
    assert_eq!(a["data-guest"], "g1");
    assert_eq!(a["data-in-guest"], "yes");
    assert!(a["class"].contains(" m0"));
    assert!(!a.contains_key("data-defs"));
    // the definitions naming an APQN, by UUID; their start and node
    // device in the definitions table
    let none = cell(&cells, "20.0000");
    assert_eq!(none["data-defs"], B.to_string());
    assert!(page.contains(&format!("<tr data-uuid=\"{B}\" data-start=\"auto\" data-nodedev=\"mdev_00000000_0000_0000_0000_00000000000b_matrix\">")));
    // rows: every card and adapter 20; columns: the domains named
    for a in ["01", "02", "03", "20"] {
        assert!(page.contains(&format!("<tr data-adapter=\"{a}\">")), "{a}");
    }
    assert!(page.contains("<th data-domain=\"0003\""));
    // the legend: both mdevs, A with its guest, B with its start and node device
    assert!(page.contains("<ul id=\"mdevs\">"));
    let legend = &page[page.find("<ul id=\"mdevs\">").unwrap()..];
    let legend = &legend[..legend.find("</ul>").unwrap()];
    assert!(
        legend.contains(&format!(
            "data-mdev=\"{A}\" data-label=\"a\" data-index=\"0\" data-guest=\"g1\""
        )),
        "{legend}"
    );
    assert!(legend.contains(&format!("data-mdev=\"{B}\" data-label=\"b\" data-index=\"1\" data-start=\"auto\" data-nodedev=\"mdev_00000000_0000_0000_0000_00000000000b_matrix\"")), "{legend}");
}

#[test]
fn drift_is_marked_on_cells_and_listed_with_its_fix() {
    let (s, _etc) = every_owner();
    assert!(!s.drift.is_empty());
    let page = page(&s, "small");
    let cells = cells(&page);
    for q in &s.apqns {
        let c = cell(&cells, &q.apqn.to_string());
        assert_eq!(
            c["class"].split(' ').any(|w| w == "drift"),
            q.drift,
            "{}",
            q.apqn
        );
    }
    assert!(s.apqns.iter().any(|q| q.drift));
    assert!(page.contains("<ol id=\"drift\">"));
    for d in &s.drift {
        let item = format!("<li data-kind=\"{}\"", d.kind);
        assert!(page.contains(&item), "{item}");
        assert!(page.contains(&esc(&d.message)), "{}", d.message);
        assert!(page.contains(&esc(&d.fix)), "{}", d.fix);
    }
    // mdev A is not defined; the masks drift on adapter 03
    let kinds: BTreeSet<&str> = s.drift.iter().map(|d| d.kind).collect();
    assert!(
        kinds.contains("undefined") && kinds.contains("masks"),
        "{kinds:?}"
    );
    // the next boot's starts are listed
    assert!(page.contains("<ol id=\"next-boot\">"));
    for b in &s.next_boot {
        assert!(page.contains(&format!(
            "<li data-uuid=\"{}\" data-started=\"{}\"",
            b.uuid,
            if b.started { "yes" } else { "no" }
        )));
    }
}

#[test]
fn a_boot_failure_is_listed_with_its_reasons() {
    let (mut s, _etc) = every_owner();
    s.next_boot = vec![BootStart {
        uuid: B,
        started: false,
        ap_check: vec!["APQN 20.0000 is <not> available".into()],
        kernel: Some(apmatrix_admin::boot::Refusal {
            attribute: "assign_adapter".into(),
            value: "0x20".into(),
            errno: "ENODEV".into(),
            message: "no such adapter".into(),
        }),
    }];
    let page = page(&s, "t");
    assert!(page.contains(&format!("<li data-uuid=\"{B}\" data-started=\"no\"")));
    assert!(page.contains("ap-check: APQN 20.0000 is &lt;not&gt; available"));
    assert!(page.contains("<code>assign_adapter 0x20</code> with <b>ENODEV</b>"));
}

#[test]
fn every_value_is_escaped() {
    let (mut s, _etc) = every_owner();
    let evil = "<script>alert(\"x\")</script>&'";
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;";
    s.guests = vec![evil.into()];
    for m in &mut s.mdevs {
        if m.guest.is_some() {
            m.guest = Some(evil.into());
        }
    }
    for q in &mut s.apqns {
        if q.guest.is_some() {
            q.guest = Some(evil.into());
        }
        for d in &mut q.definitions {
            d.nodedev = evil.into();
        }
    }
    for d in &mut s.definitions {
        d.nodedev = evil.into();
        d.path = format!("/etc/{evil}");
    }
    for d in &mut s.drift {
        d.message = format!("\"><img src=x onerror=alert(1)>{evil}");
        d.fix = evil.into();
    }
    s.persistent.warnings = vec![evil.into()];
    s.persistent.apmask_from = evil.into();
    s.usage_domains = evil.into();
    s.cards[0].type_name = evil.into();
    let page = page(&s, evil);
    // our own script is the page's only one
    assert_eq!(page.matches("<script").count(), 1, "{page}");
    assert!(!page.contains("<img"));
    assert!(!page.contains("alert(\"x\")"));
    assert!(page.contains(&format!("<title>{escaped}</title>")));
    assert!(page.contains(&format!("data-guest=\"{escaped}\"")));
    assert!(page.contains(&format!("<b class=\"guest\">{escaped}</b>")));
    assert!(page.contains(&format!("data-nodedev=\"{escaped}\"")));
    assert!(page.contains(&format!(
        "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;{escaped}"
    )));
    // no attribute value ends early
    assert_well_formed(&page);
    for c in cells(&page) {
        assert!(c.contains_key("data-at-boot"), "{c:?}");
    }
}

/// Every start tag outside the style and the script is `<name` then
/// ` attr="value"` (no `"` or `<` in the value) or ` attr`, then `>`.
fn assert_well_formed(page: &str) {
    let style = page.find("<style>").unwrap()..page.find("</style>").unwrap();
    let script = page.find("<script>").unwrap()..page.find("</script>").unwrap();
    for (at, _) in page.match_indices('<') {
        if style.contains(&at) && at != style.start || script.contains(&at) && at != script.start {
            continue;
        }
        let rest = &page[at + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let end = rest.find('>').unwrap();
        let tag = &rest[..end];
        let name_len = tag.find(' ').unwrap_or(tag.len());
        assert!(
            tag[..name_len].bytes().all(|b| b.is_ascii_alphanumeric()),
            "bad tag <{tag}>"
        );
        let mut attrs = &tag[name_len..];
        while !attrs.is_empty() {
            let a = attrs
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("<{tag}>: {attrs}"));
            let name_end = a.find(['=', ' ']).unwrap_or(a.len());
            let name = &a[..name_end];
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "<{tag}>: attribute {name:?}"
            );
            attrs = &a[name_end..];
            if let Some(v) = attrs.strip_prefix("=\"") {
                let close = v.find('"').unwrap_or_else(|| panic!("<{tag}>"));
                assert!(!v[..close].contains('<'), "<{tag}>");
                attrs = &v[close + 1..];
            }
        }
    }
}

#[test]
fn every_tag_is_well_formed() {
    let (s, _etc) = every_owner();
    assert_well_formed(&page(&s, "small"));
}

/// Where the page would fetch from: it must be nowhere.
fn external_references(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in [
        "http:",
        "https:",
        "//",
        "url(",
        "@import",
        "src=",
        "<link",
        "<img",
        "<iframe",
        "fetch(",
        "XMLHttpRequest",
        "WebSocket",
    ] {
        if page.contains(word) {
            found.push(word.to_string());
        }
    }
    for (at, _) in page.match_indices("href=\"") {
        if !page[at + 6..].starts_with('#') {
            found.push(page[at..at + 40.min(page.len() - at)].to_string());
        }
    }
    found
}

#[test]
fn nothing_is_loaded_from_elsewhere() {
    let (s, _etc) = every_owner();
    let page = page(&s, "small");
    assert_eq!(external_references(&page), Vec::<String>::new());
    assert!(page.contains("Content-Security-Policy\" content=\"default-src 'none';"));
    assert!(page.starts_with("<!DOCTYPE html>"));
}

#[test]
fn an_empty_host_still_makes_a_page() {
    let (mut s, _etc) = every_owner();
    s.apqns.clear();
    s.cards.clear();
    s.drift.clear();
    s.definitions.clear();
    s.next_boot.clear();
    let page = page(&s, "empty");
    assert!(page.contains("The host has no queues"));
    assert!(page.contains("<ol id=\"drift\">"));
    assert!(page.contains("No drift"));
    assert!(page.contains("<ul id=\"mdevs\">"));
}

/// 256 adapters x 85 domains: adapters 80-ff for vfio_ap, 40 mdevs of
/// 3 adapters x 8 domains, half of them defined and in a guest.
fn large() -> (Status, tempfile::TempDir) {
    let (mut host, _) = Host::boot(Topology::synthetic(256, 85), &SEED);
    let apmask: Mask256 = (0..0x80u8).collect();
    host.set_mask(MaskKind::Apmask, apmask).unwrap();
    let etc = tempfile::tempdir().unwrap();
    for i in 0..40u8 {
        let u = Uuid::from_u128(0x1000 + i as u128);
        host.create_mdev(u).unwrap();
        let adapters: Vec<u8> = (0..3).map(|k| 0x80 + (i / 10) * 3 + k).collect();
        let domains: Vec<u8> = (0..8).map(|k| (i % 10) * 8 + k).collect();
        for a in &adapters {
            host.assign(&u, MatrixAxis::Adapter, *a as u64).unwrap();
        }
        for d in &domains {
            host.assign(&u, MatrixAxis::Domain, *d as u64).unwrap();
        }
        if i % 2 == 0 {
            host.start_guest(&format!("guest{i}"), Some(u), CpuModel::default())
                .unwrap();
            define(etc.path(), u, &adapters, &domains, i % 4 == 0);
        }
    }
    (status_of(host, Some(etc.path())), etc)
}

#[test]
fn a_256_by_85_page_stays_small() {
    let (s, _etc) = large();
    assert_eq!(s.apqns.len(), 256 * 85);
    let page = page(&s, "large");
    eprintln!("256 x 85 page: {} bytes", page.len());
    assert!(page.len() < 3_500_000, "{} bytes", page.len());
    assert_eq!(cells(&page).len(), 256 * 85);
    assert_well_formed(&page);
    assert!(page.contains("<table id=\"matrix\" class=\"compact\">"));
    assert_eq!(page.matches("<li data-mdev=").count(), 40);
    assert_eq!(external_references(&page), Vec::<String>::new());
}
