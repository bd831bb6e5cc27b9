//! How values show in tables and descriptions: ages, quantities, flags, labels, taints.

use crate::api::{NodeState, Phase, TaintView};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// What a missing value shows as.
pub const NONE: &str = "<none>";

/// A duration in its largest whole unit: `5s`, `3m`, `2h`, `4d`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The time since the RFC 3339 timestamp `at`, as [`duration`]; `0s` for a time ahead of `now`
/// (clocks of different hosts), `<unknown>` for text that is not a timestamp.
pub fn age(at: &str, now: SystemTime) -> String {
    match humantime::parse_rfc3339_weak(at) {
        Ok(t) => duration(now.duration_since(t).unwrap_or_default()),
        Err(_) => "<unknown>".to_string(),
    }
}

/// [`age`] of an optional timestamp, [`NONE`] without one.
pub fn age_of(at: Option<&str>, now: SystemTime) -> String {
    at.map_or_else(|| NONE.to_string(), |t| age(t, now))
}

/// A timestamp with its age: `2024-05-01T10:00:00Z (3m ago)`.
pub fn when(at: &str, now: SystemTime) -> String {
    format!("{at} ({} ago)", age(at, now))
}

/// CPU in the spec's notation: whole cores as `2`, anything else in millicores (`500m`).
pub fn cpu(millis: u64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Memory with a binary suffix: exact when a whole number of the largest unit fits (`64Mi`,
/// `1Gi`), else that unit to one decimal (`7.7Gi`); below 1 KiB in bytes.
pub fn memory(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (suffix, size) in UNITS {
        if bytes >= size {
            return if bytes % size == 0 {
                format!("{}{suffix}", bytes / size)
            } else {
                format!("{:.1}{suffix}", bytes as f64 / size as f64)
            };
        }
    }
    bytes.to_string()
}

/// A fraction as a whole percentage: `0.374` → `37%`.
pub fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// `part` as a percentage of `whole` (`0%` of nothing).
pub fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".to_string()
    } else {
        percent(part as f64 / whole as f64)
    }
}

/// `yes` or `no`.
pub fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// Labels as `k=v,k2=v2`, [`NONE`] without any.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    labels_joined(labels, ",")
}

/// Labels as `k=v` joined by `separator`, [`NONE`] without any.
pub fn labels_joined(labels: &BTreeMap<String, String>, separator: &str) -> String {
    if labels.is_empty() {
        return NONE.to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(separator)
}

/// A taint as `key=value:Effect`, or `key:Effect` without a value.
pub fn taint(t: &TaintView) -> String {
    if t.value.is_empty() {
        format!("{}:{}", t.key, t.effect)
    } else {
        format!("{}={}:{}", t.key, t.value, t.effect)
    }
}

/// Taints joined with `,`, [`NONE`] without any.
pub fn taints(taints: &[TaintView]) -> String {
    if taints.is_empty() {
        return NONE.to_string();
    }
    taints.iter().map(taint).collect::<Vec<_>>().join(",")
}

/// A node's health, capitalized as in kubectl (`Ready`).
pub fn node_state(state: NodeState) -> String {
    camel(&state)
}

/// An instance's phase, capitalized as in kubectl (`BackOff`).
pub fn phase(phase: Phase) -> String {
    camel(&phase)
}

/// A unit enum variant's snake_case wire name in CamelCase.
fn camel<T: serde::Serialize>(variant: &T) -> String {
    let name = serde_json::to_value(variant)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn durations_show_their_largest_whole_unit() {
        for (secs, text) in [
            (0, "0s"),
            (5, "5s"),
            (59, "59s"),
            (60, "1m"),
            (200, "3m"),
            (3599, "59m"),
            (3600, "1h"),
            (7300, "2h"),
            (86_399, "23h"),
            (86_400, "1d"),
            (4 * 86_400 + 5, "4d"),
        ] {
            assert_eq!(duration(Duration::from_secs(secs)), text, "{secs}s");
        }
    }

    #[test]
    fn ages_count_from_rfc3339_timestamps() {
        let now = at(1_700_000_000);
        assert_eq!(age("2023-11-14T22:13:15Z", now), "5s");
        assert_eq!(age("2023-11-14T22:13:15.250Z", now), "4s");
        assert_eq!(age("2023-11-14T22:10:20Z", now), "3m");
        assert_eq!(age("2023-11-14T20:13:20Z", now), "2h");
        assert_eq!(age("2023-11-10T22:13:20Z", now), "4d");
        assert_eq!(age("2023-11-14T22:14:00Z", now), "0s", "ahead of now");
        assert_eq!(age("yesterday", now), "<unknown>");
        assert_eq!(age_of(None, now), "<none>");
        assert_eq!(
            when("2023-11-14T22:10:20Z", now),
            "2023-11-14T22:10:20Z (3m ago)"
        );
    }

    #[test]
    fn cpu_shows_cores_or_millicores() {
        assert_eq!(cpu(0), "0");
        assert_eq!(cpu(500), "500m");
        assert_eq!(cpu(1000), "1");
        assert_eq!(cpu(2500), "2500m");
        assert_eq!(cpu(4000), "4");
    }

    #[test]
    fn memory_shows_binary_units() {
        assert_eq!(memory(0), "0");
        assert_eq!(memory(512), "512");
        assert_eq!(memory(1024), "1Ki");
        assert_eq!(memory(1536), "1.5Ki");
        assert_eq!(memory(64 << 20), "64Mi");
        assert_eq!(memory(1 << 30), "1Gi");
        assert_eq!(memory(8_254_316_544), "7.7Gi");
        assert_eq!(memory(3 << 40), "3Ti");
    }

    #[test]
    fn shares_and_percentages_round() {
        assert_eq!(percent(0.374), "37%");
        assert_eq!(percent(1.0), "100%");
        assert_eq!(share(1500, 4000), "38%");
        assert_eq!(share(5, 0), "0%");
    }

    #[test]
    fn states_and_phases_are_camel_case() {
        assert_eq!(node_state(NodeState::Ready), "Ready");
        assert_eq!(phase(Phase::BackOff), "BackOff");
        assert_eq!(phase(Phase::Pending), "Pending");
    }

    #[test]
    fn labels_and_taints_join_with_commas() {
        let mut l = BTreeMap::new();
        assert_eq!(labels(&l), "<none>");
        l.insert("zone".to_string(), "a".to_string());
        l.insert("disk".to_string(), "ssd".to_string());
        assert_eq!(labels(&l), "disk=ssd,zone=a");
        let t = vec![
            TaintView {
                key: "gpu".into(),
                value: "yes".into(),
                effect: "NoSchedule".into(),
            },
            TaintView {
                key: "spot".into(),
                value: String::new(),
                effect: "PreferNoSchedule".into(),
            },
        ];
        assert_eq!(taints(&t), "gpu=yes:NoSchedule,spot:PreferNoSchedule");
        assert_eq!(taints(&[]), "<none>");
    }
}
