//! The host agent: serves the shim protocol, runs containers through monitors, reports usage.
