//! Images from registries: the agent pulls `[registry[:port]/]name[:tag][@digest]` through
//! the OCI distribution API (`oci-client`) into its image store (mini-image).
//!
//! - [`reference`]: parsing with Docker's defaults (`docker.io`, `library/`, `latest`).
//! - [`credentials`]: a docker-style `config.json` (`auths`) given to the agent
//!   (`--registry-auth`), read at each pull and never logged.
//! - [`pull`]: manifests (Docker v2 and OCI, indexes resolved to this node's platform), every
//!   blob verified against its digest and size before the store sees it, written to a
//!   temporary file and renamed into the blob cache only once verified, one download per blob
//!   however many pulls want it at once, bodies bounded by their descriptors.

pub mod credentials;
pub mod pull;
pub mod reference;

pub use pull::{PullError, Puller, RegistryOptions};
