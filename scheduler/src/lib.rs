//! mini-sched: places workload instances onto cluster nodes.
//!
//! The [`cluster::Cluster`] holds nodes and placed instances with incremental indexes; a
//! [`placement::Scheduler`] built for a [`model::Policy`] runs the filter and score plugins, orders
//! batches by priority and preempts lower priorities when nothing fits; [`simulation`] generates
//! the seeded clusters and workloads the placement benchmark runs.

pub mod agents;
pub mod api;
pub mod autoscale;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod daemon;
pub mod join;
pub mod labels;
pub mod model;
pub mod network;
pub mod placement;
pub mod renewal;
pub mod resources;
pub mod server;
pub mod service;
pub mod settings_file;
pub mod simulation;
pub mod socket;
pub mod spec;
pub mod state;
pub mod store;
pub mod symbols;
pub mod topology;

pub use cluster::{BindError, Cluster, InstanceId, NodeId};
pub use model::{
    InstanceSpec, NodeSpec, Policy, Spread, Taint, TaintEffect, Toleration, Topology, WorkloadTerm,
};
pub use placement::{Outcome, Scheduler};
pub use resources::Resources;
