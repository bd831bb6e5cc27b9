//! Amounts written as text: cpu (`500m`, `0.5`, `2`), memory (`64Mi`, `1Gi`, `512M`, plain
//! bytes) and durations (`500ms`, `2s`, `1m`), read into integers and written back in the
//! shortest exact form.

use std::time::Duration;

use serde_json::Value;

/// Binary memory suffixes, largest first, then decimal ones.
const MEMORY_SUFFIXES: [(&str, u64); 8] = [
    ("Ti", 1 << 40),
    ("Gi", 1 << 30),
    ("Mi", 1 << 20),
    ("Ki", 1 << 10),
    ("T", 1_000_000_000_000),
    ("G", 1_000_000_000),
    ("M", 1_000_000),
    ("k", 1_000),
];

/// Reads a cpu amount in millicores: `"500m"`, `"0.5"`, `"2"`, `2` or `0.5`.
pub fn parse_cpu(value: &Value) -> Result<u64, String> {
    let text = number_or_string(value);
    let bad = || {
        format!(
            "{} is not a cpu quantity: use cores (2, \"0.5\") or millicores (\"500m\")",
            show(value)
        )
    };
    let Some(text) = text else { return Err(bad()) };
    let (digits, unit) = match text.strip_suffix('m') {
        Some(millis) => (millis, 1),
        None => (text.as_str(), 1000),
    };
    match decimal(digits, unit) {
        Some(Exact::Whole(millis)) => Ok(millis),
        Some(Exact::Fraction) => Err(format!(
            "{} is finer than a millicore: use at most three decimals of a core, or whole \"m\"",
            show(value)
        )),
        Some(Exact::TooLarge) => Err(format!("{} is too large", show(value))),
        None => Err(bad()),
    }
}

/// Reads a memory amount in bytes: plain bytes (`1048576`), or a number with one of the
/// suffixes k, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024); `1.5Gi` is fine
/// as long as it comes to whole bytes.
pub fn parse_memory(value: &Value) -> Result<u64, String> {
    let bad = || {
        format!(
            "{} is not a memory quantity: use bytes or a suffix (k, M, G, Ki, Mi, Gi)",
            show(value)
        )
    };
    let Some(text) = number_or_string(value) else {
        return Err(bad());
    };
    let (digits, unit) = MEMORY_SUFFIXES
        .iter()
        .find_map(|(suffix, unit)| text.strip_suffix(suffix).map(|d| (d, *unit)))
        .unwrap_or((&text, 1));
    match decimal(digits, unit) {
        Some(Exact::Whole(bytes)) => Ok(bytes),
        Some(Exact::Fraction) => Err(format!("{} is not a whole number of bytes", show(value))),
        Some(Exact::TooLarge) => Err(format!("{} is too large", show(value))),
        None => Err(bad()),
    }
}

/// Reads a count of processes: a non-negative integer.
pub fn parse_pids(value: &Value) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("{} is not a process count: use a whole number", show(value)))
}

