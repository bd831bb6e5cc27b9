//! A JSON value written as indented `key: value` lines (a YAML-like outline) for `describe`.

use serde_json::Value;

/// `value` as an outline, every line indented by `indent` spaces and ending in a newline.
pub fn outline(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => object(map, indent, &mut out),
        Value::Array(items) if items.iter().any(is_nested) => array(items, indent, &mut out),
        _ => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&inline(value));
            out.push('\n');
        }
    }
    out
}

fn object(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in map {
        if is_nested(value) {
            out.push_str(&format!("{pad}{key}:\n"));
            out.push_str(&outline(value, indent + 2));
        } else {
            out.push_str(&format!("{pad}{key}: {}\n", inline(value)));
        }
    }
}

fn array(items: &[Value], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for item in items {
        // The item is laid out two deeper, and its first line's indentation becomes "- ".
        let nested = outline(item, indent + 2);
        out.push_str(&pad);
        out.push_str("- ");
        out.push_str(&nested[indent + 2..]);
    }
}

/// True for a non-empty object or an array holding one: those take lines of their own.
fn is_nested(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => items.iter().any(is_nested),
        _ => false,
    }
}

/// A scalar, an empty object or an array of scalars on one line.
fn inline(value: &Value) -> String {
    match value {
        Value::String(s) => string(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(_) => "{}".to_string(),
        other => other.to_string(),
    }
}

/// A string bare when it cannot be mistaken for something else, quoted otherwise.
fn string(s: &str) -> String {
    let ambiguous = s.is_empty()
        || s.trim() != s
        || s.contains([':', '#', ',', '[', ']', '{', '}', '"', '\'', '\n'])
        || s.starts_with(['-', '&', '*', '!', '|', '>', '%', '@', '`'])
        || matches!(s, "true" | "false" | "null" | "~")
        || s.parse::<f64>().is_ok();
    if ambiguous {
        Value::String(s.to_string()).to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_nest_and_scalars_stay_inline() {
        let spec = json!({
            "name": "web",
            "command": ["httpd", "-f", "-p", "8080"],
            "replicas": 3,
            "env": {},
            "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}},
            "affinity": [{"workload": "db", "topology": "node"}],
            "cwd": null,
            "note": "",
        });
        assert_eq!(
            outline(&spec, 2),
            "  affinity:\n\
             \x20   - topology: node\n\
             \x20     workload: db\n\
             \x20 command: [httpd, \"-f\", \"-p\", \"8080\"]\n\
             \x20 cwd: null\n\
             \x20 env: {}\n\
             \x20 name: web\n\
             \x20 note: \"\"\n\
             \x20 replicas: 3\n\
             \x20 resources:\n\
             \x20   requests:\n\
             \x20     cpu: 500m\n\
             \x20     memory: 64Mi\n"
        );
    }

    #[test]
    fn look_alike_strings_are_quoted() {
        for s in ["true", "12", "1.5", "a: b", " x", "#c", ""] {
            assert_eq!(string(s), Value::String(s.into()).to_string(), "{s:?}");
        }
        for s in ["web", "/bin/sh", "64Mi", "500m", "a b"] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn a_scalar_alone_is_one_line() {
        assert_eq!(outline(&json!("x"), 0), "x\n");
        assert_eq!(outline(&json!([]), 1), " []\n");
    }
}
