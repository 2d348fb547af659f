//! `apmatrix matrix --html FILE` in a real browser: headless Chromium loads
//! the page with every host name resolving to nothing, runs its script,
//! and the DOM it dumps is checked against `apmatrix --json matrix`; a
//! screenshot is kept in `<target>/test-artifacts/matrix.png`.
//!
//! Chromium runs with its own profile and HOME in a temporary directory,
//! never the machine's. Without a `chromium` on PATH the test prints
//! "skipping: chromium not found" and passes, unless
//! APMATRIX_REQUIRE_CHROMIUM=1 (CI; scripts/install-test-deps installs it).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{apmatrix, succeeded, BIN};
use serde_json::Value;

/// Only against a hang: no assertion is about how long Chromium takes.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(300);

const U1: &str = "669d9b23-fe1b-4ecb-be08-a2fabca99b71";
const U2: &str = "8da4b1d8-3e14-4ad1-8f0e-5d2a3c4b5e6f";
const U3: &str = "d1a4b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b";
/// A guest name another user chose: printable, and HTML.
const EVIL: &str = "<script>alert(1)";

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Chromium, or `None` after saying why the test skips.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var("APMATRIX_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "APMATRIX_REQUIRE_CHROMIUM=1 but chromium is not on PATH (scripts/install-test-deps installs it)"
        );
        eprintln!("skipping: chromium not found");
    }
    found
}

/// Headless Chromium with a profile and HOME of its own under `scratch`,
/// no DNS (every name maps to nothing) and no background fetches; `args`
/// then the URL. Its stdout.
fn run_chromium(chromium: &Path, scratch: &Path, args: &[&str], url: &str) -> String {
    let home = scratch.join("home");
    let profile = scratch.join("profile");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes on threads so a chatty Chromium cannot block.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish: {}", err.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap();
    let err = err.join().unwrap();
    assert!(status.success(), "chromium {args:?}: {status}\n{err}");
    out
}

