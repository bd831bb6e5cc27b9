//! OCI images for mini-shim: import, verify, unpack once per layer, overlay per container (in progress).
