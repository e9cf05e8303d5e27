//! The detection worker: a thread that runs the windows handed to it in
//! order, stores and publishes their findings and reports each back, while
//! the consuming loop keeps reading and flushing.

use groundtruth_error::Classified;
use groundtruth_telemetry::InternalEvent;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use groundtruth_detect::{run_close, CloseCache, CloseRun, DetectError};
use groundtruth_finding::Finding;
use groundtruth_kafka::TopicProducer;
use groundtruth_window::Close;

use crate::error::LiveError;
use crate::options::LiveOptions;
use crate::telemetry::WindowClosed;

/// A window handed to the worker.
struct Job {
    close: Close,
    /// A re-scan of a closed window (late events), not its first close.
    rescan: bool,
    /// When the watermark passed the window's horizon.
    passed_at: Instant,
}

/// What the worker reports back for a window.
pub(crate) struct Done {
    pub close: Close,
    pub rescan: bool,
    pub latency_s: f64,
    /// Seconds the window's detection took (without waiting in the queue).
    pub detect_s: f64,
    pub stored: u64,
    pub published: u64,
    pub findings_total: u64,
}

/// The worker thread, its job queue and its reports.
pub(crate) struct Worker {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Result<Done, LiveError>>,
    thread: std::thread::JoinHandle<()>,
    /// Windows handed over and not yet reported back.
    out: usize,
}

impl Worker {
    /// Starts the worker. It holds the lake's read gate while it queries, so
    /// this process's compactions wait for it.
    pub fn spawn(
        opts: &LiveOptions,
        gate: groundtruth_lake::ReadGate,
        mut publisher: Option<TopicProducer>,
    ) -> Result<Worker, LiveError> {
        let rt = opts.runtime.clone();
        let store = opts.store.clone();
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel();
        let (lake, schedule, zone) = (opts.lake_dir.clone(), opts.schedule.clone(), opts.zone);
        let (memory_rows, cache_on) = (opts.window_memory_rows, opts.close_cache);
        let calibration = opts.calibration.clone();
        let thread = std::thread::Builder::new()
            .name("gt-detect".into())
            .spawn(move || {
                let cache = CloseCache::new(memory_rows, cache_on);
                for job in job_rx {
                    let result = (|| {
                        let run = {
                            let _reading = gate.read().unwrap_or_else(|p| p.into_inner());
                            // The gate holds this process's compactions off;
                            // another member's (scale-out) may remove a file
                            // the window listed: judge it again.
                            rt.block_on(groundtruth_sql::retry_vanished(
                                || {
                                    run_close(
                                        &lake,
                                        &schedule,
                                        &job.close,
                                        zone,
                                        &calibration,
                                        &cache,
                                    )
                                },
                                |e: &DetectError| e.is_retryable(),
                            ))?
                        };
                        let latency_s = job.passed_at.elapsed().as_secs_f64();
                        let (stored, published) = deliver(
                            &run,
                            &schedule.groups[job.close.group].name,
                            job.rescan,
                            (!job.rescan).then_some(latency_s),
                            &rt,
                            &store,
                            publisher.as_mut(),
                        )?;
                        let findings_total = rt.block_on(store.finding_count())?;
                        Ok(Done {
                            close: job.close,
                            rescan: job.rescan,
                            latency_s,
                            detect_s: run.seconds,
                            stored,
                            published,
                            findings_total,
                        })
                    })();
                    let failed = result.is_err();
                    if done_tx.send(result).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(LiveError::Runtime)?;
        Ok(Worker {
            jobs: job_tx,
            done: done_rx,
            thread,
            out: 0,
        })
    }

    /// Windows handed over and not yet reported back.
    pub fn outstanding(&self) -> usize {
        self.out
    }

    /// Hands a window over (`rescan`: again, for late events).
    pub fn send(
        &mut self,
        close: Close,
        rescan: bool,
        passed_at: Instant,
    ) -> Result<(), LiveError> {
        self.jobs
            .send(Job {
                close,
                rescan,
                passed_at,
            })
            .map_err(|_| {
                LiveError::Runtime(std::io::Error::other("the detection worker stopped"))
            })?;
        self.out += 1;
        Ok(())
    }

    /// A window the worker finished, if any; its error if detection or
    /// storing failed (the worker stops then).
    pub fn finished(&mut self) -> Result<Option<Done>, LiveError> {
        match self.done.try_recv() {
            Ok(d) => {
                self.out -= 1;
                d.map(Some)
            }
            Err(mpsc::TryRecvError::Empty) => Ok(None),
            Err(mpsc::TryRecvError::Disconnected) if self.out > 0 => Err(LiveError::Runtime(
                std::io::Error::other("the detection worker stopped unexpectedly"),
            )),
            Err(mpsc::TryRecvError::Disconnected) => Ok(None),
        }
    }

    /// Closes the queue and waits for the thread (it finishes the windows
    /// already queued; what they find is stored, their checkpoint entry is
    /// not, so a restart judges them again and upserts the same findings).
    pub fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

/// Stores a window's findings, publishes the new or changed ones (acked
/// before the window counts as done), logs them. Returns (stored,
/// published).
#[allow(clippy::too_many_arguments)]
fn deliver(
    run: &CloseRun,
    group: &str,
    rescan: bool,
    latency_s: Option<f64>,
    rt: &tokio::runtime::Handle,
    store: &groundtruth_store::ReviewStore,
    publisher: Option<&mut TopicProducer>,
) -> Result<(u64, u64), LiveError> {
    let outcome = rt.block_on(store.upsert_findings(run.close.span.end_us, &run.findings))?;
    let stored: Vec<&Finding> = outcome.stored.iter().map(|&i| &run.findings[i]).collect();
    let mut published = 0;
    if let Some(p) = publisher {
        for f in &stored {
            match p.send_finding(f) {
                Ok(()) => published += 1,
                Err(e) => {
                    tracing::error!(finding_id = %f.finding_id, error = %e, "cannot encode a finding for Kafka; it is in the store")
                }
            }
        }
        while let Err(e) = p.flush(Duration::from_secs(30)) {
            tracing::warn!(error = %e, "findings not yet acknowledged by Kafka; retrying");
        }
    }
    for f in &stored {
        tracing::info!(
            finding_id = %f.finding_id,
            detector = %f.detector,
            accounts = f.accounts.len(),
            score = f.score,
            reason = %f.reason,
            "finding"
        );
    }
    let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &stored {
        *by.entry(f.detector.as_str()).or_default() += 1;
    }
    WindowClosed {
        group,
        rescan,
        window_start_us: run.close.span.start_us,
        findings: run.findings.len(),
        stored: stored.len(),
        by_detector: by.into_iter().collect(),
        seconds: run.seconds,
        latency_s,
    }
    .emit();
    Ok((stored.len() as u64, published))
}
