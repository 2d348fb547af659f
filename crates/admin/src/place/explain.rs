//! Why a demand was not placed, in one line: against the host's cards and
//! what was left once the others were placed.

use apmatrix_model::topology::CardMode;
use apmatrix_model::Mask256;

use super::demands::{modes_word, Demand};
use super::solver::{Field, Placed};

fn mode_word(mode: CardMode) -> String {
    modes_word(&[mode])
}

fn adapters_text(ids: &[u8]) -> String {
    let list: Mask256 = ids.iter().copied().collect();
    match ids.len() {
        1 => format!("adapter {}", list.to_hex_list()),
        _ => format!("adapters {}", list.to_hex_list()),
    }
}

/// Some names: all of a few, else the first three and how many more.
fn names_text(names: &[&str]) -> String {
    match names.len() {
        0..=3 => names.join(", "),
        n => format!("{} and {} others", names[..3].join(", "), n - 3),
    }
}

/// The reason demand `i` has no place, given where the others went.
pub fn why_not(field: &Field, demands: &[Demand], placed: &[Option<Placed>], i: usize) -> String {
    let d = &demands[i];
    let words = d.words();
    let mode = modes_word(&d.modes);
    let of_mode: Vec<usize> = (0..field.cards.len())
        .filter(|&k| d.modes.contains(&field.cards[k].mode))
        .collect();
    if of_mode.is_empty() {
        return format!("{words}; the host has no {mode} card that vfio_ap drives");
    }
    let new_enough: Vec<usize> = of_mode
        .iter()
        .copied()
        .filter(|&k| field.cards[k].generation >= d.min_generation)
        .collect();
    if new_enough.is_empty() {
        let newest = of_mode
            .iter()
            .map(|&k| field.cards[k].generation)
            .max()
            .unwrap_or(0);
        return format!("{words}; the host's {mode} cards are CEX{newest} at newest");
    }
    // What the others left: free domains and who uses each card.
    let mut free = field.free.clone();
    let mut users: Vec<Vec<&str>> = vec![Vec::new(); field.cards.len()];
    let mut exclusive = vec![false; field.cards.len()];
    for (g, p) in placed.iter().enumerate() {
        let Some(p) = p else { continue };
        for a in p.adapters.iter() {
            if let Some(k) = field.cards.iter().position(|c| c.adapter == a) {
                free[k] = free[k].and_not(&p.domains);
                users[k].push(demands[g].name.as_str());
                exclusive[k] |= !demands[g].share_adapters;
            }
        }
    }
    for a in d.pin_adapters.iter() {
        let Some(k) = field.cards.iter().position(|c| c.adapter == a) else {
            return format!("{words}; its pinned adapter {a:#04x} is no card vfio_ap drives here");
        };
        let c = &field.cards[k];
        if !d.modes.contains(&c.mode) {
            return format!(
                "{words}; its pinned adapter {a:#04x} is in {} mode",
                mode_word(c.mode)
            );
        }
        if c.generation < d.min_generation {
            return format!(
                "{words}; its pinned adapter {a:#04x} is a CEX{}",
                c.generation
            );
        }
        for dom in d.pin_domains.iter() {
            if !field.free[k].contains(dom) {
                return format!(
                    "{words}; its pinned APQN {a:02x}.{dom:04x} is not free for vfio_ap (the host's by the masks, an existing mdev's, or no usage domain)"
                );
            }
            if !free[k].contains(dom) {
                let holder = placed
                    .iter()
                    .position(|p| {
                        p.as_ref()
                            .is_some_and(|p| p.adapters.contains(a) && p.domains.contains(dom))
                    })
                    .map_or("another guest", |g| demands[g].name.as_str());
                return format!("{words}; its pinned APQN {a:02x}.{dom:04x} went to {holder}");
            }
        }
        if exclusive[k] || (!d.share_adapters && (!users[k].is_empty() || field.used.contains(a))) {
            return format!("{words}; its pinned adapter {a:#04x} is shared with {}", {
                let mut who = names_text(&users[k]);
                if field.used.contains(a) {
                    who.push_str(if who.is_empty() {
                        "an existing mdev"
                    } else {
                        " and an existing mdev"
                    });
                }
                who
            });
        }
    }
    let usable: Vec<usize> = new_enough
        .iter()
        .copied()
        .filter(|&k| !exclusive[k])
        .filter(|&k| {
            d.share_adapters
                || (users[k].is_empty() && !field.used.contains(field.cards[k].adapter))
        })
        .collect();
    let with_free: Vec<u8> = usable
        .iter()
        .copied()
        .filter(|&k| !free[k].is_empty())
        .map(|k| field.cards[k].adapter)
        .collect();
    let need = d.adapters.max(d.pin_adapters.count()) as usize;
    if with_free.len() < need {
        let what = if d.share_adapters {
            format!("{mode} domains free")
        } else {
            format!("{mode} domains free and no other user")
        };
        let mut text = match with_free.len() {
            0 => format!("{words}; no {mode} adapter has {what}"),
            1 => format!("{words}; only {} has {what}", adapters_text(&with_free)),
            _ => format!("{words}; only {} have {what}", adapters_text(&with_free)),
        };
        let others: Vec<&str> = {
            let mut v: Vec<&str> = usable
                .iter()
                .chain(new_enough.iter())
                .flat_map(|&k| users[k].iter().copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if !others.is_empty() {
            text.push_str(&format!(" (used by {})", names_text(&others)));
        }
        let none_free: Vec<u8> = new_enough
            .iter()
            .filter(|&&k| field.free[k].is_empty())
            .map(|&k| field.cards[k].adapter)
            .collect();
        if !none_free.is_empty() {
            text.push_str(&format!(
                "; {} {} no domain free for vfio_ap (the masks keep {} for the host, or mdevs have {})",
                adapters_text(&none_free),
                if none_free.len() == 1 { "has" } else { "have" },
                if none_free.len() == 1 { "it" } else { "them" },
                if none_free.len() == 1 { "its domains" } else { "their domains" },
            ));
        }
        return text;
    }
    let domains_each = d.domains.div_ceil(need as u32);
    format!(
        "{words}; no {domains_each} domain{} free on {need} of the {mode} {} at once (an mdev has each of its domains on each of its adapters)",
        if domains_each == 1 { " is" } else { "s are" },
        adapters_text(&with_free)
    )
}
