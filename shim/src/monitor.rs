//! The per-container monitor: a detached process that creates and starts one container, owns its
//! stdio and logs, records its exit durably and answers a unix socket.