/// The attributes of every start tag beginning with `start`, as Chromium
/// serialises them (values in double quotes, `"` as `&quot;`).
fn tags(dom: &str, start: &str) -> Vec<HashMap<String, String>> {
    dom.match_indices(start)
        .map(|(at, _)| {
            let tag = &dom[at..at + dom[at..].find('>').unwrap()];
            let mut attrs = HashMap::new();
            let mut rest = tag;
            while let Some(eq) = rest.find("=\"") {
                let name = rest[..eq].rsplit([' ', '\n']).next().unwrap().to_string();
                let len = rest[eq + 2..].find('"').unwrap();
                attrs.insert(name, unescape(&rest[eq + 2..eq + 2 + len]));
                rest = &rest[eq + 2 + len + 1..];
            }
            attrs
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The seed host with mdevs: 05.0004 in Guest1's, 06.0047 and 06.00ab in
/// the guest `<script>alert(1)`'s, 05.00ff in one no guest uses.
fn host(dir: &Path) -> PathBuf {
    let host = dir.join("host.json");
    let run = |args: &[&str]| succeeded(apmatrix(&host, args));
    run(&["host", "init"]);
    run(&["mask", "set", "apmask", "--", "-5,-6"]);
    for u in [U1, U2, U3] {
        run(&["mdev", "create", "--uuid", u]);
    }
    run(&["mdev", "assign", U1, "-a", "5", "-d", "4"]);
    run(&["mdev", "assign", U2, "-a", "6", "-d", "0x47,0xab"]);
    run(&["mdev", "assign", U3, "-a", "5", "-d", "0xff"]);
    run(&["guest", "start", "Guest1", "--mdev", U1]);
    run(&["guest", "start", EVIL, "--mdev", U2]);
    host
}

/// Where cargo builds: `<target>/<profile>/apmatrix`.
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn the_page_renders_in_chromium_without_the_network() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let host = host(tmp.path());
    let page = tmp.path().join("matrix.html");
    succeeded(apmatrix(
        &host,
        &["matrix", "--html", page.to_str().unwrap()],
    ));
    let html = std::fs::read_to_string(&page).unwrap();

    // Statically: nothing in it names a place to load from.
    for word in ["http:", "https:", "//", "url(", "@import", "src=", "<link"] {
        assert!(!html.contains(word), "the page contains {word:?}");
    }
    for (at, _) in html.match_indices("href=\"") {
        assert!(html[at + 6..].starts_with('#'), "{}", &html[at..at + 60]);
    }

    let url = format!("file://{}", page.display());
    let dom = run_chromium(&chromium, &tmp.path().join("dump"), &["--dump-dom"], &url);

    // The script ran, and nothing the guest's name holds became markup.
    assert!(dom.contains("data-js=\"ready\""), "{dom}");
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");

    // A cell per APQN, each with the owner `apmatrix matrix` sees and the
    // title the script wrote.
    let map: Value =
        serde_json::from_str(&succeeded(apmatrix(&host, &["--json", "matrix"]))).unwrap();
    let cells = tags(&dom, "<td class=\"apqn");
    let wanted = map["cells"].as_array().unwrap();
    assert_eq!(cells.len(), wanted.len(), "{dom}");
    // Every attribute is one the page means (a stray quote would make one
    // named `"`).
    for c in &cells {
        for name in c.keys() {
            assert!(
                name == "class" || name == "title" || name.starts_with("data-"),
                "attribute {name:?} in {c:?}"
            );
        }
    }
    for w in wanted {
        let apqn = w["apqn"].as_str().unwrap();
        let c = cells
            .iter()
            .find(|c| c["data-apqn"] == apqn)
            .unwrap_or_else(|| panic!("no cell for {apqn}"));
        assert_eq!(c["data-owner"], w["owner"].as_str().unwrap(), "{apqn}");
        assert_eq!(
            c.get("data-mdev").map(String::as_str),
            w["mdev"].as_str(),
            "{apqn}"
        );
        assert_eq!(
            c.get("data-guest").map(String::as_str),
            w["guest"].as_str(),
            "{apqn}"
        );
        assert!(
            c["title"].starts_with(&format!("APQN {apqn}\nnow: ")),
            "{c:?}"
        );
        assert!(c["title"].contains("\nat boot: "), "{c:?}");
    }
    let u1 = cells.iter().find(|c| c["data-apqn"] == "05.0004").unwrap();
    assert_eq!(
        u1["title"],
        format!(
            "APQN 05.0004\nnow: mdev {U1} (a)\nguest: Guest1, sees it\nat boot: host\n\
             after next boot: host\ndrift: see the list below the grid"
        )
    );
    assert_eq!(
        cells.iter().find(|c| c["data-apqn"] == "04.0004").unwrap()["class"],
        "apqn owner-host"
    );

    // The legend names each mdev's guest, the guest's name as text.
    let legend = tags(&dom, "<li data-mdev=");
    assert_eq!(legend.len(), 3, "{dom}");
    let by_uuid = |u: &str| legend.iter().find(|l| l["data-mdev"] == u).unwrap();
    assert_eq!(by_uuid(U1)["data-guest"], "Guest1");
    assert_eq!(by_uuid(U2)["data-guest"], EVIL);
    assert!(!by_uuid(U3).contains_key("data-guest"));
    assert!(dom.contains("<b class=\"guest\">&lt;script&gt;alert(1)</b>"));
    assert!(dom.contains("<b class=\"guest\">Guest1</b>"));

    // The drift list: no mdev is defined, and the boot masks give adapters
    // 05 and 06 back to the host.
    assert!(dom.contains("<ol id=\"drift\">"), "{dom}");
    let drift = tags(&dom, "<li data-kind=");
    let kinds: Vec<&str> = drift.iter().map(|d| d["data-kind"].as_str()).collect();
    assert!(kinds.contains(&"masks"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "undefined").count(), 3);
    assert!(dom.contains("<ol id=\"next-boot\">"));
    assert!(dom.contains("<ul id=\"mdevs\">"));

    // A picture, with 05.0004's layers in the side panel.
    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("matrix.png");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &chromium,
        &tmp.path().join("shot"),
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1400,900",
            "--hide-scrollbars",
        ],
        &format!("{url}#05.0004"),
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
    eprintln!("screenshot: {}", png.display());
}
