//! Every `--json` output against its schema in docs/json/ (docs/json.md):
//! the real binary on hosts that use every field, each document validated,
//! every field the schemas describe seen, and broken documents rejected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

mod common;
use common::{apmatrix as run, succeeded as ok};

/// Placeholders in [`OUTPUTS`]: each stands for every value the host has
/// (an entry with one runs once per value; with none, not on that host).
const MDEV: &str = "{mdev}";
const GUEST: &str = "{guest}";
const CONFIG: &str = "{config}";
/// The configurations check accepts on the host: plan prints no document
/// for the others.
const PLANNABLE: &str = "{plannable}";
const SYSFS: &str = "{sysfs}";
/// A hand-made /etc (definitions, 41-ap.rules) and a kernel command line.
const ETC: &str = "{etc}";
const CMDLINE: &str = "{cmdline}";
/// Demands files for `place`: one it meets, one it meets in part.
const DEMANDS: &str = "{demands}";
/// State files for `migrate` ([`Migration`]): sources where Guest1 runs
/// with an mdev, a target that can take it and one that cannot, and a
/// source and target of their own for `run`, which changes both.
const SOURCE: &str = "{source}";
const FITS: &str = "{fits}";
const REFUSES: &str = "{refuses}";
const RUN_SOURCE: &str = "{run_source}";
const RUN_TARGET: &str = "{run_target}";

/// Every `--json` output: its schema (docs/json/NAME.schema.json) and the
/// command. One line per output.
const OUTPUTS: &[(&str, &[&str])] = &[
    ("host-show", &["host", "show"]),
    ("matrix", &["matrix"]),
    ("mask-show", &["mask", "show"]),
    ("mdev-show", &["mdev", "show", MDEV]),
    ("mdev-list", &["mdev", "list"]),
    ("guest-list", &["guest", "list"]),
    ("guest-lszcrypt", &["guest", "lszcrypt", GUEST]),
    ("lszcrypt", &["lszcrypt"]),
    ("lszcrypt", &["lszcrypt", "-V"]),
    ("lszcrypt", &["lszcrypt", "-V", "--sysfs", SYSFS]),
    ("check", &["check", CONFIG]),
    ("plan", &["plan", PLANNABLE]),
    ("status", &["status"]),
    ("status", &["status", "--etc", ETC, "--cmdline", CMDLINE]),
    ("place", &["place", DEMANDS]),
    (
        "migrate-plan",
        &["migrate", "plan", "Guest1", "--from", SOURCE, "--to", FITS],
    ),
    (
        "migrate-refused",
        &[
            "migrate", "plan", "Guest1", "--from", SOURCE, "--to", REFUSES,
        ],
    ),
    // Refused before it runs: run's target is still untouched then.
    (
        "migrate-refused",
        &[
            "migrate", "run", "Guest1", "--from", RUN_SOURCE, "--to", REFUSES,
        ],
    ),
    (
        "migrate-run",
        &[
            "migrate",
            "run",
            "Guest1",
            "--from",
            RUN_SOURCE,
            "--to",
            RUN_TARGET,
            "--domains",
            "0xab=0x47",
            "--uuid",
            "8da4b1d8-3e14-4ad1-8f0e-5d2a3c4b5e6f",
        ],
    ),
];

/// What the schemas allow but no output of this version prints: (schema,
/// path, JSON type).
const NEVER_PRINTED: &[(&str, &str, &str)] = &[
    // Every step the planner makes has an undo.
    ("plan", "/steps/*/undo", "null"),
];

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/json")
}

fn schema_path(name: &str) -> PathBuf {
    schema_dir().join(format!("{name}.schema.json"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The schema files: name -> schema.
fn schema_files() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(schema_dir()).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let name = file
            .strip_suffix(".schema.json")
            .unwrap_or_else(|| panic!("docs/json/{file} is not a NAME.schema.json"));
        out.insert(name.to_string(), read_json(&path));
    }
    out
}

/// The compiled schemas, by name.
struct Validator {
    schemas: boon::Schemas,
    index: BTreeMap<String, boon::SchemaIndex>,
}

impl Validator {
    fn new() -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        let mut index = BTreeMap::new();
        for (name, schema) in schema_files() {
            let loc = schema_path(&name).display().to_string();
            compiler.add_resource(&loc, schema).unwrap();
            let i = compiler
                .compile(&loc, &mut schemas)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            index.insert(name, i);
        }
        Validator { schemas, index }
    }

    fn check(&self, name: &str, doc: &Value) -> Result<(), String> {
        let i = *self
            .index
            .get(name)
            .unwrap_or_else(|| panic!("no docs/json/{name}.schema.json"));
        self.schemas.validate(doc, i).map_err(|e| format!("{e:#}"))
    }
}

