//! Services on this node: the table the scheduler sends (`PUT`/`PATCH /v1/services`), checked
//! ([`validate`]), programmed into the kernel and kept on disk.
//!
//! The table is kept in `<state>/services/table.json` (the last one applied, with its
//! generation), so a restarted agent knows what it programmed before: it answers names from it
//! and removes what the scheduler's next whole table no longer has. A restarted agent still
//! reports generation 0 until the scheduler's first `PUT` (the protocol's "just started"), and
//! a `PATCH` before that is refused with `generation_mismatch`.

pub mod validate;

use super::{Agent, Error};
use crate::protocol::{ServiceChanges, ServiceEntry, ServiceTable, ServicesState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The services directory in the state directory.
pub const SERVICES_DIR: &str = "services";
/// The last table applied, in the services directory.
const TABLE_FILE: &str = "table.json";

/// A table as the agent holds it: services by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The generation applied (0: none since this process started).
    pub generation: u64,
    /// The cluster's DNS domain.
    pub domain: String,
    /// Every service by name.
    pub services: BTreeMap<String, ServiceEntry>,
}

impl Table {
    fn from_wire(table: ServiceTable) -> Table {
        Table {
            generation: table.generation,
            domain: table.domain,
            services: table
                .services
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
        }
    }

    fn to_wire(&self) -> ServiceTable {
        ServiceTable {
            generation: self.generation,
            domain: self.domain.clone(),
            services: self.services.values().cloned().collect(),
        }
    }

    fn endpoints(&self) -> usize {
        self.services.values().map(|s| s.endpoints.len()).sum()
    }
}

/// The agent's services: the table applied and counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Services {
    /// The table applied; serializes the changes.
    table: tokio::sync::Mutex<Table>,
    /// Its generation, readable without the lock (`GET /v1/node`).
    generation: AtomicU64,
}

impl Services {
    /// The services of `state_dir`: the table kept there (its generation reported as 0 until
    /// the scheduler's first `PUT`).
    pub fn load(state_dir: &Path) -> Services {
        let path = state_dir.join(SERVICES_DIR).join(TABLE_FILE);
        let kept = mini_run::input_file::read(&path, MAX_TABLE_BYTES)
            .ok()
            .and_then(|text| serde_json::from_slice::<ServiceTable>(&text).ok())
            .map(Table::from_wire)
            .unwrap_or_default();
        Services {
            table: tokio::sync::Mutex::new(Table {
                generation: 0,
                ..kept
            }),
            generation: AtomicU64::new(0),
        }
    }

    /// The generation applied (0: none yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

/// The largest table accepted (`PUT /v1/services`'s body and the kept file): room for the
/// largest table [`validate`] allows' most common shape (thousands of services with a few
/// endpoints each).
pub const MAX_TABLE_BYTES: u64 = 16 << 20;

fn state(table: &Table, dns: Option<std::net::SocketAddr>) -> ServicesState {
    ServicesState {
        generation: table.generation,
        services: table.services.len() as u32,
        endpoints: table.endpoints() as u32,
        dns,
    }
}

impl Agent {
    /// `<state-dir>/services`.
    fn services_dir(&self) -> PathBuf {
        self.config.state_dir.join(SERVICES_DIR)
    }

    /// `GET /v1/services`.
    pub async fn services_state(&self) -> ServicesState {
        state(&*self.services.table.lock().await, None)
    }

    /// `PUT /v1/services`: replaces the whole table.
    pub async fn put_services(&self, wire: ServiceTable) -> Result<ServicesState, Error> {
        let mut problems = Vec::new();
        validate::domain(&wire.domain, &mut problems);
        let mut names = std::collections::HashSet::new();
        for s in &wire.services {
            if !names.insert(s.name.as_str()) {
                problems.push(format!("service {} is listed twice", s.name));
            }
        }
        let next = Table::from_wire(wire);
        validate::table(&next.services, None, &mut problems);
        validate::verdict("the service table", problems).map_err(Error::BadRequest)?;
        let mut table = self.services.table.lock().await;
        self.commit(&mut table, next)
    }

    /// `PATCH /v1/services`: applies the changes since generation `from`.
    pub async fn patch_services(&self, changes: ServiceChanges) -> Result<ServicesState, Error> {
        let mut table = self.services.table.lock().await;
        if table.generation == 0 || table.generation != changes.from {
            let holds = match table.generation {
                0 => "has no service table yet".to_string(),
                g => format!("holds service generation {g}"),
            };
            return Err(Error::GenerationMismatch(format!(
                "node {} {holds}, not {}: send the whole table with PUT /v1/services",
                self.config.node, changes.from
            )));
        }
        let mut problems = Vec::new();
        if changes.generation <= changes.from {
            problems.push(format!(
                "generation {} does not follow from {}",
                changes.generation, changes.from
            ));
        }
        let mut next = table.clone();
        next.generation = changes.generation;
        let mut names = std::collections::HashSet::new();
        for name in &changes.remove {
            if !names.insert(name.as_str()) {
                problems.push(format!("service {name} is named twice"));
            }
            next.services.remove(name);
        }
        for s in &changes.upsert {
            if !names.insert(s.name.as_str()) {
                problems.push(format!("service {} is named twice", s.name));
            }
            next.services.insert(s.name.clone(), s.clone());
        }
        let upserted: Vec<&ServiceEntry> = changes.upsert.iter().collect();
        validate::table(&next.services, Some(&upserted), &mut problems);
        validate::verdict("the service changes", problems).map_err(Error::BadRequest)?;
        self.commit(&mut table, next)
    }

    /// Keeps `next` on disk and makes it the table applied.
    fn commit(&self, table: &mut Table, next: Table) -> Result<ServicesState, Error> {
        let dir = self.services_dir();
        mini_run::private_files::create_dir_all(&dir)
            .map_err(|e| Error::io("creating", &dir, e))?;
        super::run::write_json(&dir.join(TABLE_FILE), &next.to_wire())?;
        *table = next;
        self.services
            .generation
            .store(table.generation, Ordering::Relaxed);
        Ok(state(table, None))
    }
}
