//! `apmatrix demo`: the seed document's walkthrough, replayed on a fresh
//! in-memory default host, as a guided tour. Every shell command shown is
//! run through the same store functions the sysfs attributes use, with the
//! bytes `echo` writes.

use std::fmt::Write as _;

use apmatrix_model::profile::MaskReclaim;
use apmatrix_model::{ApError, CpuModel, Driver, Host, KernelProfile, MaskKind, Topology, SEED};
use apmatrix_sysfs::AccessError;
use uuid::Uuid;

use crate::describe_effects;
use crate::style::Style;

const UUIDS: [&str; 3] = [
    "669d9b23-fe1b-4ecd-be08-e42dc3f5d3c4",
    "8da4a3cb-2b3a-4c52-9b8d-1f09e1ee38c0",
    "d1a4b0a5-9c2e-4f2c-8f6a-5f3b2c1d0e9f",
];

const TYPE_DIR: &str = "/sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough";

struct Tour<'a> {
    host: Host,
    out: String,
    style: &'a Style,
    section: u32,
}

impl Tour<'_> {
    fn heading(&mut self, title: &str) {
        self.section += 1;
        let text = format!("{}. {title}", self.section);
        let _ = writeln!(self.out, "\n{}", self.style.bold(&text));
    }

    fn say(&mut self, text: &str) {
        for line in text.lines() {
            let _ = writeln!(self.out, "{}", self.style.dim(&format!("# {line}")));
        }
    }

    fn shell(&mut self, prompt: &str, command: &str) {
        let _ = writeln!(self.out, "{prompt}$ {command}");
    }

    fn print(&mut self, text: &str) {
        self.out.push_str(text);
    }

    /// Shows how bash reports a refused write, and the explanation.
    fn refused(&mut self, error: &ApError) {
        let _ = writeln!(
            self.out,
            "bash: echo: write error: {}",
            error.errno().strerror()
        );
        let _ = writeln!(
            self.out,
            "{}",
            self.style.error(&format!("  apmatrix explains: {error}"))
        );
    }

    fn ls(&mut self, items: Vec<String>) {
        for chunk in items.chunks(6) {
            let _ = writeln!(self.out, "{}", chunk.join("  "));
        }
    }

    fn echo_mask(&mut self, kind: MaskKind, value: &str) {
        self.shell("", &format!("echo {value} > /sys/bus/ap/{kind}"));
        match self.host.write_mask(kind, format!("{value}\n").as_bytes()) {
            Ok(effects) => {
                let text = describe_effects(&effects);
                self.print(&text);
            }
            Err(e) => self.refused(&e),
        }
    }

    fn echo_attr(&mut self, uuid: &Uuid, attr: &str, value: &str) -> Result<(), ApError> {
        self.shell("", &format!("echo {value} > {attr}"));
        let input = format!("{value}\n");
        let bytes = input.as_bytes();
        // Through the tree's own attribute table, as the shell's echo would.
        let path = format!("devices/vfio_ap/matrix/{uuid}/{attr}");
        let result = match apmatrix_sysfs::write_path(&mut self.host, &path, bytes) {
            Ok(written) => Ok(written.effects),
            Err(AccessError::Refused(e)) => Err(e),
            Err(other) => unreachable!("the demo writes only attributes of its own mdevs: {other}"),
        };
        match result {
            Ok(effects) => {
                let text = describe_effects(&effects);
                self.print(&text);
                Ok(())
            }
            Err(e) => {
                self.refused(&e);
                Err(e)
            }
        }
    }

    fn cat_matrix(&mut self, uuid: &Uuid) {
        self.shell("", "cat matrix");
        let text = self.host.mdev(uuid).expect("exists").matrix_text();
        self.print(&text);
    }

    fn vfio_ap_queues(&self) -> Vec<String> {
        self.host
            .queues_bound_to(Driver::VfioAp)
            .iter()
            .map(|q| q.to_string())
            .collect()
    }

    fn guest_lszcrypt(&mut self, guest: &str) {
        self.shell(guest, "lszcrypt");
        let view = self.host.guest_view(guest).expect("guest runs");
        self.print(&view.lszcrypt());
    }
}

