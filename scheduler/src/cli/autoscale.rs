//! How autoscaling prints: a cell for `get workloads`, sections for `describe workload`, and
//! the resources `rightsize` changes.

use std::time::SystemTime;

use super::format::{self, NONE};
use super::table::Table;
use crate::autoscale::{AutoscaleStatus, Rightsizing};
use crate::spec::quantity::{format_cpu, format_memory};

/// `min–max`, and the metric against its target once measured (`1–4 cpu 63%/50%`).
pub fn cell(status: Option<&AutoscaleStatus>) -> String {
    let Some(s) = status else {
        return NONE.into();
    };
    let measured = s
        .measured_percent
        .map_or_else(|| "?".to_string(), |m| format!("{m:.0}%"));
    let paused = if s.paused { " paused" } else { "" };
    format!(
        "{}–{} {} {measured}/{}%{paused}",
        s.min, s.max, s.metric, s.target_percent
    )
}

/// The lines of `describe workload` about autoscaling.
pub fn section(s: &AutoscaleStatus, now: SystemTime) -> String {
    let measured = s
        .measured_percent
        .map_or_else(|| "not measured yet".to_string(), |m| format!("{m:.0}%"));
    let mut out = format!(
        "Autoscaling:\n  Bounds:          {}–{} instances\n  Metric:          {} {measured} (target {}%) over {} ready instance(s); {} missing, {} not ready\n",
        s.min, s.max, s.metric, s.target_percent, s.measured, s.missing, s.unready
    );
    let or_none = |n: Option<u32>| n.map_or_else(|| NONE.to_string(), |n| n.to_string());
    out.push_str(&format!(
        "  Recommendation:  {} (settled on {})\n  Windows:         up {}, down {}\n",
        or_none(s.recommendation),
        or_none(s.desired),
        s.scale_up_window,
        s.scale_down_window
    ));
    if s.paused {
        out.push_str("  Paused:          by `scale`; the next `apply` resumes it\n");
    }
    if let Some(held) = &s.held_by {
        out.push_str(&format!("  Held by:         {held}\n"));
    }
    if !s.decisions.is_empty() {
        let mut table = Table::new(&["WHEN", "FROM", "TO", "REASON"]);
        for d in &s.decisions {
            table.row(vec![
                format::when(&d.time, now),
                d.from.to_string(),
                d.to.to_string(),
                d.reason.clone(),
            ]);
        }
        out.push_str("  Decisions:\n");
        out.push_str(&table.render_indented(4));
    }
    out
}

/// `Recommended:`, the vertical recommendation in `describe workload`.
pub fn rightsizing(r: &Rightsizing) -> String {
    let mut text = format!(
        "Recommended:     requests cpu {}, memory {}",
        format_cpu(r.cpu_request_millis),
        format_memory(r.memory_request_bytes)
    );
    let limits: Vec<String> = [
        r.cpu_limit_millis.map(|c| format!("cpu {}", format_cpu(c))),
        r.memory_limit_bytes
            .map(|m| format!("memory {}", format_memory(m))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !limits.is_empty() {
        text.push_str(&format!("; limits {}", limits.join(", ")));
    }
    text.push_str(&format!(
        " (p90 cpu, peak memory + 15%, from {} measurements; `mini-sched rightsize` applies it)\n",
        r.samples
    ));
    text
}

/// The changes `rightsize` makes to `spec`'s resources (`field: old → new` lines), and the
/// spec with them made.
pub fn rightsize(spec: &serde_json::Value, r: &Rightsizing) -> (Vec<String>, serde_json::Value) {
    let mut spec = spec.clone();
    let mut changes = Vec::new();
    let wanted = [
        ("requests", "cpu", Some(format_cpu(r.cpu_request_millis))),
        (
            "requests",
            "memory",
            Some(format_memory(r.memory_request_bytes)),
        ),
        ("limits", "cpu", r.cpu_limit_millis.map(format_cpu)),
        ("limits", "memory", r.memory_limit_bytes.map(format_memory)),
    ];
    for (kind, resource, new) in wanted {
        let Some(new) = new else { continue };
        let slot = &mut spec["resources"][kind][resource];
        let old = slot.as_str().unwrap_or("none").to_string();
        if old != new {
            changes.push(format!("resources.{kind}.{resource}: {old} → {new}"));
            *slot = serde_json::Value::String(new);
        }
    }
    (changes, spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::Decision;
    use std::time::Duration;

    #[test]
    fn describe_shows_metric_target_recommendation_windows_and_decisions() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_060);
        let s = AutoscaleStatus {
            min: 1,
            max: 4,
            metric: "cpu".into(),
            target_percent: 50,
            measured_percent: Some(180.0),
            measured: 1,
            missing: 0,
            unready: 1,
            recommendation: Some(4),
            desired: Some(4),
            scale_up_window: "0s".into(),
            scale_down_window: "5m".into(),
            held_by: None,
            paused: false,
            decisions: vec![Decision {
                time: "2023-11-14T22:13:20Z".into(),
                from: 1,
                to: 4,
                reason: "cpu 180% of the cpu request".into(),
            }],
        };
        let text = section(&s, now);
        assert!(text.contains("Bounds:          1–4 instances\n"), "{text}");
        assert!(
            text.contains("Metric:          cpu 180% (target 50%) over 1 ready instance(s); 0 missing, 1 not ready\n"),
            "{text}"
        );
        assert!(
            text.contains("Recommendation:  4 (settled on 4)\n"),
            "{text}"
        );
        assert!(text.contains("Windows:         up 0s, down 5m\n"), "{text}");
        assert!(
            text.contains("1     4   cpu 180% of the cpu request"),
            "{text}"
        );
    }
}
