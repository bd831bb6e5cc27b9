//! Node and container usage for mini-shim: procfs, cgroups, Prometheus text (in progress).
