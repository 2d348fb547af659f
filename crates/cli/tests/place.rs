//! `apmatrix place`: demands in, a configuration out that `check` accepts
//! and `apply` makes, guests that then see what they asked for; unmet
//! demands named with their reasons and status 1.

mod common;

use common::*;

const SEED_DEMANDS: &str = r#"
# The seed document's three guests, as demands.
[[guest]]
name = "Guest1"
domains = 4
adapters = 2
mode = ["cca", "accelerator"]
autostart = true

[[guest]]
name = "Guest2"
domains = 2
mode = "cca"

[[guest]]
name = "Guest3"
domains = 2
mode = "accelerator"
"#;

#[test]
fn the_seed_guests_are_placed_applied_and_started() {
    let (tmp, host, _dir) = fresh_host();
    succeeded(apmatrix(&host, &["mask", "set", "apmask", "-5,-6"]));
    let demands = tmp.path().join("demands.toml");
    std::fs::write(&demands, SEED_DEMANDS).unwrap();
    let config = succeeded(apmatrix(&host, &["place", demands.to_str().unwrap()]));
    assert!(
        config.starts_with("# apmatrix place: 3 of 3 guests placed"),
        "{config}"
    );
    assert!(config.contains("autostart = true"), "{config}");
    let file = tmp.path().join("config.toml");
    std::fs::write(&file, &config).unwrap();
    let checked = apmatrix(&host, &["check", file.to_str().unwrap()]);
    assert!(checked.status.success(), "{checked:?}");
    succeeded(apmatrix(&host, &["apply", file.to_str().unwrap()]));
    let mdevs: serde_json::Value =
        serde_json::from_str(&succeeded(apmatrix(&host, &["--json", "mdev", "list"]))).unwrap();
    let placed: serde_json::Value = serde_json::from_str(&{
        let out = apmatrix(&host, &["--json", "place", demands.to_str().unwrap()]);
        String::from_utf8(out.stdout).unwrap()
    })
    .unwrap();
    // Placed again on the host that has them, each is there already.
    assert_eq!(placed["met"], 0);
    assert!(placed["unmet"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("exists already"));
    for (name, apqns) in [("Guest1", 4), ("Guest2", 2), ("Guest3", 2)] {
        let m = mdevs
            .as_array()
            .unwrap()
            .iter()
            .find(|m| {
                m["uuid"]
                    == serde_json::to_value(uuid::Uuid::new_v5(
                        &apmatrix_admin::NAME_NAMESPACE,
                        name.as_bytes(),
                    ))
                    .unwrap()
            })
            .unwrap_or_else(|| panic!("no mdev for {name}: {mdevs}"));
        assert_eq!(m["apqns"], apqns, "{name}");
        let uuid = m["uuid"].as_str().unwrap();
        succeeded(apmatrix(&host, &["guest", "start", name, "--mdev", uuid]));
        let seen = succeeded(apmatrix(&host, &["guest", "lszcrypt", name]));
        let queues = seen
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|t| t.len() == 7 && t.as_bytes()[2] == b'.')
            .count();
        assert_eq!(queues, apqns, "{name} sees:\n{seen}");
    }
}

#[test]
fn unmet_demands_are_named_and_the_rest_is_still_printed() {
    let (tmp, host, _dir) = fresh_host();
    succeeded(apmatrix(&host, &["mask", "set", "apmask", "-5"]));
    let demands = tmp.path().join("demands.toml");
    std::fs::write(
        &demands,
        "[[guest]]\nname = \"ok\"\nmode = \"cca\"\n\n[[guest]]\nname = \"Guest7\"\nmode = \"ep11\"\ndomains = 2\nadapters = 2\n\n[[guest]]\nname = \"big\"\nmode = \"cca\"\ndomains = 8\n",
    )
    .unwrap();
    let out = apmatrix(&host, &["place", demands.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stdout.contains("name = \"ok\""), "{stdout}");
    assert!(!stdout.contains("name = \"big\""), "{stdout}");
    assert_eq!(
        stderr,
        "apmatrix: 2 of 3 guests not placed (the configuration has the other 1):\n  \
         Guest7 needs 2 EP11 domains on 2 adapters; no EP11 adapter has EP11 domains free; \
         adapter 0x04 has no domain free for vfio_ap (the masks keep it for the host, or mdevs have its domains)\n  \
         big needs 8 CCA domains on 1 adapter; no 8 domains are free on 1 of the CCA adapter 0x05 at once \
         (an mdev has each of its domains on each of its adapters)\n"
    );
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[guest]]\nname = \"g\"\nmode = \"cca\"\nadapters = 0\n",
    )
    .unwrap();
    let out = apmatrix(&host, &["place", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bad.toml: guest g: adapters = 0: from 1 to 256"),
        "{err}"
    );
}

#[test]
fn place_reads_a_mounted_emulator_as_it_reads_the_state_file() {
    if !can_run("place on the tree", &fuse_missing()) {
        return;
    }
    let (tmp, host, dir) = fresh_host();
    succeeded(apmatrix(&host, &["mask", "set", "apmask", "-5,-6"]));
    let demands = tmp.path().join("demands.toml");
    std::fs::write(&demands, SEED_DEMANDS).unwrap();
    let from_file = succeeded(apmatrix(&host, &["place", demands.to_str().unwrap()]));
    let _served = Served::start(&host, &dir);
    let from_tree = succeeded(apmatrix(
        &host,
        &[
            "place",
            demands.to_str().unwrap(),
            "--sysfs",
            dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(from_file, from_tree);
}
