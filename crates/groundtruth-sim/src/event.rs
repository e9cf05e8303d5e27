//! In-memory events of one simulated day and their JSON encoding.
//!
//! Events are compact structs pointing into the world tables (accounts,
//! devices, networks); they are sorted by time and then written by hand into
//! a reused buffer, one contract event per line.

use std::io::Write as _;

/// Milliseconds since the Unix epoch (UTC).
pub(crate) type Ms = i64;

pub(crate) const NONE: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    SessionStart,
    SessionEnd,
    CheckIn,
    PatrolStart,
    PatrolEnd,
    TrackPoint,
    TaskComplete,
    Interaction,
    Register,
    RecordCreate,
    RecordUpdate,
    RecordDelete,
    ReportSubmit,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::SessionStart => "session_start",
            Kind::SessionEnd => "session_end",
            Kind::CheckIn => "check_in",
            Kind::PatrolStart => "patrol_start",
            Kind::PatrolEnd => "patrol_end",
            Kind::TrackPoint => "track_point",
            Kind::TaskComplete => "task_complete",
            Kind::Interaction => "interaction",
            Kind::Register => "register",
            Kind::RecordCreate => "record_create",
            Kind::RecordUpdate => "record_update",
            Kind::RecordDelete => "record_delete",
            Kind::ReportSubmit => "report_submit",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Attrs {
    None,
    Duration(u32),
    CheckIn {
        point: u32,
    },
    Patrol {
        patrol: u32,
        route: u32,
    },
    Track {
        patrol: u32,
    },
    Task {
        task: u32,
        day: u32,
        duration: u32,
    },
    Interaction {
        action: &'static str,
        target: u32,
    },
    Register {
        referrer: u32,
        claimed_region: u32,
    },
    Record {
        registry: &'static str,
        key: u64,
        changed: Option<u32>,
    },
    Report {
        registry: &'static str,
        category: &'static str,
        /// The summary's (template, place, figure), when reports carry text.
        text: Option<(u8, u8, u16)>,
    },
}

/// One event before encoding.
#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub ts: Ms,
    pub seq: u64,
    pub kind: Kind,
    pub app: &'static str,
    pub module: &'static str,
    pub account: u32,
    pub region: u32,
    pub device: u32,
    pub net: u32,
    pub ip: u32,
    pub integrity: Option<&'static str>,
    pub pos: Option<(f64, f64)>,
    pub acc: f32,
    pub speed: f32,
    pub mock: bool,
    pub session: u64,
    pub attrs: Attrs,
}

impl Ev {
    pub(crate) fn new(
        ts: Ms,
        kind: Kind,
        app: &'static str,
        module: &'static str,
        account: u32,
    ) -> Ev {
        Ev {
            ts,
            seq: 0,
            kind,
            app,
            module,
            account,
            region: 0,
            device: NONE,
            net: NONE,
            ip: 0,
            integrity: None,
            pos: None,
            acc: f32::NAN,
            speed: f32::NAN,
            mock: false,
            session: 0,
            attrs: Attrs::None,
        }
    }
}

/// Writes a JSON string literal (escaping what needs escaping).
pub(crate) fn push_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.extend_from_slice(s.as_bytes());
    } else {
        for ch in s.chars() {
            match ch {
                '"' => buf.extend_from_slice(b"\\\""),
                '\\' => buf.extend_from_slice(b"\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(buf, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
    }
    buf.push(b'"');
}

pub(crate) fn push_key(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

pub(crate) fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_2(buf: &mut Vec<u8>, v: u32) {
    buf.push(b'0' + (v / 10) as u8);
    buf.push(b'0' + (v % 10) as u8);
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-02T08:29:00.000+08:00`
pub(crate) fn push_ts(buf: &mut Vec<u8>, ms: Ms) {
    let local = ms + 8 * 3_600_000;
    let days = local.div_euclid(86_400_000);
    let rem = local.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let secs = (rem / 1000) as u32;
    let milli = (rem % 1000) as u32;
    buf.push(b'"');
    push_u64(buf, y as u64);
    buf.push(b'-');
    push_2(buf, m);
    buf.push(b'-');
    push_2(buf, d);
    buf.push(b'T');
    push_2(buf, secs / 3600);
    buf.push(b':');
    push_2(buf, secs / 60 % 60);
    buf.push(b':');
    push_2(buf, secs % 60);
    buf.push(b'.');
    buf.push(b'0' + (milli / 100) as u8);
    push_2(buf, milli % 100);
    buf.extend_from_slice(b"+08:00\"");
}

pub(crate) fn push_ip(buf: &mut Vec<u8>, ip: u32) {
    buf.push(b'"');
    for (i, sh) in [24, 16, 8, 0].iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        push_u64(buf, ((ip >> sh) & 0xff) as u64);
    }
    buf.push(b'"');
}

/// Fixed-point decimal with `dec` decimals (value assumed finite).
pub(crate) fn push_fixed(buf: &mut Vec<u8>, v: f64, dec: u32) {
    let scale = 10u64.pow(dec);
    let neg = v < 0.0;
    let a = (v.abs() * scale as f64).round() as u64;
    if neg && a != 0 {
        buf.push(b'-');
    }
    push_u64(buf, a / scale);
    if dec > 0 {
        buf.push(b'.');
        let frac = a % scale;
        let mut tmp = [b'0'; 12];
        let mut f = frac;
        for i in (0..dec as usize).rev() {
            tmp[i] = b'0' + (f % 10) as u8;
            f /= 10;
        }
        buf.extend_from_slice(&tmp[..dec as usize]);
    }
}

/// Writes `sim-<seed>-<n>` style hex ids etc.
pub(crate) fn push_hex(buf: &mut Vec<u8>, v: u64, width: usize) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for i in (0..width).rev() {
        buf.push(H[((v >> (4 * i)) & 0xf) as usize]);
    }
}
