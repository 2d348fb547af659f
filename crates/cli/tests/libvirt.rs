//! Debian's libvirtd (9.0, node-device driver only) under `apmatrix exec`,
//! everything private: it enumerates the AP tree through libudev, learns of
//! mdevs created and removed with `echo` only from the udev events exec's
//! server broadcasts, and defines, starts, stops and undefines an mdev
//! through Debian's mdevctl, each step agreeing with mdevctl and the tree.
//!
//! Needs root, /dev/fuse, libvirtd, virsh and /usr/bin/mdevctl
//! (`scripts/install-test-deps`); skips without them unless
//! APMATRIX_REQUIRE_FUSE is set (CI).

mod common;
use common::libvirt::{self, Mdevctl};

/// Run against the private libvirtd of `common::libvirt` (Debian's
/// mdevctl). `await` polls a condition for up to 30 s and logs how long it
/// took, so the verdict is whether libvirt saw the change, not how fast.
const SCRIPT: &str = r#"
V="virsh_nd -q"
now() { date +%s%N; }
await() {
    local t0=$(now)
    for _ in $(seq 3000); do
        if eval "$1"; then
            echo "$2: $(( ($(now) - t0) / 1000000 )) ms" >> "$WORK/latency.txt"
            return 0
        fi
        sleep 0.01
    done
    echo "libvirt never saw: $2"
    return 1
}
for cap in ap_card ap_matrix mdev_types mdev; do echo "== $cap"; $V nodedev-list --cap $cap; done
echo "== ap_queue: $($V nodedev-list --cap ap_queue | wc -l) queues"
echo "== card"; $V nodedev-dumpxml ap_card05
echo "== queue"; $V nodedev-dumpxml ap_05_0004
echo "== matrix"; $V nodedev-dumpxml ap_matrix

echo -5,-6 > /sys/bus/ap/apmask
await '$V nodedev-dumpxml ap_06_0004 | grep -q "<name>vfio_ap</name>"' "queue driver after a mask change"
U=2f5a1e3c-9b7d-4c11-8e2f-6a0b3c4d5e6f
M=mdev_2f5a1e3c_9b7d_4c11_8e2f_6a0b3c4d5e6f_matrix
echo $U > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
await '$V nodedev-list --cap mdev | grep -qx $M' "mdev created with echo"
echo 6 > /sys/devices/vfio_ap/matrix/$U/assign_adapter
echo 0xab > /sys/devices/vfio_ap/matrix/$U/assign_domain
echo "== echo mdev"; $V nodedev-dumpxml $M
echo "== matrix instances: $($V nodedev-dumpxml ap_matrix | grep availableInstances)"
echo 1 > /sys/devices/vfio_ap/matrix/$U/remove
await '! $V nodedev-list --cap mdev | grep -qx $M' "mdev removed with echo"

D=7c3b2a19-5d4e-4f60-a1b2-c3d4e5f60718
DM=mdev_7c3b2a19_5d4e_4f60_a1b2_c3d4e5f60718_matrix
cat > "$WORK/mdev.xml" <<X
<device>
  <parent>ap_matrix</parent>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>$D</uuid>
    <attr name='assign_adapter' value='0x05'/>
    <attr name='assign_domain' value='0x0004'/>
    <attr name='assign_control_domain' value='0x0004'/>
  </capability>
</device>
X
$V nodedev-define "$WORK/mdev.xml" > /dev/null
echo "== defined: mdevctl"; mdevctl list -d
echo "== defined: libvirt"; $V nodedev-dumpxml $DM
test ! -e /sys/devices/vfio_ap/matrix/$D && echo "tree: none"
$V nodedev-start $DM > /dev/null
echo "== started: mdevctl"; mdevctl list
echo "== started: tree $(cat /sys/devices/vfio_ap/matrix/$D/matrix) control $(cat /sys/devices/vfio_ap/matrix/$D/control_domains)"
echo "== started: libvirt"; $V nodedev-list --cap mdev
$V nodedev-destroy $DM > /dev/null
echo "== destroyed: mdevctl"; mdevctl list
test ! -e /sys/devices/vfio_ap/matrix/$D && echo "tree: none"
echo "== destroyed: libvirt"; $V nodedev-list --all --cap mdev
$V nodedev-undefine $DM > /dev/null
echo "== undefined: mdevctl"; mdevctl list -d
await '! $V nodedev-list --all --cap mdev | grep -qx $DM' "undefined mdev gone"
echo "== end"
"#;

