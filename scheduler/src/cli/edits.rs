//! The arguments of `label` and `taint`: `key=value` sets, `key-` removes.

use super::Error;
use crate::api::{LabelsRequest, TaintView, TaintsRequest};

const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `k=v` (set) and `k-` (remove) arguments of `label node`.
pub fn labels(args: &[String]) -> Result<LabelsRequest, Error> {
    let mut request = LabelsRequest::default();
    for arg in args {
        if let Some(key) = arg.strip_suffix('-').filter(|k| !k.contains('=')) {
            request.remove.push(key_of(key, arg)?);
        } else if let Some((key, value)) = arg.split_once('=') {
            request.set.insert(key_of(key, arg)?, value.to_string());
        } else {
            return Err(Error::Usage(format!(
                "label {arg:?}: use key=value to set a label or key- to remove it"
            )));
        }
    }
    Ok(request)
}

/// `k=v:Effect` or `k:Effect` (add) and `k-` (remove) arguments of `taint node`.
pub fn taints(args: &[String]) -> Result<TaintsRequest, Error> {
    let mut request = TaintsRequest::default();
    for arg in args {
        if let Some(key) = arg.strip_suffix('-').filter(|k| !k.contains(['=', ':'])) {
            request.remove.push(key_of(key, arg)?);
            continue;
        }
        let bad = || {
            Error::Usage(format!(
                "taint {arg:?}: use key=value:Effect or key:Effect to add a taint (Effect is one of {}) or key- to remove it",
                EFFECTS.join(", ")
            ))
        };
        let (head, effect) = arg.rsplit_once(':').ok_or_else(bad)?;
        if !EFFECTS.contains(&effect) {
            return Err(bad());
        }
        let (key, value) = head.split_once('=').unwrap_or((head, ""));
        request.add.push(TaintView {
            key: key_of(key, arg)?,
            value: value.to_string(),
            effect: effect.to_string(),
        });
    }
    Ok(request)
}

fn key_of(key: &str, arg: &str) -> Result<String, Error> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "{arg:?}: the key must be non-empty and hold no blanks"
        )));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_set_and_remove() {
        let r = labels(&args(&["zone=a", "disk=", "old-", "url=a=b"])).unwrap();
        assert_eq!(r.set.get("zone").map(String::as_str), Some("a"));
        assert_eq!(r.set.get("disk").map(String::as_str), Some(""));
        assert_eq!(r.set.get("url").map(String::as_str), Some("a=b"));
        assert_eq!(r.remove, vec!["old".to_string()]);
    }

    #[test]
    fn a_value_ending_in_a_dash_is_set() {
        let r = labels(&args(&["tier=back-"])).unwrap();
        assert_eq!(r.set.get("tier").map(String::as_str), Some("back-"));
        assert!(r.remove.is_empty());
    }

    #[test]
    fn bad_labels_fail_with_one_line() {
        for bad in ["zone", "=a", "-"] {
            let e = labels(&args(&[bad])).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn taints_add_with_or_without_value_and_remove_by_key() {
        let r = taints(&args(&[
            "gpu=yes:NoSchedule",
            "spot:PreferNoSchedule",
            "old-",
        ]))
        .unwrap();
        assert_eq!(
            r.add,
            vec![
                TaintView {
                    key: "gpu".into(),
                    value: "yes".into(),
                    effect: "NoSchedule".into()
                },
                TaintView {
                    key: "spot".into(),
                    value: String::new(),
                    effect: "PreferNoSchedule".into()
                },
            ]
        );
        assert_eq!(r.remove, vec!["old".to_string()]);
    }

    #[test]
    fn taints_need_a_known_effect() {
        for bad in ["gpu=yes", "gpu=yes:Never", ":NoSchedule", "gpu"] {
            let e = taints(&args(&[bad])).unwrap_err().to_string();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
