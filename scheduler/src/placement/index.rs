//! Nodes bucketed by free cpu and free memory, so that a placement looks only at nodes that can
//! fit it instead of scanning the whole cluster.
//!
//! Free amounts map to buckets on a log scale (two buckets per power of two), so a bucket's nodes
//! differ by at most ~1.5x in free capacity: only the buckets on the request's own row and column
//! may hold nodes too small for it. Empty nodes live in a grid of their own so that packing fills
//! used nodes before opening a new one, and opens the largest first in the cluster's scarcest
//! resource (opening a memory-rich, cpu-poor node when cpu runs out first wastes a node).

use std::ops::ControlFlow;

use crate::cluster::NodeId;
use crate::resources::Resources;

/// Buckets per resource.
pub(crate) const SIDE: usize = 32;
/// CPU bucket unit, in millicores.
const CPU_UNIT: u64 = 50;
/// Memory bucket unit, in bytes.
const MEMORY_UNIT: u64 = 64 << 20;

/// The bucket of an amount of `units`: 0, 1, then two buckets per power of two, capped.
fn bucket(units: u64) -> usize {
    if units < 2 {
        return units as usize;
    }
    let exponent = 63 - units.leading_zeros() as usize;
    let half = ((units >> (exponent - 1)) & 1) as usize;
    (2 * exponent + half).min(SIDE - 1)
}

pub(crate) fn cell(free: &Resources) -> (usize, usize) {
    (
        bucket(free.cpu_millis / CPU_UNIT),
        bucket(free.memory_bytes / MEMORY_UNIT),
    )
}

/// A resource the index orders nodes by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// CPU.
    Cpu,
    /// Memory.
    Memory,
}

/// In which order candidate nodes are visited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Used nodes with the least room first, then empty nodes, largest first (bin packing).
    Tight,
    /// Empty nodes, largest first, then used nodes with the most room first (spreading).
    Loose,
}

#[derive(Debug)]
struct Grid {
    cells: Vec<Vec<NodeId>>,
    /// Bit `j` of `rows[i]` is set when cell (i, j) holds a node.
    rows: [u32; SIDE],
}

impl Grid {
    fn new() -> Self {
        Grid {
            cells: vec![Vec::new(); SIDE * SIDE],
            rows: [0; SIDE],
        }
    }

