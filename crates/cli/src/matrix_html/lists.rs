//! The page's lists: the mdevs' legend, the drift, the next boot, the
//! definitions and the masks.

use super::*;

pub(super) fn legend(out: &mut String, mdevs: &[MdevInfo<'_>]) {
    out.push_str("<section id=\"legend\">\n<h2>Mediated devices</h2>\n<ul id=\"mdevs\">\n");
    if mdevs.is_empty() {
        out.push_str("<li class=\"none\">No mdev is active or defined.</li>\n");
    }
    for m in mdevs {
        let _ = write!(
            out,
            "<li data-mdev=\"{}\" data-label=\"{}\" data-index=\"{}\"",
            m.uuid, m.label, m.index
        );
        if let Some(g) = m.guest {
            out.push_str(" data-guest=\"");
            push_esc(out, g);
            out.push('"');
        }
        if let Some(d) = m.definition {
            let _ = write!(
                out,
                " data-start=\"{}\" data-nodedev=\"{}\"",
                esc(d.start),
                esc(&d.nodedev)
            );
        }
        out.push('>');
        swatch(out, m.label, Some(m.index));
        let _ = write!(out, "<div><code class=\"uuid\">{}</code>", m.uuid);
        out.push_str("<span class=\"facts\">");
        match (m.guest, m.apqns) {
            (Some(g), n) => {
                out.push_str("guest <b class=\"guest\">");
                push_esc(out, g);
                let _ = write!(out, "</b> sees {} of its {n} APQN{}", m.seen, plural(n));
            }
            (None, 0) => out.push_str("not active"),
            (None, n) => {
                let _ = write!(out, "no guest, {n} APQN{}", plural(n));
            }
        }
        match m.definition {
            Some(d) => {
                let _ = write!(
                    out,
                    " · defined, start <b>{}</b> · node device <code>{}</code>",
                    esc(d.start),
                    esc(&d.nodedev)
                );
                if d.active && !d.matches_active {
                    out.push_str(
                        " · <span class=\"bad\">runs a matrix unlike its definition</span>",
                    );
                }
            }
            None => out.push_str(" · <span class=\"warn\">not defined</span>"),
        }
        match m.boot {
            Some(b) if b.started => {
                let _ = write!(
                    out,
                    " · next boot: starts with {} APQN{}",
                    m.after_boot,
                    plural(m.after_boot)
                );
            }
            Some(_) => out.push_str(" · <span class=\"bad\">next boot: fails to start</span>"),
            None if m.after_boot > 0 => {
                let _ = write!(
                    out,
                    " · next boot: {} APQN{}",
                    m.after_boot,
                    plural(m.after_boot)
                );
            }
            None => out.push_str(" · next boot: not started"),
        }
        out.push_str("</span></div></li>\n");
    }
    out.push_str("</ul>\n</section>\n");
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(super) fn drift(out: &mut String, s: &Status, index: &HashMap<Uuid, usize>) {
    let _ = writeln!(
        out,
        "<section id=\"drift-section\">\n<h2>Drift <span class=\"count\">{}</span></h2>",
        s.drift.len()
    );
    if s.drift.is_empty() {
        out.push_str("<p class=\"good\">No drift: the layers agree.</p>\n");
    }
    out.push_str("<ol id=\"drift\">\n");
    for d in &s.drift {
        let _ = write!(out, "<li data-kind=\"{}\"", esc(d.kind));
        if let Some(u) = d.mdev {
            let _ = write!(out, " data-mdev=\"{u}\"");
        }
        out.push_str(" data-apqns=\"");
        for (i, q) in d.apqns.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{q}");
        }
        out.push_str("\">");
        let _ = write!(
            out,
            "<span class=\"kind\">{}</span>",
            esc(&d.kind.replace('_', " "))
        );
        if let Some(u) = d.mdev {
            let label = index.get(&u).map(|&i| (label(i), i));
            if let Some((l, i)) = label {
                swatch(out, l, Some(i));
            }
        }
        out.push_str("<p class=\"message\">");
        push_esc(out, &d.message);
        out.push_str("</p><p class=\"fix\"><span>fix</span> ");
        push_esc(out, &d.fix);
        out.push_str("</p></li>\n");
    }
    out.push_str("</ol>\n</section>\n");
}

pub(super) fn next_boot(
    out: &mut String,
    s: &Status,
    labels: &HashMap<Uuid, char>,
    index: &HashMap<Uuid, usize>,
) {
    out.push_str("<section id=\"boot-section\">\n<h2>Next boot</h2>\n");
    let failed = s.next_boot.iter().filter(|b| !b.started).count();
    if s.next_boot.is_empty() {
        out.push_str("<p>No autostart definition: the next boot starts no mdev.</p>\n");
    } else {
        let _ = writeln!(
            out,
            "<p>mdevctl starts {} autostart mdev{} in this order{}.</p>",
            s.next_boot.len(),
            plural(s.next_boot.len()),
            if failed > 0 {
                format!(
                    "; <b class=\"bad\">{failed} fail{}</b>",
                    if failed == 1 { "s" } else { "" }
                )
            } else {
                String::new()
            }
        );
    }
    out.push_str("<ol id=\"next-boot\">\n");
    for b in &s.next_boot {
        let _ = write!(
            out,
            "<li data-uuid=\"{}\" data-started=\"{}\" class=\"{}\">",
            b.uuid,
            if b.started { "yes" } else { "no" },
            if b.started { "good" } else { "bad" }
        );
        swatch(
            out,
            labels.get(&b.uuid).copied().unwrap_or('#'),
            index.get(&b.uuid).copied(),
        );
        let _ = write!(
            out,
            "<code class=\"uuid\">{}</code> {}",
            b.uuid,
            if b.started {
                "starts"
            } else {
                "fails to start"
            }
        );
        if !b.ap_check.is_empty() || b.kernel.is_some() {
            out.push_str("<ul>");
            for m in &b.ap_check {
                out.push_str("<li>ap-check: ");
                push_esc(out, m);
                out.push_str("</li>");
            }
            if let Some(k) = &b.kernel {
                let _ = write!(
                    out,
                    "<li>the kernel refuses <code>{} {}</code> with <b>{}</b> ({})</li>",
                    esc(&k.attribute),
                    esc(&k.value),
                    esc(&k.errno),
                    esc(&k.message)
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ol>\n</section>\n");
}

pub(super) fn definitions(out: &mut String, s: &Status, index: &HashMap<Uuid, usize>) {
    out.push_str("<section id=\"definitions-section\">\n<h2>Definitions</h2>\n");
    if s.definitions.is_empty() {
        out.push_str("<p>No mdevctl definition.</p>\n");
    }
    out.push_str(
        "<table id=\"definitions\">\n<thead><tr><th></th><th>uuid</th><th>start</th>\
         <th>node device</th><th>adapters</th><th>domains</th><th>control domains</th>\
         <th>active</th><th>file</th></tr></thead>\n<tbody>\n",
    );
    for d in &s.definitions {
        let _ = write!(
            out,
            "<tr data-uuid=\"{}\" data-start=\"{}\" data-nodedev=\"{}\"><td>",
            d.uuid,
            esc(d.start),
            esc(&d.nodedev)
        );
        let i = index.get(&d.uuid).copied();
        swatch(out, i.map_or('#', label), i);
        let active = match (d.active, d.matches_active) {
            (false, _) => "<span class=\"muted\">no</span>",
            (true, true) => "yes, as defined",
            (true, false) => "<span class=\"bad\">yes, unlike its definition</span>",
        };
        let _ = writeln!(
            out,
            "</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{active}</td><td><code>{}</code></td></tr>",
            d.uuid,
            esc(d.start),
            esc(&d.nodedev),
            esc(&d.adapters),
            esc(&d.domains),
            esc(&d.control_domains),
            esc(&d.path)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

pub(super) fn masks(out: &mut String, s: &Status) {
    let p = &s.persistent;
    let _ = write!(
        out,
        "<section id=\"masks\">\n<h2>AP bus masks</h2>\n<table class=\"masks\">\n\
         <thead><tr><th></th><th>apmask (adapters for the host)</th><th>aqmask (domains for the host)</th></tr></thead>\n<tbody>\n\
         <tr data-masks=\"active\"><th>active now</th><td><code>{}</code></td><td><code>{}</code></td></tr>\n\
         <tr data-masks=\"persistent\"><th>at boot</th><td><code>{}</code> <small>from {}</small></td><td><code>{}</code> <small>from {}</small></td></tr>\n\
         </tbody>\n</table>\n",
        esc(&s.active.apmask.to_hex_list()),
        esc(&s.active.aqmask.to_hex_list()),
        esc(&p.apmask.to_hex_list()),
        esc(&p.apmask_from),
        esc(&p.aqmask.to_hex_list()),
        esc(&p.aqmask_from),
    );
    if !p.warnings.is_empty() {
        out.push_str("<ul class=\"warnings\">");
        for w in &p.warnings {
            out.push_str("<li class=\"warn\">");
            push_esc(out, w);
            out.push_str("</li>");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}
