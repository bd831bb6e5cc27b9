//! Aligned text tables, kubectl style: upper-case headers, columns two spaces apart, no
//! trailing blanks.

/// A table of text cells.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new<S: AsRef<str>>(headers: &[S]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.as_ref().to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, each line ending in a newline.
    pub fn render(&self) -> String {
        self.render_indented(0)
    }

    /// The table with every line indented by `indent` spaces.
    pub fn render_indented(&self, indent: usize) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = " ".repeat(indent);
            for (i, (cell, w)) in line.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', w - width(cell)));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width of a cell: one column per character (cells hold no wide or combining
/// characters in practice: names are ASCII).
fn width(cell: &str) -> usize {
    cell.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_two_spaces_apart() {
        let mut t = Table::new(&["NAME", "STATE", "AGE"]);
        t.row(vec!["n1".into(), "Ready".into(), "5s".into()]);
        t.row(vec!["node-long".into(), "Lost".into(), "12m".into()]);
        assert_eq!(
            t.render(),
            "NAME       STATE  AGE\n\
             n1         Ready  5s\n\
             node-long  Lost   12m\n"
        );
    }

    #[test]
    fn no_trailing_blanks_even_for_empty_last_cells() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x".into(), String::new()]);
        assert_eq!(t.render(), "A  B\nx\n");
    }

    #[test]
    fn indentation_applies_to_every_line() {
        let mut t = Table::new(&["AGE", "REASON"]);
        t.row(vec!["1m".into(), "Started".into()]);
        assert_eq!(t.render_indented(2), "  AGE  REASON\n  1m   Started\n");
        assert!(!t.is_empty());
        assert!(Table::new(&["A"]).is_empty());
    }
}
