//! `--json`: the plan and the refusal as docs/migrate.md documents them
//! (docs/json/migrate-plan, migrate-run and migrate-refused.schema.json).

use apmatrix_admin::migrate::{Plan, Refusal, Stage};
use apmatrix_model::{Apqn, GuestUpdate, Mask256};
use serde::Serialize;
use uuid::Uuid;

use super::procedure::{commands, files, says, Files};
use super::side::Side;
use crate::output::erased::Json as _;

/// `--json`: the plan as docs/migrate.md documents it.
#[derive(Serialize)]
pub(super) struct PlanJson {
    guest: String,
    from: String,
    to: String,
    cpu: String,
    source_mdev: MdevJson,
    target_mdev: MdevJson,
    adapters: Vec<AdapterJson>,
    domains: Vec<PairJson>,
    control_domains: Vec<PairJson>,
    sees_now: Vec<String>,
    will_see: Vec<String>,
    warnings: Vec<String>,
    files: Vec<FileJson>,
    steps: Vec<StepJson>,
}

#[derive(Serialize)]
struct MdevJson {
    uuid: Uuid,
    adapters: Vec<u8>,
    domains: Vec<u8>,
    control_domains: Vec<u8>,
}

#[derive(Serialize)]
struct AdapterJson {
    from: u8,
    to: u8,
    from_type: String,
    to_type: String,
    mode: &'static str,
    given: bool,
}

#[derive(Serialize)]
struct PairJson {
    from: u8,
    to: u8,
}

#[derive(Serialize)]
struct FileJson {
    name: String,
    text: String,
}

#[derive(Serialize)]
struct StepJson {
    on: &'static str,
    stage: &'static str,
    says: String,
    note: Option<String>,
    commands: Vec<String>,
    unplugged: Vec<String>,
    plugged: Vec<String>,
}

fn ids(mask: &Mask256) -> Vec<u8> {
    mask.iter().collect()
}

fn names(list: Vec<Apqn>) -> Vec<String> {
    list.iter().map(Apqn::to_string).collect()
}

pub(super) fn plan_json(p: &Plan, from: &Side, to: &Side, uri: &str) -> PlanJson {
    let files = files(p, from);
    let mut file_list = vec![&files.source_hostdev];
    file_list.extend(files.target_hostdev.as_ref());
    file_list.push(&files.configuration);
    let pairs = |v: &[(u8, u8)]| -> Vec<PairJson> {
        v.iter().map(|&(from, to)| PairJson { from, to }).collect()
    };
    PlanJson {
        guest: p.guest.clone(),
        from: from.label.clone(),
        to: to.label.clone(),
        cpu: p.cpu.features(),
        source_mdev: MdevJson {
            uuid: p.source_mdev,
            adapters: ids(&p.moved.adapters),
            domains: ids(&p.moved.domains),
            control_domains: ids(&p.moved.control_domains),
        },
        target_mdev: MdevJson {
            uuid: p.target_mdev.uuid,
            adapters: ids(&p.target_mdev.adapters),
            domains: ids(&p.target_mdev.domains),
            control_domains: ids(&p.target_mdev.control_domains),
        },
        adapters: p
            .adapters
            .iter()
            .map(|m| AdapterJson {
                from: m.from,
                to: m.to,
                from_type: m.from_type.clone(),
                to_type: m.to_type.clone(),
                mode: m.mode.lszcrypt_name(),
                given: m.given,
            })
            .collect(),
        domains: pairs(&p.domains),
        control_domains: pairs(&p.control_domains),
        sees_now: names(p.sees_now.apqns()),
        will_see: names(p.will_see.apqns()),
        warnings: p.warnings.clone(),
        files: file_list
            .into_iter()
            .map(|(name, text)| FileJson {
                name: name.clone(),
                text: text.clone(),
            })
            .collect(),
        steps: p
            .stages
            .iter()
            .map(|s| step_json(s, p, &files, from, to, uri))
            .collect(),
    }
}

/// A stage: what it says and runs, and the APQNs the guest loses or gains
/// in it (by its writes and by its own action).
fn step_json(s: &Stage, p: &Plan, files: &Files, from: &Side, to: &Side, uri: &str) -> StepJson {
    let all: Vec<&GuestUpdate> = s
        .writes
        .iter()
        .filter_map(|(_, u)| u.as_ref())
        .chain(s.update.as_ref())
        .collect();
    StepJson {
        on: s.kind.side(),
        stage: s.kind.name(),
        says: says(s, p, from, to),
        note: s.note.clone(),
        commands: commands(s, p, files, from, to, uri),
        unplugged: names(all.iter().flat_map(|u| u.unplugged()).collect()),
        plugged: names(all.iter().flat_map(|u| u.plugged()).collect()),
    }
}

#[derive(Serialize)]
struct RefusedJson<'a> {
    guest: &'a str,
    from: &'a str,
    to: &'a str,
    refused: &'a [String],
}

/// A refusal: the guest, the sides as named, every reason
/// (docs/json/migrate-refused.schema.json).
pub(super) fn refused_json(r: &Refusal, from: &str, to: &str) -> String {
    RefusedJson {
        guest: &r.guest,
        from,
        to,
        refused: &r.reasons,
    }
    .to_json()
}
