//! Spec text into a generic value: the size and nesting depth are bounded before the text is
//! parsed (a deeply nested document costs the YAML parser seconds to minutes), and a mapping
//! that repeats a key is refused rather than letting the last one win.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::limits::{MAX_DEPTH, MAX_DOCUMENT_BYTES};
use super::problems::Problems;

/// Parses spec text: JSON when it looks like JSON (a `{` first), YAML otherwise; a syntax error
/// is one problem naming its line and column.
pub(super) fn document(text: &str) -> Result<Value, Problems> {
    if text.trim().is_empty() {
        return Err(Problems::document(
            "the spec is empty: it needs at least `name` and `source`".into(),
        ));
    }
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(Problems::document(format!(
            "the spec is {} bytes; at most {MAX_DOCUMENT_BYTES} are read",
            text.len()
        )));
    }
    if nesting(text) > MAX_DEPTH {
        return Err(too_deep());
    }
    if text.trim_start().starts_with('{') {
        // A YAML flow mapping (`{name: web, ...}`) also starts with `{`: when it is not JSON,
        // the YAML reading's complaint counts if it is one of ours (a repeated key, depth).
        return json(text).or_else(|json| {
            yaml(text).map_err(|yaml| {
                let text = yaml.to_string();
                if text.contains(REPEATED) || text.contains(TOO_DEEP) {
                    yaml_problem(&yaml)
                } else {
                    let at = (json.line() > 0).then(|| (json.line(), json.column()));
                    syntax("JSON", &json.to_string(), at)
                }
            })
        });
    }
    yaml(text).map_err(|yaml| yaml_problem(&yaml))
}

fn yaml_problem(e: &serde_norway::Error) -> Problems {
    let text = e.to_string();
    // Our own refusals (a repeated key, too deep) are about the document: the parser's
    // location for them is not where the key is.
    let at = if text.contains(REPEATED) || text.contains(TOO_DEEP) {
        None
    } else {
        e.location().map(|l| (l.line(), l.column()))
    };
    syntax("YAML", &text, at)
}

/// A syntax error as one problem at its place in the text (`line 3, column 6`) when the parser
/// knows it, else about the document as a whole.
fn syntax(format: &str, error: &str, at: Option<(usize, usize)>) -> Problems {
    let Some((line, column)) = at else {
        return Problems::document(format!("the spec is not valid {format}: {error}"));
    };
    let error = error.replacen(&format!(" at line {line} column {column}"), "", 1);
    Problems::at(
        format!("line {line}, column {column}"),
        format!("the spec is not valid {format}: {error}"),
    )
}

/// How a repeated key is reported (after the key).
const REPEATED: &str = "appears twice in one mapping";
/// How too deep a document is reported (before the limit).
const TOO_DEEP: &str = "the spec nests mappings and lists deeper than";

fn too_deep() -> Problems {
    Problems::document(format!("{TOO_DEEP} {MAX_DEPTH} levels"))
}

fn json(text: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict { depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

fn yaml(text: &str) -> Result<Value, serde_norway::Error> {
    Strict { depth: 0 }.deserialize(serde_norway::Deserializer::from_str(text))
}

/// An upper estimate of the nesting depth of YAML or JSON text, in one pass without parsing:
/// flow brackets (`[`, `{`) outside quotes and comments, plus per line the block levels (the
/// indentations still open) and the sequence entries (`- `) or complex keys (`? `) that start
/// it. Block scalars and plain scalars with brackets can only raise the estimate.
fn nesting(text: &str) -> usize {
    let mut flow = 0usize;
    let mut block = 0usize;
    let mut deepest = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    let mut quote: Option<char> = None;
    for line in text.lines() {
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        if quote.is_none() && flow == 0 && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|&open| open > indent) {
                indents.pop();
            }
            if indents.last().is_none_or(|&open| open < indent) {
                indents.push(indent);
            }
            block = indents.len();
            let mut rest = content;
            while let Some(after) = rest
                .strip_prefix("- ")
                .or_else(|| rest.strip_prefix("? "))
                .or_else(|| (rest == "-").then_some(""))
            {
                block += 1;
                rest = after.trim_start_matches(' ');
            }
        }
        // A quote opens a scalar only where one may start (not in `it's`).
        let mut previous = ' ';
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => {
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                (Some(_), _) => {}
                (None, '"' | '\'') if " \t[{,:-?".contains(previous) => quote = Some(c),
                (None, '#') if previous == ' ' || previous == '\t' => break,
                (None, '[' | '{') => flow += 1,
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            deepest = deepest.max(block + flow);
            previous = c;
        }
        deepest = deepest.max(block + flow);
    }
    deepest
}

