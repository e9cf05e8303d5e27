//! Closed vocabularies of the contract.

/// `kind` of an event (contract §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
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

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::SessionStart,
        EventKind::SessionEnd,
        EventKind::CheckIn,
        EventKind::PatrolStart,
        EventKind::PatrolEnd,
        EventKind::TrackPoint,
        EventKind::TaskComplete,
        EventKind::Interaction,
        EventKind::Register,
        EventKind::RecordCreate,
        EventKind::RecordUpdate,
        EventKind::RecordDelete,
        EventKind::ReportSubmit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SessionStart => "session_start",
            EventKind::SessionEnd => "session_end",
            EventKind::CheckIn => "check_in",
            EventKind::PatrolStart => "patrol_start",
            EventKind::PatrolEnd => "patrol_end",
            EventKind::TrackPoint => "track_point",
            EventKind::TaskComplete => "task_complete",
            EventKind::Interaction => "interaction",
            EventKind::Register => "register",
            EventKind::RecordCreate => "record_create",
            EventKind::RecordUpdate => "record_update",
            EventKind::RecordDelete => "record_delete",
            EventKind::ReportSubmit => "report_submit",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Kinds whose `attrs.patrol_id` is required.
    pub fn needs_patrol_id(self) -> bool {
        matches!(
            self,
            EventKind::PatrolStart | EventKind::PatrolEnd | EventKind::TrackPoint
        )
    }
}

/// Platform attestation verdict (`integrity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Integrity {
    Strong,
    Device,
    Basic,
    Virtual,
    None,
}

impl Integrity {
    pub const ALL: [Integrity; 5] = [
        Integrity::Strong,
        Integrity::Device,
        Integrity::Basic,
        Integrity::Virtual,
        Integrity::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Integrity::Strong => "strong",
            Integrity::Device => "device",
            Integrity::Basic => "basic",
            Integrity::Virtual => "virtual",
            Integrity::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Integrity> {
        Integrity::ALL.into_iter().find(|k| k.as_str() == s)
    }
}