/// Reads a duration such as `"500ms"`, `"2s"`, `"1m"` or `"1m 30s"`.
pub fn parse_duration(value: &Value) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{} is not a duration: use a number with a unit, e.g. \"500ms\", \"2s\", \"1m\"",
            show(value)
        )
    };
    match value {
        Value::String(text) => humantime::parse_duration(text.trim()).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Millicores as written back: whole cores as `"2"`, otherwise `"1500m"`.
pub fn format_cpu(millis: u64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes as written back: in the shortest exact form, with a suffix or as plain bytes (a binary
/// suffix where a decimal one is as short).
pub fn format_memory(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    MEMORY_SUFFIXES
        .iter()
        .filter(|(_, unit)| bytes % unit == 0)
        .map(|(suffix, unit)| format!("{}{suffix}", bytes / unit))
        .chain([bytes.to_string()])
        .min_by_key(String::len)
        .expect("plain bytes are always a candidate")
}

/// A duration as written back (`"1m 30s"`, `"500ms"`, `"0s"`).
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        "0s".into()
    } else {
        humantime::format_duration(duration).to_string()
    }
}

/// A value as quoted in a message: strings in quotes, anything else as JSON.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The text of a number or a string, trimmed.
fn number_or_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The outcome of scaling a decimal number by a unit.
#[derive(Debug, PartialEq, Eq)]
enum Exact {
    /// A whole number of units.
    Whole(u64),
    /// It does not come to a whole number.
    Fraction,
    /// More than a u64 holds.
    TooLarge,
}

/// `text` (digits, optionally a point and more digits) times `unit`, computed exactly; `None`
/// when `text` is not such a number.
fn decimal(text: &str, unit: u64) -> Option<Exact> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    let scaled = whole
        .parse::<u128>()
        .ok()
        .and_then(|whole| whole.checked_mul(u128::from(unit)));
    let Some(mut scaled) = scaled else {
        return Some(Exact::TooLarge);
    };
    if !fraction.is_empty() {
        // No unit is a 10^20th of another: longer fractions never come out whole.
        if fraction.len() > 20 {
            return Some(Exact::Fraction);
        }
        let denominator = 10u128.pow(fraction.len() as u32);
        let numerator = fraction.parse::<u128>().ok()? * u128::from(unit);
        if numerator % denominator != 0 {
            return Some(Exact::Fraction);
        }
        scaled += numerator / denominator;
    }
    Some(u64::try_from(scaled).map_or(Exact::TooLarge, Exact::Whole))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn cpu_quantities() {
        let table = [
            (json!("500m"), Ok(500)),
            (json!("0.5"), Ok(500)),
            (json!("2"), Ok(2000)),
            (json!(2), Ok(2000)),
            (json!(0.25), Ok(250)),
            (json!("1.5"), Ok(1500)),
            (json!("0.001"), Ok(1)),
            (json!("1.000"), Ok(1000)),
            (json!("0"), Ok(0)),
            (json!(" 250m "), Ok(250)),
            (json!("0.0005"), Err("finer than a millicore")),
            (json!("1.5m"), Err("finer than a millicore")),
            (json!("2 cores"), Err("is not a cpu quantity")),
            (json!("-1"), Err("is not a cpu quantity")),
            (json!(-1), Err("is not a cpu quantity")),
            (json!("m"), Err("is not a cpu quantity")),
            (json!("."), Err("is not a cpu quantity")),
            (json!("1."), Err("is not a cpu quantity")),
            (json!(".5"), Err("is not a cpu quantity")),
            (json!(true), Err("is not a cpu quantity")),
            (json!("99999999999999999999"), Err("too large")),
        ];
        for (input, want) in table {
            let got = parse_cpu(&input);
            match want {
                Ok(millis) => assert_eq!(got, Ok(millis), "{input}"),
                Err(part) => {
                    let message = got.unwrap_err();
                    assert!(message.contains(part), "{input}: {message}");
                }
            }
        }
    }

    #[test]
    fn memory_quantities() {
        let table = [
            (json!("64Mi"), Ok(64 << 20)),
            (json!("1Gi"), Ok(1 << 30)),
            (json!("512M"), Ok(512_000_000)),
            (json!("100k"), Ok(100_000)),
            (json!("3Ki"), Ok(3072)),
            (json!("2T"), Ok(2_000_000_000_000)),
            (json!("1Ti"), Ok(1 << 40)),
            (json!("1.5Gi"), Ok(3 << 29)),
            (json!("1048576"), Ok(1 << 20)),
            (json!(4096), Ok(4096)),
            (json!("0"), Ok(0)),
            (
                json!("64Q"),
                Err(
                    "\"64Q\" is not a memory quantity: use bytes or a suffix (k, M, G, Ki, Mi, Gi)",
                ),
            ),
            (json!("64K"), Err("is not a memory quantity")),
            (json!("Mi"), Err("is not a memory quantity")),
            (json!("-5Mi"), Err("is not a memory quantity")),
            (json!(1.5), Err("not a whole number of bytes")),
            (json!("0.3k"), Ok(300)),
            (json!("0.0001k"), Err("not a whole number of bytes")),
            (json!("20000000Ti"), Err("too large")),
            (json!([1]), Err("is not a memory quantity")),
        ];
        for (input, want) in table {
            let got = parse_memory(&input);
            match want {
                Ok(bytes) => assert_eq!(got, Ok(bytes), "{input}"),
                Err(part) => {
                    let message = got.unwrap_err();
                    assert!(message.contains(part), "{input}: {message}");
                }
            }
        }
    }

    #[test]
    fn pids_are_whole_numbers() {
        assert_eq!(parse_pids(&json!(100)), Ok(100));
        for bad in [json!(-1), json!(1.5), json!("100")] {
            assert!(parse_pids(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("1m 30s", Duration::from_secs(90)),
            ("0s", Duration::ZERO),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(&json!(text)), Ok(want), "{text}");
            assert_eq!(parse_duration(&json!(format_duration(want))), Ok(want));
        }
        for bad in [json!(2), json!("2"), json!("two seconds"), json!("")] {
            let message = parse_duration(&bad).unwrap_err();
            assert!(message.contains("is not a duration"), "{message}");
        }
    }

    #[test]
    fn amounts_are_written_back_in_the_shortest_exact_form() {
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(1500), "1500m");
        assert_eq!(format_cpu(0), "0");
        assert_eq!(format_memory(64 << 20), "64Mi");
        assert_eq!(format_memory(512_000_000), "512M");
        assert_eq!(format_memory(1000), "1k");
        assert_eq!(format_memory(1024), "1Ki");
        assert_eq!(format_memory(1001), "1001");
        assert_eq!(format_memory(1 << 30), "1Gi");
        assert_eq!(format_memory(3 << 29), "1536Mi");
        assert_eq!(format_memory(100), "100");
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
    }

    proptest! {
        #[test]
        fn cpu_round_trips(millis in 0u64..=u64::MAX / 2) {
            prop_assert_eq!(parse_cpu(&json!(format_cpu(millis))), Ok(millis));
            prop_assert_eq!(parse_cpu(&json!(format!("{millis}m"))), Ok(millis));
        }

        #[test]
        fn memory_round_trips(bytes in any::<u64>()) {
            prop_assert_eq!(parse_memory(&json!(format_memory(bytes))), Ok(bytes));
            prop_assert_eq!(parse_memory(&json!(bytes)), Ok(bytes));
        }

        #[test]
        fn binary_suffixes_scale(n in 0u64..1 << 20, suffix in 0usize..4) {
            let (name, unit) = MEMORY_SUFFIXES[suffix];
            prop_assume!(n.checked_mul(unit).is_some());
            prop_assert_eq!(parse_memory(&json!(format!("{n}{name}"))), Ok(n * unit));
        }

        #[test]
        fn decimal_cores_match_millicores(whole in 0u64..1_000_000, frac in 0u64..1000) {
            let text = format!("{whole}.{frac:03}");
            prop_assert_eq!(parse_cpu(&json!(text)), Ok(whole * 1000 + frac));
        }

        #[test]
        fn memory_never_panics(text in "\\PC{0,12}") {
            let _ = parse_memory(&json!(text));
            let _ = parse_cpu(&json!(text));
        }
    }
}
