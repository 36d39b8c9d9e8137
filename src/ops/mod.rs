//! One module per command; each has an `exec`.

pub mod build;
pub mod compare;
pub mod nextest;
pub mod plan;
pub mod run;
pub mod test;
pub mod watch;
