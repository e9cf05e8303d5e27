//! What both `phone_farm` signatures read (the serial chains of
//! [`crate::farm`] and the simultaneous racks of [`crate::coactive`]): the
//! rows of `session_chain` and `device_profile`, the detector's name and
//! the fewest phones that make a farm.

/// Detector name (contract).
pub const DETECTOR: &str = "phone_farm";

/// Fewest accounts in a chain. Families share one phone among two or three
/// accounts and a couple may hand phones back and forth; reported farms run
/// 8 to 60+ phones.
pub const MIN_PHONES: usize = 5;

/// One session from `session_chain`, in network order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSession {
    pub app_id: String,
    pub account_id: String,
    pub session_id: String,
    pub device_id: Option<String>,
    pub net_key: String,
    pub region: Option<String>,
    pub start_us: i64,
    pub end_us: i64,
    /// Seconds since all earlier sessions on the network ended (negative =
    /// overlap; `None` = the network's first).
    pub gap_s: Option<f64>,
    /// Local day of the start, days since 1970-01-01.
    pub event_date: i32,
}

/// One row of `device_profile`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    pub device_id: String,
    pub accounts: u32,
    pub networks: u32,
    pub days: u32,
    pub spread_m: Option<f64>,
}
