//! `groundtruth-live`: the long-running service (`groundtruth run`).
//!
//! Kafka `app-events` → [`Ingestor`](groundtruth_ingest::Ingestor) → the
//! lake; a per-partition event-time watermark ([`clock`]); when it passes a
//! window's horizon the window goes to a detection worker thread, which
//! runs its detectors over the lake ([`groundtruth_detect::run_close`])
//! and sends the findings to the review store ([`groundtruth_store`]), the `findings` topic
//! and the log, while the consuming loop keeps reading.
//!
//! Guarantees, and why they hold:
//! * **No event lost**: offsets are committed only after the lake flush
//!   that holds their events; a restart re-reads the rest and the lake
//!   drops the `event_id`s it has.
//! * **Exact findings across crashes**: a window is handed to the worker
//!   only right after a flush, reads only events older than its horizon, and
//!   is marked done in the [`checkpoint`] only after its findings are
//!   committed to the review store and acknowledged by Kafka. A crash before that re-runs the window over the
//!   same lake and stores the same findings again, which the store upserts
//!   by `finding_id`.
//! * **Batch equals stream**: `groundtruth detect` runs the same windows
//!   over a file; everything a window reads is fixed once the watermark has
//!   passed its horizon, so any arrival order within the allowed lateness
//!   gives the same findings.
//! * **Late events** (behind the watermark) are in the lake and counted;
//!   the closed windows whose context holds them are re-scanned after the
//!   next regular close (daily windows: daily) and when a bounded run
//!   drains.
//! * **Scale-out**: instances in one consumer group share the lake (each
//!   a `lake.member`) and the review store; each ingests its partitions,
//!   and the owner of partition 0 judges every window over the whole lake
//!   ([`handover`]). A rebalance drops what was read and not flushed: the
//!   eager protocol restarts every partition at its committed offset.

pub mod checkpoint;
pub mod clock;
mod error;
pub mod handover;
mod options;
mod service;
mod state;
mod telemetry;
mod worker;
mod writes;

pub use checkpoint::Checkpoint;
pub use clock::PartitionClock;
pub use error::LiveError;
pub use options::{LiveOptions, LiveStats};
pub use service::run_live;
