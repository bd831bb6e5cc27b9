//! Reading typed values out of a parsed document, recording a problem at the value's path
//! (and answering `None`) wherever one does not fit, so reading goes on past every mistake.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::problems::{field, item, Collector};
use super::quantity::{self, show};

/// Reads values, recording a problem (and answering `None`) where one does not fit.
#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Collector,
    /// The paths of fields present but unreadable, which hold stand-ins.
    pub(super) unread: Vec<String>,
}

/// The value of `key`, treating `null` (an empty YAML value) as absent.
pub(super) fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// What a value is, for "found ..." in messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl Reader {
    /// `value` as a mapping whose keys are all in `known`; an unknown key is a problem.
    pub(super) fn mapping<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            let what = if path.is_empty() { "the spec" } else { "it" };
            self.problems.add(
                path,
                format!("{what} must be a mapping of fields, found {}", kind(value)),
            );
            return None;
        };
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            self.problems.add(
                &field(path, key),
                format!("unknown field: expected one of {}", known.join(", ")),
            );
        }
        Some(map)
    }

    /// Reads `key` of `map` if present (and not null).
    pub(super) fn optional<T>(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        read: impl FnOnce(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<T> {
        let value = get(map, key)?;
        let path = field(path, key);
        let read = read(self, value, &path);
        if read.is_none() {
            self.unread.push(path);
        }
        read
    }

    /// Reads `key` of `map`; its absence is a problem.
    pub(super) fn required<T>(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
        key: &str,
        read: impl FnOnce(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<T> {
        if get(map, key).is_none() {
            let path = field(path, key);
            self.problems.add(&path, "is required");
            self.unread.push(path);
            return None;
        }
        self.optional(map, path, key, read)
    }

    pub(super) fn string(&mut self, value: &Value, path: &str) -> Option<String> {
        match value {
            Value::String(s) => Some(s.clone()),
            other => {
                let hint = match other {
                    Value::Number(_) | Value::Bool(_) => format!(": quote it (\"{other}\")"),
                    _ => String::new(),
                };
                self.problems.add(
                    path,
                    format!("must be a string, found {}{hint}", kind(other)),
                );
                None
            }
        }
    }

    /// A list, each item read by `read`; a bad item is skipped (its problem recorded).
    pub(super) fn list<T>(
        &mut self,
        value: &Value,
        path: &str,
        example: &str,
        mut read: impl FnMut(&mut Self, &Value, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = value else {
            self.problems.add(
                path,
                format!("must be a list, found {}: e.g. {example}", kind(value)),
            );
            return None;
        };
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, v)| read(self, v, &item(path, i)))
            .collect();
        read.into_iter().collect()
    }

    pub(super) fn strings(&mut self, value: &Value, path: &str) -> Option<Vec<String>> {
        self.list(value, path, "[\"a\", \"b\"]", Self::string)
    }

    pub(super) fn string_map(
        &mut self,
        value: &Value,
        path: &str,
    ) -> Option<BTreeMap<String, String>> {
        let Value::Object(map) = value else {
            self.problems.add(
                path,
                format!(
                    "must be a mapping of names to strings, found {}",
                    kind(value)
                ),
            );
            return None;
        };
        let read: Vec<Option<(String, String)>> = map
            .iter()
            .map(|(k, v)| self.string(v, &field(path, k)).map(|v| (k.clone(), v)))
            .collect();
        read.into_iter().collect()
    }

    /// A whole number that fits `T`.
    pub(super) fn uint<T: TryFrom<u64>>(&mut self, value: &Value, path: &str) -> Option<T> {
        let n = value.as_u64().and_then(|n| T::try_from(n).ok());
        if n.is_none() {
            self.problems.add(
                path,
                format!("{} is not a whole number in range", show(value)),
            );
        }
        n
    }

    pub(super) fn int(&mut self, value: &Value, path: &str) -> Option<i32> {
        let n = value.as_i64().and_then(|n| i32::try_from(n).ok());
        if n.is_none() {
            self.problems.add(
                path,
                format!(
                    "{} is not a whole number from {} to {}",
                    show(value),
                    i32::MIN,
                    i32::MAX
                ),
            );
        }
        n
    }

    pub(super) fn port(&mut self, value: &Value, path: &str) -> Option<u16> {
        let port = value.as_u64().and_then(|n| u16::try_from(n).ok());
        if port.is_none() {
            self.problems
                .add(path, format!("{} is not a port number", show(value)));
        }
        port
    }

    pub(super) fn duration(&mut self, value: &Value, path: &str) -> Option<Duration> {
        self.parsed(value, path, quantity::parse_duration)
    }

    /// The outcome of `parse`, its error recorded as the problem.
    pub(super) fn parsed<T>(
        &mut self,
        value: &Value,
        path: &str,
        parse: fn(&Value) -> Result<T, String>,
    ) -> Option<T> {
        parse(value)
            .map_err(|message| self.problems.add(path, message))
            .ok()
    }

    /// One of `choices`, written as a string.
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: &Value,
        path: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let found = value
            .as_str()
            .and_then(|s| choices.iter().find(|(name, _)| *name == s));
        if found.is_none() {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            self.problems.add(
                path,
                format!("{} is not one of {}", show(value), names.join(", ")),
            );
        }
        found.map(|(_, v)| *v)
    }
}
