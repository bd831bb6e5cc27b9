//! What a node label may be, wherever it comes from (the labels API, `mini-shim join`):
//! a key of 1 to 253 characters, a value of at most 253, neither holding blanks or control
//! characters, and no key under the `mini-sched/` prefix, which the scheduler keeps for the
//! labels it sets itself (`mini-sched/node`, `mini-sched/instance`, ...).

use std::collections::BTreeMap;

/// The prefix of the labels the scheduler sets itself.
pub const RESERVED_PREFIX: &str = "mini-sched/";

/// The longest key or value.
pub const MAX_LEN: usize = 253;

/// Checks one label; the error names it and says what is wrong.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let bad_char = |c: char| c.is_whitespace() || c.is_control();
    if key.is_empty() || key.len() > MAX_LEN || key.contains(bad_char) {
        return Err(format!(
            "label key {key:?} must be 1 to {MAX_LEN} characters without blanks or control characters"
        ));
    }
    if key.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "label key {key:?} is reserved ({RESERVED_PREFIX} keys are set by the scheduler)"
        ));
    }
    if value.len() > MAX_LEN || value.contains(bad_char) {
        return Err(format!(
            "label {key}: the value {value:?} must be at most {MAX_LEN} characters without blanks or control characters"
        ));
    }
    Ok(())
}

/// Checks every label of `labels`.
pub fn validate_all(labels: &BTreeMap<String, String>) -> Result<(), String> {
    labels.iter().try_for_each(|(k, v)| validate(k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_empty_and_blank_labels_are_refused() {
        validate("zone", "z1").unwrap();
        validate("example.com/disk", "").unwrap();
        for (k, v) in [
            ("", "x"),
            ("mini-sched/node", "n1"),
            ("a b", "x"),
            ("zone", "a b"),
            ("zone\n", "x"),
            ("zone", "x\u{7}"),
            (&"k".repeat(MAX_LEN + 1), "x"),
            ("k", &"v".repeat(MAX_LEN + 1)),
        ] {
            assert!(validate(k, v).is_err(), "{k:?}={v:?}");
        }
    }
}
