//! The scheduler's durable state: an embedded redb database of JSON records.
//!
//! Tables: `nodes`, `workloads`, `instances`, `services` (keyed by name/id), `events` (keyed
//! by a zero-padded sequence number, so keys sort in order) and `meta`. The daemon changes its
//! in-memory state and records each change in a [`Batch`]; the batch is committed in one write
//! transaction (fsync'd: redb's default durability) *before* the daemon acts on the change, so a
//! `kill -9` at any moment leaves either the state before the step or after it, and an instance
//! is always recorded on its node before the node is asked to run it.

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::{Condvar, Mutex};

/// The tables of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Registered nodes.
    Nodes,
    /// Workloads with their revisions.
    Workloads,
    /// Instances, live and finished.
    Instances,
    /// Events, by sequence number.
    Events,
    /// Counters and settings.
    Meta,
    /// Services, by name.
    Services,
}

impl Table {
    const ALL: [Table; 6] = [
        Table::Nodes,
        Table::Workloads,
        Table::Instances,
        Table::Events,
        Table::Meta,
        Table::Services,
    ];

    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        TableDefinition::new(match self {
            Table::Nodes => "nodes",
            Table::Workloads => "workloads",
            Table::Instances => "instances",
            Table::Events => "events",
            Table::Meta => "meta",
            Table::Services => "services",
        })
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

/// One write or removal.
#[derive(Debug, Clone)]
enum Op {
    Put(Table, String, Vec<u8>),
    Remove(Table, String),
}

/// Changes committed together.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<Op>,
}

impl Batch {
    /// Writes `value` as `key` of `table`.
    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.ops.push(Op::Put(table, key.to_string(), bytes));
    }

    /// Removes `key` from `table`.
    pub fn remove(&mut self, table: Table, key: &str) {
        self.ops.push(Op::Remove(table, key.to_string()));
    }

    /// True when nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Adds `later`'s changes after this batch's.
    pub fn append(&mut self, mut later: Batch) {
        self.ops.append(&mut later.ops);
    }
}

/// Group commit: batches are queued in the order their changes were made (under the state's
/// lock) and made durable outside that lock, many at once in one transaction, by whichever
/// waiter finds no commit under way. A writer waits for its own batch, and every batch queued
/// before it, to be durable; nobody waits for an fsync while holding the state.
pub struct Committer {
    store: Store,
    queue: Mutex<Queue>,
    durable: Condvar,
}

/// Batches queued and how far they are durable.
#[derive(Default)]
struct Queue {
    /// The batches queued and not yet being committed, merged.
    pending: Batch,
    /// The number of the last batch queued.
    queued: u64,
    /// Every batch up to this number is durable.
    durable: u64,
    /// A commit is under way.
    committing: bool,
    /// Commits made (each of one or more batches).
    commits: u64,
}