const EXPECTED: &str = "\
== ap_card
ap_card04
ap_card05
ap_card06
== ap_matrix
ap_matrix
== mdev_types
ap_matrix
== mdev
== ap_queue: 18 queues
== card
<device>
  <name>ap_card05</name>
  <path>/sys/devices/ap/card05</path>
  <parent>computer</parent>
  <driver>
    <name>cex4card</name>
  </driver>
  <capability type='ap_card'>
    <ap-adapter>0x05</ap-adapter>
  </capability>
</device>
== queue
<device>
  <name>ap_05_0004</name>
  <path>/sys/devices/ap/card05/05.0004</path>
  <parent>ap_card05</parent>
  <driver>
    <name>cex4queue</name>
  </driver>
  <capability type='ap_queue'>
    <ap-adapter>0x05</ap-adapter>
    <ap-domain>0x0004</ap-domain>
  </capability>
</device>
== matrix
<device>
  <name>ap_matrix</name>
  <path>/sys/devices/vfio_ap/matrix</path>
  <parent>computer</parent>
  <driver>
    <name>vfio_ap</name>
  </driver>
  <capability type='ap_matrix'>
    <capability type='mdev_types'>
      <type id='vfio_ap-passthrough'>
        <name>VFIO AP Passthrough Device</name>
        <deviceAPI>vfio-ap</deviceAPI>
        <availableInstances>65536</availableInstances>
      </type>
    </capability>
  </capability>
</device>
== echo mdev
<device>
  <name>mdev_2f5a1e3c_9b7d_4c11_8e2f_6a0b3c4d5e6f_matrix</name>
  <path>/sys/devices/vfio_ap/matrix/2f5a1e3c-9b7d-4c11-8e2f-6a0b3c4d5e6f</path>
  <parent>ap_matrix</parent>
  <driver>
    <name>vfio_ap_mdev</name>
  </driver>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>2f5a1e3c-9b7d-4c11-8e2f-6a0b3c4d5e6f</uuid>
    <parent_addr>matrix</parent_addr>
    <iommuGroup number='0'/>
  </capability>
</device>
== matrix instances:         <availableInstances>65535</availableInstances>
== defined: mdevctl
7c3b2a19-5d4e-4f60-a1b2-c3d4e5f60718 matrix vfio_ap-passthrough manual

== defined: libvirt
<device>
  <name>mdev_7c3b2a19_5d4e_4f60_a1b2_c3d4e5f60718_matrix</name>
  <parent>ap_matrix</parent>
  <capability type='mdev'>
    <type id='vfio_ap-passthrough'/>
    <uuid>7c3b2a19-5d4e-4f60-a1b2-c3d4e5f60718</uuid>
    <parent_addr>matrix</parent_addr>
    <iommuGroup number='0'/>
    <attr name='assign_adapter' value='0x05'/>
    <attr name='assign_domain' value='0x0004'/>
    <attr name='assign_control_domain' value='0x0004'/>
  </capability>
</device>
tree: none
== started: mdevctl
7c3b2a19-5d4e-4f60-a1b2-c3d4e5f60718 matrix vfio_ap-passthrough manual (defined)

== started: tree 05.0004 control 0004
== started: libvirt
mdev_7c3b2a19_5d4e_4f60_a1b2_c3d4e5f60718_matrix
== destroyed: mdevctl

tree: none
== destroyed: libvirt
mdev_7c3b2a19_5d4e_4f60_a1b2_c3d4e5f60718_matrix
== undefined: mdevctl

== end
";

#[test]
fn libvirt_sees_the_ap_tree_tracks_echo_changes_by_events_and_drives_mdevctl() {
    let mdevctl = Mdevctl::Debian;
    let missing = libvirt::missing(&mdevctl);
    if !missing.is_empty() {
        let why = missing.join("; ");
        assert!(
            std::env::var_os("APMATRIX_REQUIRE_FUSE").is_none(),
            "CI requires {why}: run scripts/install-test-deps"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let ran = libvirt::run(&host, "dyn", &mdevctl, tmp.path(), SCRIPT, &[]);
    assert_eq!(ran.stdout, EXPECTED);
    let latency = std::fs::read_to_string(tmp.path().join("latency.txt")).unwrap();
    eprintln!("libvirt saw (polled every 10 ms):\n{latency}");
}
