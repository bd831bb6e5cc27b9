//! What is wrong with a spec: every problem found, each at the path of the field it concerns.

use std::fmt;

/// One thing wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The field concerned, as dotted keys and list indexes (`resources.limits.memory`,
    /// `tolerations[1].effect`), the place of a syntax error (`line 3, column 6`), or empty for
    /// the document as a whole.
    pub path: String,
    /// What is wrong and how to put it right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a spec, in the order of the spec's fields (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// The problems, in the order they were found.
    pub fn list(&self) -> &[Problem] {
        &self.0
    }

    /// `Ok` when `problems` is empty.
    pub(crate) fn check(problems: Vec<Problem>) -> Result<(), Problems> {
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(problems))
        }
    }

    /// A single problem at `path` (a field, or a place in the text for a syntax error).
    pub(crate) fn at(path: String, message: String) -> Problems {
        Problems(vec![Problem { path, message }])
    }

    /// A single problem with the document as a whole.
    pub(crate) fn document(message: String) -> Problems {
        Problems(vec![Problem {
            path: String::new(),
            message,
        }])
    }
}

/// One line per problem.
impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems under paths while a spec is read or checked.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    problems: Vec<Problem>,
}

impl Collector {
    /// Records that the field at `path` has a problem.
    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Whether a problem was recorded at `path`, around it or inside it: a later check of that
    /// field would only repeat it or judge a stand-in value.
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.problems
            .iter()
            .any(|p| within(path, &p.path) || within(&p.path, path))
    }

    /// The problems recorded.
    pub(crate) fn into_vec(self) -> Vec<Problem> {
        self.problems
    }
}

/// `path` in dotted notation extended by `key`.
pub(crate) fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path` extended by the list index `i`.
pub(crate) fn item(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Whether `inner` is `outer` itself or a field inside it (segment-wise, so `env` does not
/// contain `environment`).
pub(crate) fn within(inner: &str, outer: &str) -> bool {
    match inner.strip_prefix(outer) {
        Some(rest) => outer.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_per_problem_with_its_path() {
        let mut c = Collector::default();
        c.add("name", "is required");
        c.add("resources.limits.memory", "is too small");
        let problems = Problems::check(c.into_vec()).unwrap_err();
        assert_eq!(
            problems.to_string(),
            "name: is required\nresources.limits.memory: is too small"
        );
        assert_eq!(problems.list().len(), 2);
    }

    #[test]
    fn a_document_problem_has_no_path() {
        assert_eq!(
            Problems::document("line 2 column 3: bad".into()).to_string(),
            "line 2 column 3: bad"
        );
    }

    #[test]
    fn paths_nest_by_segment() {
        assert!(within("env.A", "env"));
        assert!(within("env", "env"));
        assert!(within("tolerations[1].key", "tolerations"));
        assert!(!within("environment", "env"));
        assert!(within("anything", ""));
        assert!(!within("env", "env.A"));
    }
}