/// A host to run every output on, with the values of the placeholders.
struct State {
    name: &'static str,
    host: PathBuf,
    configs: Vec<String>,
    sysfs: Vec<String>,
    etc: Vec<String>,
    cmdline: Vec<String>,
    demands: Vec<String>,
    migration: Migration,
}

/// The hosts `migrate` moves Guest1 between (state files).
#[derive(Default)]
struct Migration {
    sources: Vec<String>,
    fits: Vec<String>,
    refuses: Vec<String>,
    run_source: Vec<String>,
    run_target: Vec<String>,
}

impl State {
    fn json(&self, args: &[&str]) -> Value {
        let out = run(&self.host, &[&["--json"], args].concat());
        serde_json::from_str(&ok(out)).unwrap()
    }

    fn values(&self, placeholder: &str) -> Vec<String> {
        let field = |args: &[&str], key: &str| -> Vec<String> {
            let list = self.json(args);
            list.as_array()
                .unwrap()
                .iter()
                .map(|v| v[key].as_str().unwrap().to_string())
                .collect()
        };
        match placeholder {
            MDEV => field(&["mdev", "list"], "uuid"),
            GUEST => field(&["guest", "list"], "name"),
            CONFIG => self.configs.clone(),
            PLANNABLE => self
                .configs
                .iter()
                .filter(|c| {
                    let out = run(&self.host, &["--json", "check", c]);
                    serde_json::from_slice::<Value>(&out.stdout).unwrap()["accepted"] == true
                })
                .cloned()
                .collect(),
            SYSFS => self.sysfs.clone(),
            ETC => self.etc.clone(),
            CMDLINE => self.cmdline.clone(),
            DEMANDS => self.demands.clone(),
            SOURCE => self.migration.sources.clone(),
            FITS => self.migration.fits.clone(),
            REFUSES => self.migration.refuses.clone(),
            RUN_SOURCE => self.migration.run_source.clone(),
            RUN_TARGET => self.migration.run_target.clone(),
            _ => unreachable!(),
        }
    }

    /// The command lines of an entry on this host.
    fn expand(&self, args: &[&str]) -> Vec<Vec<String>> {
        let mut lines = vec![Vec::new()];
        for arg in args {
            let values = match *arg {
                MDEV | GUEST | CONFIG | PLANNABLE | SYSFS | ETC | CMDLINE | DEMANDS | SOURCE
                | FITS | REFUSES | RUN_SOURCE | RUN_TARGET => self.values(arg),
                _ => vec![arg.to_string()],
            };
            lines = lines
                .into_iter()
                .flat_map(|l| {
                    values.iter().map(move |v| {
                        let mut l = l.clone();
                        l.push(v.clone());
                        l
                    })
                })
                .collect();
        }
        lines
    }
}

/// A configuration with two errors (APQNs the host keeps) and a warning.
const ERRORS: &str = "[[mdev]]\nname = \"a\"\nadapters = \"4\"\ndomains = \"4\"\n\n[[mdev]]\nname = \"w\"\nadapters = \"9\"\ndomains = \"0x47\"\n";

/// Accepted, with a warning (no card 09) and a guest that will see nothing.
const WARNING: &str = "[masks]\nderive = \"adapters\"\n\n[[mdev]]\nname = \"w\"\nadapters = \"9\"\ndomains = \"0x47\"\nguest = \"Ghost\"\n";

