//! mdevctl's stored definitions (`<etc>/mdevctl.d/matrix/<uuid>`), which
//! are libvirt's node-device definitions too: libvirt defines mdevs through
//! mdevctl and names each `mdev_<uuid>_matrix` (tools.md Part B §2).

use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::export::{libvirt_nodedev_name, mdevctl_config};
use crate::WantedMdev;

/// One stored definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub uuid: Uuid,
    pub path: PathBuf,
    /// Its matrix and start mode.
    pub mdev: WantedMdev,
    /// The attributes `mdevctl start` writes, in order.
    pub attrs: Vec<(String, String)>,
    /// The libvirt node device that stands for it.
    pub nodedev: String,
}

/// What the directory holds: the definitions in the order mdevctl meets
/// them (the directory's own order: mdevctl does not sort, so this is the
/// order `start-parent-mdevs` starts autostart mdevs at boot), and the
/// files it could not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Definitions {
    pub list: Vec<Definition>,
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Definitions {
    /// The definition of an mdev, if there is one.
    pub fn get(&self, uuid: &Uuid) -> Option<&Definition> {
        self.list.iter().find(|d| d.uuid == *uuid)
    }
}

/// Reads `<etc>/mdevctl.d/matrix`. Files whose names are not UUIDs are
/// skipped, as mdevctl skips them; a missing directory holds nothing.
pub fn read_definitions(etc: &Path) -> Definitions {
    let dir = etc.join("mdevctl.d/matrix");
    let mut out = Definitions::default();
    let Ok(entries) = fs::read_dir(&dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(uuid) = Uuid::try_parse(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let path = e.path();
        let parsed = crate::files::read_text(&path, crate::files::TEXT_LIMIT)
            .map_err(|err| err.to_string())
            .and_then(|text| mdevctl_config(uuid, &text).map_err(|err| err.to_string()));
        match parsed {
            Ok((mdev, attrs)) => out.list.push(Definition {
                uuid,
                nodedev: libvirt_nodedev_name(&mdev),
                path,
                mdev,
                attrs,
            }),
            Err(why) => out.unreadable.push((path, why)),
        }
    }
    out
}
