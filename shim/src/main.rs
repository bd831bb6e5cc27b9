//! The `mini-shim` command line: `agent` and `monitor`; all work is done by the library.

fn main() {
    // A container init started by the mini-run library re-executes this binary: hand it over
    // before anything else runs (see mini_run::process::exe_guard).
    if let Some(fd) = std::env::var_os(mini_run::process::exe_guard::INIT_ENV) {
        let fd = fd.to_str().and_then(|s| s.parse().ok()).unwrap_or(-1);
        mini_run::process::init::main(fd);
    }
    eprintln!("mini-shim: no command given; see `mini-shim --help`");
    std::process::exit(2);
}
