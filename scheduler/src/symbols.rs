//! Interned strings: label keys and values, taint keys, workload names become small integers so
//! that filters compare numbers, not strings, in the placement hot loop.

use std::collections::HashMap;

/// An interned string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub(crate) u32);

/// The table of interned strings.
#[derive(Debug, Default)]
pub struct Symbols {
    ids: HashMap<String, Sym>,
    names: Vec<String>,
}

impl Symbols {
    /// The symbol of `name`, interning it if new.
    pub fn intern(&mut self, name: &str) -> Sym {
        if let Some(&sym) = self.ids.get(name) {
            return sym;
        }
        let sym = Sym(self.names.len() as u32);
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), sym);
        sym
    }

    /// The symbol of `name` if it was ever interned.
    pub fn get(&self, name: &str) -> Option<Sym> {
        self.ids.get(name).copied()
    }

    /// The string behind `sym`.
    pub fn name(&self, sym: Sym) -> &str {
        &self.names[sym.0 as usize]
    }
}
