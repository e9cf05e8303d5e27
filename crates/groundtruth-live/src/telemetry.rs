//! Internal telemetry events of the live service: each writes its log
//! line and its metrics together (see STYLE.md).

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

impl WindowClosed<'_> {
    pub(crate) fn emit(&self) {
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
        metrics::counter!("groundtruth_windows_closed_total", "group" => self.group.to_string(), "kind" => kind)
            .increment(1);
        metrics::histogram!("groundtruth_window_detect_seconds", "group" => self.group.to_string())
            .record(self.seconds);
        for (d, n) in &self.by_detector {
            metrics::counter!("groundtruth_findings_total", "detector" => d.to_string())
                .increment(*n as u64);
        }
        if let Some(l) = self.latency_s {
            metrics::histogram!("groundtruth_detection_latency_seconds").record(l);
        }
    }
}

/// An accepted event fell in a window that had already closed.
pub(crate) struct LateForClosedWindow {
    pub windows: usize,
}

impl LateForClosedWindow {
    pub(crate) fn emit(&self) {
        tracing::debug!(
            windows = self.windows,
            "late event: windows queued for re-scan"
        );
        metrics::counter!("groundtruth_late_for_closed_windows_total").increment(1);
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

impl StreamState {
    pub(crate) fn emit(&self) {
        if let Some(w) = self.watermark_us {
            metrics::gauge!("groundtruth_live_watermark_seconds").set(w as f64 / 1e6);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            metrics::gauge!("groundtruth_live_watermark_delay_seconds").set(now - w as f64 / 1e6);
        }
        metrics::gauge!("groundtruth_live_state_bytes").set(self.checkpoint_bytes as f64);
        metrics::gauge!("groundtruth_live_rescan_pending").set(self.rescan_pending as f64);
        metrics::gauge!("groundtruth_live_partitions").set(self.partitions as f64);
        metrics::gauge!("groundtruth_live_partitions_caught_up").set(self.caught_up as f64);
    }
}
