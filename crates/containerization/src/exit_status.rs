//! How a process ended (seed section 2.2).

use chrono::{DateTime, Utc};

/// Exit code and time of a finished process. Death by signal N is 128 + N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code.
    pub exit_code: i32,
    /// When the process exited.
    pub exited_at: DateTime<Utc>,
}

impl ExitStatus {
    /// An exit status stamped now.
    pub fn new(exit_code: i32) -> Self {
        ExitStatus {
            exit_code,
            exited_at: Utc::now(),
        }
    }

    /// An exit status with an explicit time.
    pub fn with_time(exit_code: i32, exited_at: DateTime<Utc>) -> Self {
        ExitStatus {
            exit_code,
            exited_at,
        }
    }
}