/// Runs the tour and returns its text.
pub fn run(style: &Style, profile: &'static KernelProfile) -> String {
    let mut t = Tour {
        host: Host::new(Topology::seed_example(), profile),
        out: String::new(),
        style,
        section: 0,
    };
    let uuids: Vec<Uuid> = UUIDS.iter().map(|u| u.parse().expect("valid")).collect();

    let _ = writeln!(
        t.out,
        "{}",
        style.bold(
            "apmatrix demo: the vfio_ap walkthrough of the seed document, on its example host"
        )
    );
    t.say(&format!(
        "Every command below runs against an emulated host with the kernel's rules ({} profile).",
        profile.name
    ));
    if profile.name != SEED.name {
        t.say(&format!(
            "That is {}: {}.",
            profile.kernels, profile.summary
        ));
    }

    t.heading("The host's AP devices");
    t.say("Three CEX5 cards (04 EP11, 05 CCA, 06 accelerator) with six usage domains: 18 queues.");
    t.shell("", "ls /sys/bus/ap/devices");
    let mut devices: Vec<String> = t
        .host
        .queues_bound_to(Driver::Cex4Queue)
        .iter()
        .map(|q| q.to_string())
        .collect();
    devices.extend(t.host.topology().cards.keys().map(|a| format!("card{a}")));
    t.ls(devices);
    t.say("apmask and aqmask start all ones: every queue belongs to the host's zcrypt driver (cex4queue).");

    t.heading("Secure the queues for vfio_ap");
    t.say("Clearing adapter bits in apmask takes whole adapters from the host:");
    t.echo_mask(MaskKind::Apmask, "-5,-6");
    t.shell("", "ls /sys/bus/ap/drivers/vfio_ap");
    let q = t.vfio_ap_queues();
    t.ls(q);
    t.say(
        "The other way, clearing domain bits in aqmask, would free those domains on every adapter:\n\
         echo -4,-0x47,-0xab,-0xff > /sys/bus/ap/aqmask binds 04.0004 04.0047 04.00ab 04.00ff and\n\
         the same four domains of 05 and 06 to vfio_ap instead. We keep the apmask way.",
    );

    t.heading("Create three mediated matrix devices");
    t.shell("", &format!("cd {TYPE_DIR}"));
    for (i, uuid) in UUIDS.iter().enumerate() {
        t.shell(
            "",
            &format!("uuidgen > create      # uuid{} = {uuid}", i + 1),
        );
        t.host
            .write_create(format!("{uuid}\n").as_bytes())
            .expect("fresh UUID");
    }
    let n = t.host.available_instances();
    t.say(&format!("available_instances is now {n}."));

    t.heading("Configure their matrices");
    let plan: [(&str, &[(&str, &str)]); 3] = [
        (
            "Guest1",
            &[
                ("assign_adapter", "5"),
                ("assign_adapter", "6"),
                ("assign_domain", "4"),
                ("assign_domain", "0xab"),
            ],
        ),
        (
            "Guest2",
            &[
                ("assign_adapter", "5"),
                ("assign_domain", "0x47"),
                ("assign_domain", "0xff"),
            ],
        ),
        (
            "Guest3",
            &[
                ("assign_adapter", "6"),
                ("assign_domain", "0x47"),
                ("assign_domain", "0xff"),
            ],
        ),
    ];
    for (i, (guest, steps)) in plan.iter().enumerate() {
        t.say(&format!("{guest}'s mdev:"));
        t.shell(
            "",
            &format!("cd /sys/devices/vfio_ap/matrix/$uuid{}", i + 1),
        );
        for (attr, value) in steps.iter() {
            t.echo_attr(&uuids[i], attr, value)
                .expect("the document's steps are valid");
        }
        t.cat_matrix(&uuids[i]);
    }
    t.say("Guest2 and Guest3 share domains 0x47 and 0xff, but on different adapters: no APQN is shared.");

    t.heading("What the rules refuse");
    t.say("Giving Guest2 adapter 6 would share 06.0047 and 06.00ff with Guest3:");
    t.shell("", "cd /sys/devices/vfio_ap/matrix/$uuid2");
    let _ = t.echo_attr(&uuids[1], "assign_adapter", "6");
    t.say("Adapter 4 still belongs to the host, so its queues cannot go to a guest:");
    let _ = t.echo_attr(&uuids[1], "assign_adapter", "4");
    t.say("Ids above the host's maximum do not exist:");
    let _ = t.echo_attr(&uuids[1], "assign_domain", "256");
    t.say("Control domains may be shared; only their range is checked:");
    let _ = t.echo_attr(&uuids[1], "assign_control_domain", "0xab");
    t.say("And the host cannot take back an APQN an mdev holds:");
    t.echo_mask(MaskKind::Apmask, "+5");
    if profile.mask_reclaim == MaskReclaim::Allow {
        t.say(
            "This kernel accepts it: adapter 5's queues went back to zcrypt although the mdevs still\n\
             hold them, and a guest started on those mdevs gets them too (the documented leak).",
        );
    }

    t.heading("Start the guests");
    for (i, guest) in ["Guest1", "Guest2", "Guest3"].iter().enumerate() {
        t.shell(
            "",
            &format!(
                "qemu-system-s390x -name {guest} -cpu host,ap=on,apqci=on,apft=on -device vfio-ap,sysfsdev=/sys/devices/vfio_ap/matrix/$uuid{} ...",
                i + 1
            ),
        );
        t.host
            .start_guest(guest, Some(uuids[i]), CpuModel::default())
            .expect("free mdev");
    }
    for guest in ["Guest1", "Guest2", "Guest3"] {
        t.guest_lszcrypt(guest);
    }
    t.say(
        "(The document prints card 05 as CEX5A for Guest2 and 06.00ab as CEX5C for Guest1; a queue\n\
         always has its card's type, so they are CEX5C and CEX5A here.)",
    );

    t.heading("Hot unplug from a running guest");
    t.shell("", "cd /sys/devices/vfio_ap/matrix/$uuid1");
    let _ = t.echo_attr(&uuids[0], "unassign_adapter", "6");
    t.guest_lszcrypt("Guest1");

    t.heading("Remove an mdev");
    let _ = t.echo_attr(&uuids[0], "remove", "1");
    t.say("Guest1 shuts down; now the mdev can go:");
    t.host.stop_guest("Guest1").expect("runs");
    let _ = t.echo_attr(&uuids[0], "remove", "1");
    let n = t.host.available_instances();
    t.say(&format!("available_instances is back to {n}."));
    t.out.push('\n');
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tour_shows_every_step_and_its_outcome() {
        let text = run(&Style::plain(), &SEED);
        for expected in [
            "$ echo -5,-6 > /sys/bus/ap/apmask",
            "  rebound cex4queue -> vfio_ap: 05.0004 05.0005 05.0006 05.0047 05.00ab 05.00ff",
            "05.0004\n05.00ab\n06.0004\n06.00ab\n",
            "bash: echo: write error: Address already in use",
            "bash: echo: write error: Cannot assign requested address",
            "bash: echo: write error: No such device",
            "Guest1$ lszcrypt\nCARD.DOMAIN TYPE  MODE\n------------------------------\n05          CEX5C CCA-Coproc\n",
            "Guest2$ lszcrypt\nCARD.DOMAIN TYPE  MODE\n------------------------------\n05          CEX5C CCA-Coproc\n05.0047     CEX5C CCA-Coproc\n05.00ff     CEX5C CCA-Coproc\n",
            "  guest Guest1: hot unplug 06.0004 06.00ab",
            "bash: echo: write error: Device or resource busy",
            "available_instances is back to 65534.",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
