//! Autoscaling's decisions, apart from the daemon so they can be tested without hosts: the
//! replica rule ([`rule`]), the windows, step limits and bounds ([`stabilize`]), what is
//! shown of them ([`status`]), and the vertical recommendations ([`rightsize`], from
//! [`histogram`]).
//! The controller that feeds them the heartbeats' measurements and applies their answer is
//! [`crate::controller::autoscale`].

pub mod histogram;
pub mod rightsize;
pub mod rule;
pub mod stabilize;
pub mod status;

#[cfg(test)]
mod tests;

pub use rightsize::{Rightsizing, UsageHistograms};
pub use rule::{propose, Measurement, Proposal, Tolerance};
pub use stabilize::{History, Outcome};
pub use status::{AutoscaleStatus, Decision};