    /// Visits the cells that may fit `need`, by increasing or decreasing total free capacity
    /// (anti-diagonals of the grid), calling `visit` on each node until it breaks.
    fn walk(
        &self,
        need: (usize, usize),
        ascending: bool,
        visit: &mut impl FnMut(NodeId) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let (ci, mj) = need;
        let first = ci + mj;
        let last = 2 * (SIDE - 1);
        for step in 0..=(last - first) {
            let diagonal = if ascending { first + step } else { last - step };
            let low = ci.max(diagonal.saturating_sub(SIDE - 1));
            let high = (diagonal - mj).min(SIDE - 1);
            for i in low..=high {
                let j = diagonal - i;
                if self.rows[i] & (1 << j) != 0 {
                    for &node in &self.cells[i * SIDE + j] {
                        visit(node)?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Visits the cells that may fit `need`, largest first by `major`, then by the other resource.
    fn walk_largest(
        &self,
        need: (usize, usize),
        major: Resource,
        visit: &mut impl FnMut(NodeId) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let (ci, mj) = need;
        for outer in (if major == Resource::Cpu { ci } else { mj }..SIDE).rev() {
            for inner in (if major == Resource::Cpu { mj } else { ci }..SIDE).rev() {
                let (i, j) = if major == Resource::Cpu {
                    (outer, inner)
                } else {
                    (inner, outer)
                };
                if self.rows[i] & (1 << j) != 0 {
                    for &node in &self.cells[i * SIDE + j] {
                        visit(node)?;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Where a node sits in the index.
#[derive(Clone, Copy, Debug)]
struct Slot {
    empty: bool,
    cell: usize,
    position: usize,
}

/// All nodes by free capacity.
#[derive(Debug)]
pub struct FreeIndex {
    used: Grid,
    empty: Grid,
    slots: Vec<Slot>,
}

impl Default for FreeIndex {
    fn default() -> Self {
        FreeIndex {
            used: Grid::new(),
            empty: Grid::new(),
            slots: Vec::new(),
        }
    }
}

impl FreeIndex {
    /// Adds node `node` (the next node index) with `free` capacity.
    pub fn add(&mut self, node: NodeId, free: &Resources, empty: bool) {
        debug_assert_eq!(node.0 as usize, self.slots.len());
        self.slots.push(Slot {
            empty,
            cell: 0,
            position: 0,
        });
        self.insert(node, free, empty);
    }

    /// Records that `node` now has `free` capacity and does or does not hold instances.
    pub fn update(&mut self, node: NodeId, free: &Resources, empty: bool) {
        let slot = self.slots[node.0 as usize];
        let (i, j) = cell(free);
        if slot.empty == empty && slot.cell == i * SIDE + j {
            return;
        }
        self.remove(node);
        self.insert(node, free, empty);
    }

    fn grid(&mut self, empty: bool) -> &mut Grid {
        if empty {
            &mut self.empty
        } else {
            &mut self.used
        }
    }

    fn insert(&mut self, node: NodeId, free: &Resources, empty: bool) {
        let (i, j) = cell(free);
        let grid = self.grid(empty);
        let nodes = &mut grid.cells[i * SIDE + j];
        nodes.push(node);
        let position = nodes.len() - 1;
        grid.rows[i] |= 1 << j;
        self.slots[node.0 as usize] = Slot {
            empty,
            cell: i * SIDE + j,
            position,
        };
    }

    fn remove(&mut self, node: NodeId) {
        let slot = self.slots[node.0 as usize];
        let grid = self.grid(slot.empty);
        let nodes = &mut grid.cells[slot.cell];
        nodes.swap_remove(slot.position);
        let moved = nodes.get(slot.position).copied();
        if nodes.is_empty() {
            grid.rows[slot.cell / SIDE] &= !(1 << (slot.cell % SIDE));
        }
        if let Some(moved) = moved {
            self.slots[moved.0 as usize].position = slot.position;
        }
    }

    /// True when `node` is filed under `free` and `empty` (for consistency checks in tests).
    #[cfg(test)]
    pub(crate) fn files(&self, node: NodeId, free: &Resources, empty: bool) -> bool {
        let slot = self.slots[node.0 as usize];
        let (i, j) = cell(free);
        let grid = if empty { &self.empty } else { &self.used };
        slot.empty == empty
            && slot.cell == i * SIDE + j
            && grid.cells[slot.cell].get(slot.position) == Some(&node)
    }

    /// Calls `visit` on every node that may fit `request`, in `order`, until it breaks; empty
    /// nodes come largest in `scarce` first. Nodes too small for the request are mostly skipped;
    /// the caller still checks the fit.
    pub fn candidates(
        &self,
        request: &Resources,
        order: Order,
        scarce: Resource,
        mut visit: impl FnMut(NodeId) -> ControlFlow<()>,
    ) {
        let need = cell(request);
        match order {
            Order::Tight => {
                if self.used.walk(need, true, &mut visit).is_continue() {
                    let _ = self.empty.walk_largest(need, scarce, &mut visit);
                }
            }
            Order::Loose => {
                if self
                    .empty
                    .walk_largest(need, scarce, &mut visit)
                    .is_continue()
                {
                    let _ = self.used.walk(need, false, &mut visit);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_monotonically_and_cap() {
        let mut previous = 0;
        for units in 0..100_000u64 {
            let b = bucket(units);
            assert!(b >= previous && b < SIDE, "bucket({units}) = {b}");
            previous = b;
        }
        assert_eq!(bucket(u64::MAX), SIDE - 1);
    }

    fn all(index: &FreeIndex, request: Resources, order: Order) -> Vec<u32> {
        let mut seen = Vec::new();
        index.candidates(&request, order, Resource::Cpu, |node| {
            seen.push(node.0);
            ControlFlow::Continue(())
        });
        seen
    }

    #[test]
    fn tight_order_visits_used_nodes_smallest_first_then_empty_largest_first() {
        let mut index = FreeIndex::default();
        let gib = 1 << 30;
        index.add(NodeId(0), &Resources::new(16_000, 64 * gib, 100), true);
        index.add(NodeId(1), &Resources::new(2_000, 4 * gib, 100), false);
        index.add(NodeId(2), &Resources::new(8_000, 32 * gib, 100), false);
        index.add(NodeId(3), &Resources::new(32_000, 128 * gib, 100), true);
        index.add(NodeId(4), &Resources::new(100, 100 << 20, 100), false);
        let request = Resources::new(1_000, gib, 1);
        assert_eq!(all(&index, request, Order::Tight), vec![1, 2, 3, 0]);
        assert_eq!(all(&index, request, Order::Loose), vec![3, 0, 2, 1]);
        index.update(NodeId(3), &Resources::new(500, gib, 100), false);
        assert_eq!(all(&index, request, Order::Tight), vec![1, 2, 0]);
    }

    #[test]
    fn empty_nodes_open_largest_in_the_scarce_resource_first() {
        let mut index = FreeIndex::default();
        let gib = 1 << 30;
        index.add(NodeId(0), &Resources::new(16_000, 128 * gib, 100), true);
        index.add(NodeId(1), &Resources::new(32_000, 64 * gib, 100), true);
        let request = Resources::new(1_000, gib, 1);
        let order = |scarce| {
            let mut seen = Vec::new();
            index.candidates(&request, Order::Tight, scarce, |node| {
                seen.push(node.0);
                ControlFlow::Continue(())
            });
            seen
        };
        assert_eq!(order(Resource::Cpu), vec![1, 0]);
        assert_eq!(order(Resource::Memory), vec![0, 1]);
    }
}