/// The seed host with an old card (07, CEX3C), which stays unbound once
/// apmask takes it from the host.
const OLD_CARD_HOST: &str = r#"name = "schema test"
usage_domains = "0x04-0x06,0x47,0xab,0xff"
[[card]]
id = 0x04
type = "CEX5P"
[[card]]
id = 0x05
type = "CEX5C"
[[card]]
id = 0x06
type = "CEX5A"
[[card]]
id = 0x07
type = "CEX3C"
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A sysfs tree whose bus has APSB, so lszcrypt -V shows SESTAT: one card
/// and a queue in each secure-execution state.
fn apsb_tree(dir: &Path) -> String {
    let root = dir.join("apsb-sys");
    let w = |path: &str, text: &str| {
        write(&root, path, &format!("{text}\n"));
    };
    let link = |path: &str, target: &str| {
        std::os::unix::fs::symlink(target, root.join(path)).unwrap();
    };
    w("bus/ap/features", "APSC APXA QACT RC8A APSB");
    w("bus/ap/ap_domain", "4");
    w(
        "bus/ap/ap_usage_domain_mask",
        &format!("0x08{}", "0".repeat(62)),
    );
    std::fs::create_dir_all(root.join("bus/ap/drivers/cex4card")).unwrap();
    std::fs::create_dir_all(root.join("bus/ap/drivers/vfio_ap")).unwrap();
    let card = "devices/ap/card05";
    for (attr, value) in [
        ("type", "CEX8C"),
        ("hwtype", "14"),
        ("ap_functions", "0x92800000"),
        ("config", "1"),
        ("chkstop", "0"),
        ("online", "1"),
        ("depth", "8"),
        ("request_count", "3"),
        ("pendingq_count", "0"),
        ("requestq_count", "0"),
    ] {
        w(&format!("{card}/{attr}"), value);
    }
    link(
        &format!("{card}/driver"),
        "../../../bus/ap/drivers/cex4card",
    );
    for (domain, functions) in [
        (4, Some("0x92800000")),
        (5, Some("0x92804000")),
        (6, Some("0x92808000")),
        (7, Some("0x9280c000")),
        (8, Some("0x0")),
        (9, None),
    ] {
        let q = format!("{card}/05.{domain:04x}");
        for (attr, value) in [
            ("config", "1"),
            ("chkstop", "0"),
            ("online", "1"),
            ("request_count", "0"),
        ] {
            w(&format!("{q}/{attr}"), value);
        }
        if let Some(f) = functions {
            w(&format!("{q}/ap_functions"), f);
        }
        link(&format!("{q}/driver"), "../../../../bus/ap/drivers/vfio_ap");
    }
    root.display().to_string()
}