/// A place in the commit order: durable once every batch up to it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Committer {
    /// Commits to `store`.
    pub fn new(store: Store) -> Committer {
        Committer {
            store,
            queue: Mutex::new(Queue::default()),
            durable: Condvar::new(),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `batch` (call this while holding what orders the changes); returns the ticket
    /// to wait for, which covers every batch queued before it too.
    pub fn queue_batch(&self, batch: Batch) -> Ticket {
        let mut queue = self.queue();
        if !batch.is_empty() {
            queue.pending.append(batch);
            queue.queued += 1;
        }
        Ticket(queue.queued)
    }

    /// Waits until every batch up to `ticket` is durable, committing them (and any queued
    /// since, in the same transaction) when no other waiter is.
    pub fn wait(&self, ticket: Ticket) -> Result<(), StoreError> {
        let mut queue = self.queue();
        loop {
            if queue.durable >= ticket.0 {
                return Ok(());
            }
            if queue.committing {
                queue = self.durable.wait(queue).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            queue.committing = true;
            let batch = std::mem::take(&mut queue.pending);
            let upto = queue.queued;
            drop(queue);
            let result = self.store.commit(batch);
            queue = self.queue();
            queue.committing = false;
            if result.is_ok() {
                queue.durable = upto;
                queue.commits += 1;
            }
            self.durable.notify_all();
            result?;
        }
    }

    /// How many transactions have been committed.
    pub fn commits(&self) -> u64 {
        self.queue().commits
    }
}

/// The records of a table: those that read, and those that did not.
#[derive(Debug)]
pub struct Loaded<T> {
    /// Readable records, in key order.
    pub records: Vec<(String, T)>,
    /// The keys of records that do not read as a `T` (corrupt, or stored by a version with
    /// other rules), with why.
    pub unreadable: Vec<(String, String)>,
}

/// The database.
pub struct Store {
    db: Database,
    path: String,
}

impl Store {
    /// Opens (or creates) the database at `path`. It holds the workloads' specs, their
    /// environments included: it is created 0600, and before anything is written the
    /// directory holding it (the daemon's state directory) loses its group and other
    /// permissions, as does an existing database an older version left readable by others.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |e: &dyn std::fmt::Display| StoreError {
            path: shown.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            mini_run::private_files::restrict(dir)
                .map_err(|e| err(&format!("making {} private: {e}", dir.display())))?;
        }
        let file = mini_run::private_files::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| err(&e))?;
        mini_run::private_files::restrict(path).map_err(|e| err(&e))?;
        let db = redb::Builder::new()
            .create_file(file)
            .map_err(|e| err(&e))?;
        let store = Store {
            db,
            path: shown.clone(),
        };
        let tx = store.db.begin_write().map_err(|e| err(&e))?;
        for table in Table::ALL {
            tx.open_table(table.definition()).map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))?;
        Ok(store)
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Commits `batch` in one durable transaction.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| self.error(e))?;
        for op in &batch.ops {
            match op {
                Op::Put(table, key, value) => {
                    let mut t = tx
                        .open_table(table.definition())
                        .map_err(|e| self.error(e))?;
                    t.insert(key.as_str(), value.as_slice())
                        .map_err(|e| self.error(e))?;
                }
                Op::Remove(table, key) => {
                    let mut t = tx
                        .open_table(table.definition())
                        .map_err(|e| self.error(e))?;
                    t.remove(key.as_str()).map_err(|e| self.error(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.error(e))
    }

    /// Every record of `table`, in key order; a record that does not read is set apart (and
    /// left in the store), so one bad record never keeps the daemon from starting.
    pub fn load<T: DeserializeOwned>(&self, table: Table) -> Result<Loaded<T>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.error(e))?;
        let t = tx
            .open_table(table.definition())
            .map_err(|e| self.error(e))?;
        let mut out = Loaded {
            records: Vec::new(),
            unreadable: Vec::new(),
        };
        for entry in t.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            let key = key.value().to_string();
            match serde_json::from_slice(value.value()) {
                Ok(record) => out.records.push((key, record)),
                Err(e) => out.unreadable.push((key, e.to_string())),
            }
        }
        Ok(out)
    }
}

/// The key of event `seq`: zero-padded so that keys sort by number.
pub fn event_key(seq: u64) -> String {
    format!("{seq:020}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test, removed when dropped (also when the test fails).
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn batches_commit_atomically_and_load_in_key_order() {
        let scratch = Scratch::new("mini-sched-store");
        let dir = &scratch.0;
        let path = dir.join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            let mut batch = Batch::default();
            batch.put(Table::Events, &event_key(10), &"ten");
            batch.put(Table::Events, &event_key(9), &"nine");
            batch.put(Table::Nodes, "n1", &1u32);
            store.commit(batch).unwrap();
            let mut batch = Batch::default();
            batch.remove(Table::Nodes, "n1");
            batch.put(Table::Nodes, "n2", &2u32);
            store.commit(batch).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let events: Vec<(String, String)> = store.load(Table::Events).unwrap().records;
        assert_eq!(
            events.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>(),
            ["nine", "ten"]
        );
        let nodes: Vec<(String, u32)> = store.load(Table::Nodes).unwrap().records;
        assert_eq!(nodes, [("n2".to_string(), 2)]);
        let mut batch = Batch::default();
        batch.put(Table::Nodes, "bad", &"not a number");
        store.commit(batch).unwrap();
        let nodes = store.load::<u32>(Table::Nodes).unwrap();
        assert_eq!(nodes.records, [("n2".to_string(), 2)]);
        assert_eq!(nodes.unreadable.len(), 1);
        assert_eq!(nodes.unreadable[0].0, "bad");
    }

    #[test]
    fn the_database_is_made_private_and_an_existing_one_narrowed() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = Scratch::new("mini-sched-store-mode");
        let dir = &scratch.0;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let path = dir.join("state.redb");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        drop(Store::open(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(dir), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let mut batch = Batch::default();
        batch.put(Table::Meta, "k", &1u32);
        store.commit(batch).unwrap();
    }
}
