//! Internal telemetry events of the live service: each writes its log
//! line and its metrics together (see STYLE.md).

use groundtruth_telemetry::{metric, InternalEvent};

/// A window was judged and its findings stored.
pub(crate) struct WindowClosed<'a> {
    pub group: &'a str,
    pub rescan: bool,
    pub window_start_us: i64,
    pub findings: usize,
    pub stored: usize,
    pub by_detector: Vec<(&'a str, usize)>,
    pub seconds: f64,
    /// Wall seconds from the watermark passing the window's horizon to its
    /// findings being stored.
    pub latency_s: Option<f64>,
}

impl InternalEvent for WindowClosed<'_> {
    fn emit(self) {
        tracing::info!(
            group = self.group,
            rescan = self.rescan,
            window_start = %groundtruth_finding::rfc3339_ms(self.window_start_us / 1000),
            findings = self.findings,
            new_or_updated = self.stored,
            ms = (self.seconds * 1000.0) as u64,
            latency_ms = self.latency_s.map(|s| (s * 1000.0) as u64),
            "window closed"
        );
        let kind = if self.rescan { "rescan" } else { "close" };
        metrics::counter!(metric::WINDOWS_CLOSED.name, "group" => self.group.to_string(), "kind" => kind)
            .increment(1);
        metrics::histogram!(metric::WINDOW_DETECT.name, "group" => self.group.to_string())
            .record(self.seconds);
        for (d, n) in &self.by_detector {
            metrics::counter!(metric::FINDINGS.name, "detector" => d.to_string())
                .increment(*n as u64);
        }
        if let Some(l) = self.latency_s {
            metrics::histogram!(metric::DETECTION_LATENCY.name).record(l);
        }
    }
}

/// An accepted event fell in a window that had already closed.
pub(crate) struct LateForClosedWindow {
    pub windows: usize,
}

impl InternalEvent for LateForClosedWindow {
    fn emit(self) {
        tracing::debug!(
            windows = self.windows,
            "late event: windows queued for re-scan"
        );
        metrics::counter!(metric::LATE_FOR_CLOSED_WINDOWS.name).increment(1);
    }
}

/// Event time and state, after each flush.
pub(crate) struct StreamState {
    pub watermark_us: Option<i64>,
    pub checkpoint_bytes: usize,
    pub rescan_pending: usize,
    pub partitions: usize,
    /// Partitions read to their end.
    pub caught_up: usize,
}

impl InternalEvent for StreamState {
    fn emit(self) {
        if let Some(w) = self.watermark_us {
            metrics::gauge!(metric::LIVE_WATERMARK.name).set(w as f64 / 1e6);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            metrics::gauge!(metric::LIVE_WATERMARK_DELAY.name).set(now - w as f64 / 1e6);
        }
        metrics::gauge!(metric::LIVE_STATE.name).set(self.checkpoint_bytes as f64);
        metrics::gauge!(metric::LIVE_RESCAN_PENDING.name).set(self.rescan_pending as f64);
        metrics::gauge!(metric::LIVE_PARTITIONS.name).set(self.partitions as f64);
        metrics::gauge!(metric::LIVE_PARTITIONS_CAUGHT_UP.name).set(self.caught_up as f64);
    }
}