/// The hosts: a fresh seed host, and one with an mdev in a guest, mdevs
/// without, host-owned, free, unbound and missing queues, a guest without
/// an mdev, a check-stopped card and an HMC change waiting for a scan.
fn states(dir: &Path) -> Vec<State> {
    let seed_guests = format!(
        "{}/../../examples/seed-guests.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let configs = vec![
        seed_guests.clone(),
        write(dir, "errors.toml", ERRORS),
        write(dir, "warning.toml", WARNING),
    ];
    let fresh = State {
        name: "fresh",
        host: dir.join("fresh.json"),
        configs: configs.clone(),
        sysfs: Vec::new(),
        etc: Vec::new(),
        cmdline: Vec::new(),
        demands: Vec::new(),
        migration: Migration::default(),
    };
    ok(run(&fresh.host, &["host", "init"]));
    let busy = State {
        name: "busy",
        host: dir.join("busy.json"),
        configs,
        sysfs: vec![apsb_tree(dir)],
        etc: vec![dir.join("etc").display().to_string()],
        cmdline: vec![write(
            dir,
            "cmdline",
            "root=/dev/dasda1 ap.apmask=0xzz quiet\n",
        )],
        demands: vec![
            write(dir, "demands-met.toml", "[[guest]]\nname = \"g1\"\nmode = \"cca\"\n"),
            write(
                dir,
                "demands-unmet.toml",
                "[[guest]]\nname = \"g1\"\nmode = \"cca\"\n\n[[guest]]\nname = \"g2\"\nmode = \"ep11\"\ndomains = 2\nadapters = 2\n",
            ),
        ],
        migration: migration(dir),
    };
    let h = &busy.host;
    let from = write(dir, "old-card.toml", OLD_CARD_HOST);
    ok(run(h, &["host", "init", "--from", &from]));
    ok(run(h, &["apply", &seed_guests]));
    // Card 07 leaves the host: nobody binds a CEX3C.
    ok(run(h, &["mask", "set", "apmask", "-7"]));
    let guest1 = busy.values(MDEV)[0].clone();
    ok(run(h, &["guest", "start", "Guest1", "--mdev", &guest1]));
    // No mdev, and a note on why it sees nothing.
    ok(run(h, &["guest", "start", "Lonely", "--cpu", "apft=off"]));
    // Only adapters: the matrix attribute's "09." lines.
    let adapters_only = "11111111-2222-4333-8444-555555555555";
    ok(run(h, &["mdev", "create", "--uuid", adapters_only]));
    ok(run(h, &["mdev", "assign", adapters_only, "--adapter", "9"]));
    ok(run(h, &["host", "card", "4", "checkstop", "on"]));
    ok(run(h, &["host", "adapter", "8", "add", "--type", "CEX6C"]));
    // The persistent side: the seed guests' mdevs defined (manual), two
    // autostart definitions that conflict, one the boot masks refuse, one
    // mdevctl cannot read, and a rule that sets aqmask only.
    let defs = dir.join("etc/mdevctl.d/matrix");
    ok(run(
        h,
        &[
            "export",
            "mdevctl",
            &seed_guests,
            "--dir",
            defs.to_str().unwrap(),
        ],
    ));
    let auto = |attrs: &str| {
        format!("{{\"mdev_type\": \"vfio_ap-passthrough\", \"start\": \"auto\", \"attrs\": [{attrs}]}}\n")
    };
    for (uuid, text) in [
        (
            "aaaaaaaa-0000-4000-8000-000000000001",
            auto(r#"{"assign_adapter": "5"}, {"assign_domain": "5"}"#),
        ),
        (
            "aaaaaaaa-0000-4000-8000-000000000002",
            auto(r#"{"assign_adapter": "5"}, {"assign_domain": "6"}, {"assign_domain": "5"}"#),
        ),
        (
            "aaaaaaaa-0000-4000-8000-000000000003",
            auto(r#"{"assign_adapter": "4"}, {"assign_domain": "4"}"#),
        ),
        (
            "aaaaaaaa-0000-4000-8000-000000000004",
            "{ not json".to_string(),
        ),
    ] {
        write(&defs, uuid, &text);
    }
    write(
        dir,
        "etc/udev/rules.d/41-ap.rules",
        &format!(
            "ACTION==\"add\", SUBSYSTEM==\"ap\", ATTR{{../../bus/ap/aqmask}}=\"0x{}\"\n",
            "f".repeat(64)
        ),
    );
    vec![fresh, busy]
}

/// A host description of these cards and usage (= control) domains.
fn description(cards: &[(u8, &str)], domains: &str) -> String {
    let mut text = format!("name = \"t\"\nusage_domains = \"{domains}\"\n");
    for (id, ty) in cards {
        text.push_str(&format!("[[card]]\nid = {id}\ntype = \"{ty}\"\n"));
    }
    text
}

/// An emulated host `name` of these cards, each given to vfio_ap, on the
/// kernel `kernel`; Guest1 runs there when `guest` names its mdev's
/// adapters.
fn migration_host(
    dir: &Path,
    name: &str,
    kernel: &str,
    cards: &[(u8, &str)],
    domains: &str,
    guest: Option<&str>,
) -> String {
    const U: &str = "669d9b23-fe1b-4ecb-be08-a2fabca99b71";
    let toml = write(dir, &format!("{name}.toml"), &description(cards, domains));
    let path = dir.join(format!("{name}.json"));
    ok(run(
        &path,
        &["host", "init", "--from", &toml, "--kernel", kernel],
    ));
    let mut vfio: Vec<String> = cards.iter().map(|(id, _)| format!("-{id}")).collect();
    if let Some(adapters) = guest {
        // Adapters without a card too, given to vfio_ap so they can be
        // assigned.
        vfio.extend(adapters.split(',').map(|a| format!("-{a}")));
        ok(run(&path, &["mask", "set", "apmask", &vfio.join(",")]));
        ok(run(&path, &["mdev", "create", "--uuid", U]));
        ok(run(
            &path,
            &[
                "mdev", "assign", U, "-a", adapters, "-d", "4,0xab", "-c", "4",
            ],
        ));
        ok(run(&path, &["guest", "start", "Guest1", "--mdev", U]));
    } else {
        ok(run(&path, &["mask", "set", "apmask", &vfio.join(",")]));
    }
    path.display().to_string()
}

/// The migration's hosts: sources on the seed kernel (with an adapter
/// that has no card: a warning that it is not moved) and on old (no
/// unassignment under a running guest: the unplug's note); a target of
/// another card layout, and one of an accelerator only, without domain
/// 0xab.
fn migration(dir: &Path) -> Migration {
    let cards = [(5, "CEX8C"), (6, "CEX8P")];
    let old_cards = [(5, "CEX7C"), (6, "CEX7P")];
    let target = [(6, "CEX8P"), (7, "CEX8C")];
    let all = "4,0x47,0xab";
    let d = dir.join("migrate");
    std::fs::create_dir_all(&d).unwrap();
    let host = |name, kernel, cards: &[(u8, &str)], domains, guest| {
        migration_host(&d, name, kernel, cards, domains, guest)
    };
    Migration {
        sources: vec![
            host("src", "seed", &cards, all, Some("5,6,9")),
            host("src-old", "old", &old_cards, all, Some("5,6")),
        ],
        fits: vec![host("dst", "seed", &target, all, None)],
        refuses: vec![host("accel", "seed", &[(7, "CEX8A")], "4,0x47", None)],
        run_source: vec![host("run-src", "old", &old_cards, all, Some("5,6"))],
        run_target: vec![host("run-dst", "seed", &target, all, None)],
    }
}

/// Runs every entry of [`OUTPUTS`] on every host: (schema, command, document).
fn outputs(dir: &Path) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    let mut ran = BTreeSet::new();
    for state in states(dir) {
        for (entry, (schema, args)) in OUTPUTS.iter().enumerate() {
            for line in state.expand(args) {
                let mut full = vec!["--json".to_string()];
                full.extend(line.iter().cloned());
                let argv: Vec<&str> = full.iter().map(String::as_str).collect();
                let o = run(&state.host, &argv);
                let shown = format!("{}: apmatrix {}", state.name, argv.join(" "));
                let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
                    panic!(
                        "{shown}: not one JSON document ({e}): {}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                });
                // Only a check that finds errors fails, and it still prints.
                // ... and a placement that leaves demands unmet, and a
                // migration refused.
                let failed = doc.get("accepted") == Some(&Value::Bool(false))
                    || doc.get("met") != doc.get("total")
                    || doc.get("refused").is_some();
                assert_eq!(
                    o.status.code(),
                    Some(if failed { 1 } else { 0 }),
                    "{shown}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                out.push((*schema, shown, doc));
                ran.insert(entry);
            }
        }
    }
    for (entry, (schema, args)) in OUTPUTS.iter().enumerate() {
        assert!(ran.contains(&entry), "{schema} {args:?} ran on no host");
    }
    out
}

#[test]
fn every_json_output_is_valid_against_its_schema_and_uses_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let validator = Validator::new();
    let docs = outputs(tmp.path());
    let mut seen: BTreeMap<&str, BTreeSet<(String, &'static str)>> = BTreeMap::new();
    for (schema, shown, doc) in &docs {
        if let Err(e) = validator.check(schema, doc) {
            panic!("{shown}: not valid against docs/json/{schema}.schema.json: {e}\n{doc:#}");
        }
        collect_paths(doc, "", seen.entry(schema).or_default());
    }
    // Every schema is some output's, and each of its fields was printed
    // in each type it allows.
    let files = schema_files();
    for (name, schema) in &files {
        let printed = seen
            .get(name.as_str())
            .unwrap_or_else(|| panic!("docs/json/{name}.schema.json: no output in OUTPUTS"));
        let mut wanted = BTreeSet::new();
        expected_paths(schema, schema, "", &mut wanted);
        for (path, kind) in wanted {
            if NEVER_PRINTED.contains(&(name.as_str(), path.as_str(), kind.unwrap_or(""))) {
                continue;
            }
            let found = printed
                .iter()
                .any(|(p, k)| *p == path && kind.is_none_or(|kind| type_matches(kind, k)));
            assert!(
                found,
                "{name}: no output printed {path:?}{}",
                kind.map_or(String::new(), |k| format!(" as {k}"))
            );
        }
    }
    // The owner map shows every kind of owner.
    let owners: BTreeSet<&str> = docs
        .iter()
        .filter(|(s, _, _)| *s == "matrix")
        .flat_map(|(_, _, d)| d["cells"].as_array().unwrap())
        .map(|c| c["owner"].as_str().unwrap())
        .collect();
    assert_eq!(
        owners,
        BTreeSet::from(["free", "host", "mdev", "none", "unbound"])
    );
}

/// Every key path of a document ("/cards/*/id", with "*" for an array's
/// items) with the JSON types it had.
fn collect_paths(v: &Value, path: &str, out: &mut BTreeSet<(String, &'static str)>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(items) => {
            for i in items {
                collect_paths(i, &format!("{path}/*"), out);
            }
            "array"
        }
        Value::Object(map) => {
            for (k, i) in map {
                collect_paths(i, &format!("{path}/{k}"), out);
            }
            "object"
        }
    };
    out.insert((path.to_string(), kind));
}

fn type_matches(wanted: &str, printed: &str) -> bool {
    wanted == printed || (wanted == "number" && printed == "integer")
}

/// What a schema describes: every property path (in any type), array items
/// (at least one printed), and each branch of an anyOf in its type (so a
/// field that may be null is seen both ways).
fn expected_paths(
    root: &Value,
    s: &Value,
    path: &str,
    out: &mut BTreeSet<(String, Option<&'static str>)>,
) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        expected_paths(root, resolve(root, r), path, out);
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            let p = format!("{path}/{k}");
            out.insert((p.clone(), None));
            expected_paths(root, sub, &p, out);
        }
    }
    if let Some(items) = s.get("items") {
        let p = format!("{path}/*");
        out.insert((p.clone(), None));
        expected_paths(root, items, &p, out);
    }
    for branch in s
        .get("anyOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut b = branch;
        while let Some(r) = b.get("$ref").and_then(Value::as_str) {
            b = resolve(root, r);
        }
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{path}: an anyOf branch without a type"));
        out.insert((path.to_string(), Some(json_type(kind))));
        expected_paths(root, branch, path, out);
    }
}

fn json_type(name: &str) -> &'static str {
    [
        "null", "boolean", "integer", "number", "string", "array", "object",
    ]
    .into_iter()
    .find(|t| *t == name)
    .unwrap_or_else(|| panic!("{name} is not a JSON type"))
}

