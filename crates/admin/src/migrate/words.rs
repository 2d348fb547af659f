//! How the reasons and warnings name cards, ids and APQNs.

use apmatrix_model::{Apqn, CardMode, Mask256};

/// A card's mode in words.
pub fn mode_words(mode: CardMode) -> &'static str {
    match mode {
        CardMode::Accelerator => "accelerator",
        CardMode::CcaCoproc => "CCA coprocessor",
        CardMode::Ep11Coproc => "EP11 coprocessor",
    }
}

/// `APQN 07.0004 is` / `APQNs 07.0004 07.00ab are`.
pub(super) fn apqns_are(apqns: &[Apqn]) -> String {
    let list = Apqn::list_text(apqns);
    if apqns.len() == 1 {
        format!("APQN {list} is")
    } else {
        format!("APQNs {list} are")
    }
}

/// Domains as the kernel's stores read them: `0x04, 0xab`.
pub(super) fn hex_ids(mask: &Mask256) -> String {
    mask.iter()
        .map(|d| format!("{d:#04x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adapters as their card directories name them: `05, 06`.
pub(super) fn adapter_ids(mask: &Mask256) -> String {
    mask.iter()
        .map(|a| format!("{a:02x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text, or `none` when it is empty.
pub(super) fn or_none(text: String) -> String {
    if text.is_empty() {
        "none".into()
    } else {
        text
    }
}
