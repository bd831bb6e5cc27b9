//! Services on this node: the table the scheduler sends (`PUT`/`PATCH /v1/services`), checked
//! ([`validate`]), programmed into the kernel's nftables ([`ruleset`], one transaction per
//! request) and kept on disk.
//!
//! The table is kept in `<state>/services/table.json` (the last one applied, with its
//! generation), so a restarted agent knows what it programmed before: it answers names from it
//! and removes what the scheduler's next whole table no longer has. A restarted agent still
//! reports generation 0 until the scheduler's first `PUT` (the protocol's "just started"), and
//! a `PATCH` before that is refused with `generation_mismatch`.

pub mod conntrack;
pub mod ruleset;
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
    /// nft transactions run, and those that failed.
    transactions: AtomicU64,
    transaction_failures: AtomicU64,
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
            transactions: AtomicU64::new(0),
            transaction_failures: AtomicU64::new(0),
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
        self.commit(&mut table, next, false).await
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
        self.commit(&mut table, next, true).await
    }

    /// Runs one nft transaction, counting it.
    async fn transaction(&self, commands: Vec<serde_json::Value>) -> Result<(), String> {
        self.services.transactions.fetch_add(1, Ordering::Relaxed);
        let result = tokio::task::spawn_blocking(move || super::network::masquerade::nft(commands))
            .await
            .unwrap_or_else(|e| Err(format!("nft: {e}")));
        if result.is_err() {
            self.services
                .transaction_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Programs `next` (incrementally from `table` when `incremental` and the kernel holds
    /// `table`, else as a whole table), keeps it on disk and makes it the table applied;
    /// then forgets the connections of service addresses that went away.
    async fn commit(
        &self,
        table: &mut Table,
        next: Table,
        incremental: bool,
    ) -> Result<ServicesState, Error> {
        let node = &self.config.node;
        // A hollow node (`mini-shim hollow`) keeps the table without programming the
        // kernel: its node is a fake sharing the host's network namespace.
        let hollow = self.hollow().is_some();
        let programmed = if hollow {
            Ok(())
        } else if incremental {
            let mut commands = Vec::new();
            let names: std::collections::BTreeSet<&String> =
                table.services.keys().chain(next.services.keys()).collect();
            for name in names {
                let (old, new) = (table.services.get(name), next.services.get(name));
                if old != new {
                    commands.extend(ruleset::change(old, new, node));
                }
            }
            match commands.is_empty() {
                true => Ok(()),
                false => self.transaction(commands).await,
            }
        } else {
            Err(String::new())
        };
        if let Err(e) = programmed {
            if !e.is_empty() {
                self.log(&format!(
                    "services: the incremental change failed ({e}); replacing the whole table"
                ));
            }
            self.transaction(ruleset::replace(next.services.values(), node))
                .await
                .map_err(|e| Error::Config(format!("programming the service table: {e}")))?;
        }
        let dir = self.services_dir();
        mini_run::private_files::create_dir_all(&dir)
            .map_err(|e| Error::io("creating", &dir, e))?;
        super::run::write_json(&dir.join(TABLE_FILE), &next.to_wire())?;
        let kept: std::collections::HashSet<_> =
            next.services.values().map(|s| s.address).collect();
        let gone: Vec<_> = table
            .services
            .values()
            .map(|s| s.address)
            .filter(|a| !kept.contains(a))
            .collect();
        *table = next;
        self.services
            .generation
            .store(table.generation, Ordering::Relaxed);
        if !hollow {
            self.forget_connections(gone).await;
        }
        Ok(state(table, None))
    }

    /// Flushes the conntrack entries of `addresses` (failures are logged).
    async fn forget_connections(&self, addresses: Vec<std::net::Ipv4Addr>) {
        if addresses.is_empty() {
            return;
        }
        let errors = tokio::task::spawn_blocking(move || {
            addresses
                .into_iter()
                .filter_map(|a| conntrack::flush(a).err())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        if let Some(first) = errors.first() {
            self.log(&format!(
                "services: {} conntrack flushes failed, first: {first}",
                errors.len()
            ));
        }
    }

    /// Removes the services' table, their connections and the kept table (`--cleanup`).
    pub async fn cleanup_services(&self) -> Result<(), Error> {
        let mut table = self.services.table.lock().await;
        if self.hollow().is_some() {
            *table = Table::default();
            return Ok(());
        }
        self.transaction(ruleset::remove())
            .await
            .map_err(|e| Error::Config(format!("removing the services table: {e}")))?;
        let path = self.services_dir().join(TABLE_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("removing", &path, e))
            }
            _ => {}
        }
        let gone = table.services.values().map(|s| s.address).collect();
        *table = Table::default();
        self.services.generation.store(0, Ordering::Relaxed);
        self.forget_connections(gone).await;
        Ok(())
    }

    /// (services, endpoints, transactions, failed transactions) for `/metrics`.
    pub async fn services_counts(&self) -> (usize, usize, u64, u64) {
        let table = self.services.table.lock().await;
        (
            table.services.len(),
            table.endpoints(),
            self.services.transactions.load(Ordering::Relaxed),
            self.services.transaction_failures.load(Ordering::Relaxed),
        )
    }
}