/// Reads any self-describing value into a [`Value`], refusing repeated keys and nesting deeper
/// than [`MAX_DEPTH`].
#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
}

impl Strict {
    fn inner<E: serde::de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(too_deep()));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping, list, string, number or boolean")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(A::Error::custom(format_args!("the key {key:?} {REPEATED}")));
            }
            let value = map.next_value_seed(inner)?;
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_counts_flow_and_block_levels() {
        assert_eq!(nesting("a: 1\n"), 1);
        assert_eq!(nesting("a:\n  b:\n    c: 1\n"), 3);
        assert_eq!(nesting("a: [1, [2, {b: 3}]]\n"), 4);
        assert_eq!(nesting("- - - x\n"), 4);
        assert_eq!(nesting("{\"a\": [\"[[[[\", '{{{{']}"), 3);
        assert_eq!(nesting("a: it's [x]\nb: 1\n"), 2);
        assert_eq!(nesting("a: 1 # [[[[[[\n"), 1);
        assert_eq!(nesting("a:\n  b: 1\nc: 2\n"), 2);
    }

    #[test]
    fn the_depth_limit_leaves_room_for_every_spec() {
        let deepest = "name: w\nliveness:\n  exec:\n    command:\n      - [x]\n";
        assert!(nesting(deepest) <= MAX_DEPTH);
    }

    /// The one document-wide problem `text` has.
    fn refused(text: &str) -> String {
        let problems = super::super::parse(text).unwrap_err();
        assert_eq!(problems.list().len(), 1, "{problems}");
        assert_eq!(problems.list()[0].path, "");
        problems.to_string()
    }

    #[test]
    fn deep_documents_are_refused_before_parsing() {
        let flow = format!("name: {}1{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert!(refused(&flow).contains("deeper than 32 levels"));
        let braces = format!(
            "{{\"name\": {}1{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert!(refused(&braces).contains("deeper than 32 levels"));
        let block: String = (0..1_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(refused(&block).contains("deeper than 32 levels"));
        let dashes = format!("name: w\ncommand:\n{}x\n", "- ".repeat(50_000));
        assert!(refused(&dashes).contains("deeper than 32 levels"));
        // Behind the estimate, the reader counts exactly.
        let nested = format!("{}1{}", "[".repeat(33), "]".repeat(33));
        assert!(yaml(&nested)
            .unwrap_err()
            .to_string()
            .contains("deeper than 32"));
        assert!(json(&nested)
            .unwrap_err()
            .to_string()
            .contains("deeper than 32"));
        let fits = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert!(yaml(&fits).is_ok() && json(&fits).is_ok());
    }

    #[test]
    fn large_documents_are_refused() {
        let text = format!(
            "name: w\ncommand: [\"{}\"]\n",
            "a".repeat(MAX_DOCUMENT_BYTES)
        );
        let message = refused(&text);
        assert!(message.contains("at most 1048576 are read"), "{message}");
    }

    #[test]
    fn a_repeated_key_is_an_error_not_last_wins() {
        for text in [
            "name: a\nname: b\nsource: {rootfs: /r}\n",
            "name: a\nsource: {rootfs: /r, rootfs: /s}\n",
            "{\"name\": \"a\", \"source\": {\"rootfs\": \"/r\"}, \"name\": \"b\"}",
            "{name: a, source: {rootfs: /r}, name: b}",
        ] {
            let message = refused(text);
            assert!(
                message.contains("appears twice in one mapping"),
                "{text}: {message}"
            );
        }
    }
}