/// A `#/$defs/NAME` reference of the same file.
fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let name = reference
        .strip_prefix("#/$defs/")
        .unwrap_or_else(|| panic!("{reference}: only #/$defs/NAME references"));
    &root["$defs"][name]
}

/// The first object of a document: itself, or its first item.
fn first_object(doc: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    match doc {
        Value::Object(map) => Some(map),
        Value::Array(items) => items.iter_mut().find_map(first_object),
        _ => None,
    }
}

/// Fields a document's first object may go without.
const OPTIONAL: &[(&str, &str)] = &[("host-show", "waiting_for_scan"), ("lszcrypt", "sestat")];

#[test]
fn broken_documents_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let validator = Validator::new();
    let docs = outputs(tmp.path());
    let rejected = |schema: &str, doc: &Value, what: &str| {
        assert!(
            validator.check(schema, doc).is_err(),
            "{schema}: {what} was accepted:\n{doc:#}"
        );
    };
    // For every schema: an unknown field, and each field left out.
    for name in schema_files().keys() {
        let mut doc = docs
            .iter()
            .filter(|(s, _, _)| s == name)
            .map(|(_, _, d)| d.clone())
            .find(|d| d.is_object() || d.as_array().is_some_and(|a| !a.is_empty()))
            .unwrap_or_else(|| panic!("{name}: no document with an object"));
        assert!(validator.check(name, &doc).is_ok());
        let object = first_object(&mut doc).unwrap();
        let keys: Vec<String> = object.keys().cloned().collect();
        object.insert("unexpected".into(), json!(1));
        rejected(name, &doc, "an unknown field");
        for key in keys {
            if OPTIONAL.contains(&(name.as_str(), key.as_str())) {
                continue;
            }
            let mut without = doc.clone();
            let object = first_object(&mut without).unwrap();
            object.remove("unexpected");
            object.remove(&key);
            rejected(name, &without, &format!("a document without {key:?}"));
        }
    }
    // Values out of their patterns and rules.
    let find = |schema: &str, pick: &dyn Fn(&Value) -> bool| -> Value {
        docs.iter()
            .find(|(s, _, d)| *s == schema && pick(d))
            .map(|(_, _, d)| d.clone())
            .unwrap_or_else(|| panic!("no {schema} document to break"))
    };
    let any = |_: &Value| true;
    let broken: Vec<(&str, Value, &str)> = vec![
        (
            "mask-show",
            {
                let mut d = find("mask-show", &any);
                d["apmask"] = json!(format!("0x{}", "f".repeat(63)));
                d
            },
            "a mask of 63 digits",
        ),
        (
            "mask-show",
            {
                let mut d = find("mask-show", &any);
                d["aqmask"] = json!(format!("0x{}", "F".repeat(64)));
                d
            },
            "a mask in upper case",
        ),
        (
            "mdev-show",
            {
                let mut d = find("mdev-show", &any);
                d["uuid"] = json!(d["uuid"].as_str().unwrap().to_uppercase().replace('1', "G"));
                d
            },
            "a UUID that is not one",
        ),
        (
            "mdev-show",
            {
                let mut d = find("mdev-show", &any);
                d["adapters"] = json!("0x5");
                d
            },
            "a hex list with one digit",
        ),
        (
            "mdev-show",
            {
                let mut d = find("mdev-show", &any);
                d["apqns"] = json!(-1);
                d
            },
            "a negative count",
        ),
        (
            "mdev-list",
            {
                let mut d = find("mdev-list", &|d| !d.as_array().unwrap().is_empty());
                d[0]["matrix"] = json!(["5.4"]);
                d
            },
            "a matrix line that is no APQN",
        ),
        (
            "host-show",
            {
                let mut d = find("host-show", &any);
                d["name"] = json!("seed example");
                d
            },
            "the name field",
        ),
        (
            "host-show",
            {
                let mut d = find("host-show", &any);
                d["profile"] = json!("upstream");
                d
            },
            "an unknown profile",
        ),
        (
            "host-show",
            {
                let mut d = find("host-show", &|d| d.get("waiting_for_scan").is_none());
                d["waiting_for_scan"] = json!([]);
                d
            },
            "an empty waiting_for_scan (left out instead)",
        ),
        (
            "matrix",
            {
                let mut d = find("matrix", &any);
                let cell = d["cells"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|c| c["owner"] == "host")
                    .unwrap();
                cell["mdev"] = json!("11111111-2222-4333-8444-555555555555");
                d
            },
            "a host-owned cell with an mdev",
        ),
        (
            "matrix",
            {
                let mut d = find("matrix", &|d| d["mdevs"].as_array().unwrap().len() > 1);
                let cell = d["cells"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|c| c["owner"] == "mdev")
                    .unwrap();
                cell.as_object_mut().unwrap().remove("mdev");
                d
            },
            "an mdev's cell without its mdev",
        ),
        (
            "guest-list",
            {
                let mut d = find("guest-list", &|d| !d.as_array().unwrap().is_empty());
                d[0]["cpu"] = json!("ap=on");
                d
            },
            "a CPU model without its features",
        ),
        (
            "guest-lszcrypt",
            {
                let mut d = find("guest-lszcrypt", &any);
                d["crycb"]["apm"] = json!("0x0");
                d
            },
            "a short CRYCB mask",
        ),
        (
            "lszcrypt",
            {
                let mut d = find("lszcrypt", &|d| !d.as_array().unwrap().is_empty());
                d[0]["functions"] = json!("S-");
                d
            },
            "a FUNCTIONS cell of two letters",
        ),
        (
            "lszcrypt",
            {
                let mut d = find("lszcrypt", &|d| !d.as_array().unwrap().is_empty());
                d[0]["sestat"] = json!("maybe");
                d
            },
            "an unknown SESTAT",
        ),
        (
            "check",
            {
                let mut d = find("check", &|d| d["errors"] != 0);
                d["accepted"] = json!(true);
                d
            },
            "an accepted configuration with errors",
        ),
        (
            "check",
            {
                let mut d = find("check", &|d| d["errors"] == 0);
                d["accepted"] = json!(false);
                d
            },
            "a rejected configuration without errors",
        ),
        (
            "check",
            {
                let mut d = find("check", &|d| !d["problems"].as_array().unwrap().is_empty());
                d["problems"][0]["severity"] = json!("fatal");
                d
            },
            "an unknown severity",
        ),
        (
            "plan",
            {
                let mut d = find("plan", &|d| !d["steps"].as_array().unwrap().is_empty());
                d["steps"][0]["path"] = json!("/sys/bus/ap/apmask");
                d
            },
            "an absolute step path",
        ),
        (
            "plan",
            {
                let mut d = find("plan", &|d| !d["steps"].as_array().unwrap().is_empty());
                d["steps"][0]["undo"] = json!({"path": "bus/ap/apmask"});
                d
            },
            "an undo without its value",
        ),
        (
            "migrate-plan",
            {
                let mut d = find("migrate-plan", &any);
                d["steps"][4]["on"] = json!("source");
                d
            },
            "an attach on the source",
        ),
        (
            "migrate-plan",
            {
                let mut d = find("migrate-plan", &any);
                d["steps"].as_array_mut().unwrap().pop();
                d
            },
            "a procedure without its last stage",
        ),
        (
            "migrate-plan",
            {
                let mut d = find("migrate-plan", &any);
                d["adapters"][0]["to"] = json!(256);
                d
            },
            "an adapter beyond 255",
        ),
        (
            "migrate-run",
            {
                let mut d = find("migrate-run", &any);
                d["will_see"] = json!(["7.4"]);
                d
            },
            "an APQN not as the kernel names it",
        ),
        (
            "migrate-run",
            {
                let mut d = find("migrate-run", &any);
                d["target_mdev"]["adapters"] = json!([]);
                d
            },
            "a target mdev without adapters",
        ),
        (
            "migrate-refused",
            {
                let mut d = find("migrate-refused", &any);
                d["refused"] = json!([]);
                d
            },
            "a refusal without a reason",
        ),
    ];
    for (schema, doc, what) in &broken {
        rejected(schema, doc, what);
    }
}

