//! One module per subcommand (`review.rs` holds the review store's:
//! `serve`, `findings`, `token` and `calibrate`); `kafka.rs` what several
//! share.

pub(crate) mod demo;
pub(crate) mod detect;
pub(crate) mod eval;
pub(crate) mod ingest;
pub(crate) mod kafka;
pub(crate) mod review;
pub(crate) mod run;
pub(crate) mod simulate;
pub(crate) mod sql;
