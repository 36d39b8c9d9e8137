//! End-to-end tests: real throwaway projects built with `cargo dyndev`.
//! One test binary (one link), one shared target dir (each dependency
//! compiles once for the whole suite).

mod basic;
mod build_dir;
mod compare;
mod config;
mod differential;
mod edit;
mod errors;
mod exact;
mod faults;
mod help;
mod host_code;
mod hot;
mod identity;
mod linkers;
mod output;
mod relink;
mod reload;
mod support;
mod test_cmd;
mod watch;
mod workspace;
