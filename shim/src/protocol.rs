//! The shim protocol's types, shared by the agent and its clients (the scheduler, the CLI).