#[test]
fn the_schema_files_are_draft_2020_12_schemas_with_versioned_ids() {
    const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
    let files = schema_files();
    assert!(!files.is_empty());
    // Each is an instance of the draft's metaschema; a broken one is not.
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let meta = compiler.compile(DRAFT, &mut schemas).unwrap();
    for (name, schema) in &files {
        if let Err(e) = schemas.validate(schema, meta) {
            panic!("{name}: not a valid schema: {e:#}");
        }
    }
    let broken = json!({"$schema": DRAFT, "type": "strnig", "required": "uuid"});
    assert!(schemas.validate(&broken, meta).is_err());
    let mut c = boon::Compiler::new();
    c.add_resource("broken.schema.json", broken).unwrap();
    assert!(c
        .compile("broken.schema.json", &mut boon::Schemas::new())
        .is_err());
    // The metadata docs/json.md promises, and its links.
    let doc = std::fs::read_to_string(schema_dir().join("../json.md")).unwrap();
    let mut defs: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for (name, schema) in &files {
        assert_eq!(schema["$schema"], DRAFT, "{name}");
        let id = schema["$id"].as_str().unwrap();
        let version = id
            .strip_prefix(&format!("https://apmatrix.invalid/json/{name}/"))
            .unwrap_or_else(|| {
                panic!("{name}: $id {id} is not https://apmatrix.invalid/json/{name}/N")
            });
        assert!(
            !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_digit())
                && !version.starts_with('0'),
            "{name}: $id {id} has no version"
        );
        assert!(
            doc.contains(&format!("(json/{name}.schema.json)")),
            "docs/json.md does not link {name}"
        );
        assert!(
            doc.contains(&format!("`{id}`")),
            "docs/json.md does not give {id}"
        );
        assert!(
            schema["title"].is_string() && schema["description"].is_string(),
            "{name}"
        );
        closed(schema, name, "");
        // A definition of one name is the same in every file.
        for (def, body) in schema["$defs"].as_object().into_iter().flatten() {
            match defs.get(def) {
                Some((first, other)) => assert_eq!(
                    body, other,
                    "$defs/{def} differs between {first} and {name}"
                ),
                None => {
                    defs.insert(def.clone(), (name.clone(), body.clone()));
                }
            }
        }
    }
    for (schema, _) in OUTPUTS {
        assert!(
            files.contains_key(*schema),
            "no docs/json/{schema}.schema.json"
        );
    }
}

/// Every object schema says which fields it has and that there are no
/// others, and requires at least one.
fn closed(s: &Value, name: &str, at: &str) {
    let Some(map) = s.as_object() else { return };
    if map.get("type") == Some(&json!("object")) {
        assert_eq!(
            map.get("additionalProperties"),
            Some(&json!(false)),
            "{name}{at}: additionalProperties is not false"
        );
        let props = map["properties"].as_object().unwrap();
        let required = map["required"].as_array().unwrap();
        for r in required {
            assert!(
                props.contains_key(r.as_str().unwrap()),
                "{name}{at}: {r} required, not described"
            );
        }
    }
    for (k, v) in map {
        match v {
            Value::Object(_) => closed(v, name, &format!("{at}/{k}")),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    closed(item, name, &format!("{at}/{k}/{i}"));
                }
            }
            _ => {}
        }
    }
}
