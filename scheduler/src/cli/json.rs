//! `-o json`: the daemon's JSON as received, indented (keys keep their order).

/// Indents the JSON text `raw` two spaces per level, as `serde_json::to_string_pretty` would,
/// without decoding it into values (which would reorder object keys and drop nothing but
/// could change number spellings). Fails when `raw` is not JSON.
pub fn pretty(raw: &[u8]) -> Result<String, serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(raw)?;
    // Valid JSON is valid UTF-8.
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().expect("peeked"));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth -= 1;
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            other => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_like_serde_json_and_keeps_key_order() {
        let raw =
            br#"[{"name":"n1","b":{"x":[1,2.50,{}],"e":[]},"a":"q\"u:o,t{e"} ,{ "name" : "n2" }]"#;
        assert_eq!(
            pretty(raw).unwrap(),
            "[\n  {\n    \"name\": \"n1\",\n    \"b\": {\n      \"x\": [\n        1,\n        2.50,\n        {}\n      ],\n      \"e\": []\n    },\n    \"a\": \"q\\\"u:o,t{e\"\n  },\n  {\n    \"name\": \"n2\"\n  }\n]"
        );
    }

    #[test]
    fn matches_serde_json_pretty_for_its_own_output() {
        let value = serde_json::json!([{"a": [1, {"b": null}], "c": "x\\"}, [], {}]);
        let compact = serde_json::to_vec(&value).unwrap();
        assert_eq!(
            pretty(&compact).unwrap(),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn rejects_what_is_not_json() {
        assert!(pretty(b"[1,").is_err());
        assert!(pretty(b"<html>").is_err());
    }
}
