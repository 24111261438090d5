//! `ContainerizationError`: every public error of the container system
//! carries one of the seed's eleven codes, a message a person can read and an
//! optional cause.

use std::error::Error as StdError;
use std::fmt;

/// The kind of failure; the seed's `ContainerizationError.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    Unknown,
    InvalidArgument,
    InternalError,
    Exists,
    NotFound,
    Cancelled,
    InvalidState,
    Empty,
    Timeout,
    Unsupported,
    Interrupted,
}

impl Code {
    /// Every code, in the seed's order.
    pub const ALL: [Code; 11] = [
        Code::Unknown,
        Code::InvalidArgument,
        Code::InternalError,
        Code::Exists,
        Code::NotFound,
        Code::Cancelled,
        Code::InvalidState,
        Code::Empty,
        Code::Timeout,
        Code::Unsupported,
        Code::Interrupted,
    ];

    /// The seed's raw value (`invalidArgument`, `notFound`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalidArgument",
            Code::InternalError => "internalError",
            Code::Exists => "exists",
            Code::NotFound => "notFound",
            Code::Cancelled => "cancelled",
            Code::InvalidState => "invalidState",
            Code::Empty => "empty",
            Code::Timeout => "timeout",
            Code::Unsupported => "unsupported",
            Code::Interrupted => "interrupted",
        }
    }

    /// Parses a raw code; unrecognised text maps to `Unknown` as in the seed.
    pub fn from_raw(raw: &str) -> Code {
        Code::ALL
            .into_iter()
            .find(|c| c.as_str() == raw)
            .unwrap_or(Code::Unknown)
    }

    /// The process exit code the CLI uses for this kind of failure.
    pub fn exit_code(self) -> i32 {
        match self {
            Code::Unknown | Code::InternalError => 1,
            Code::InvalidArgument => 2,
            Code::NotFound => 3,
            Code::Exists => 4,
            Code::InvalidState => 5,
            Code::Timeout => 6,
            Code::Unsupported => 7,
            Code::Cancelled | Code::Interrupted => 130,
            Code::Empty => 8,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of the whole system.
pub struct ContainerizationError {
    pub code: Code,
    pub message: String,
    pub cause: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

/// Shorthand used across the workspace.
pub type Result<T, E = ContainerizationError> = std::result::Result<T, E>;

impl ContainerizationError {
    /// An error with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            cause: None,
        }
    }

    /// An error from a raw code string (`"notFound"`), as the seed's second initializer.
    pub fn from_raw(raw: &str, message: impl Into<String>) -> Self {
        Self::new(Code::from_raw(raw), message)
    }

    /// Attaches the underlying cause.
    pub fn with_cause(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// True when the error has `code`.
    pub fn is_code(&self, code: Code) -> bool {
        self.code == code
    }

    /// The message followed by each cause in the chain, for a one-line report.
    pub fn report(&self) -> String {
        let mut out = self.message.clone();
        let mut next: Option<&(dyn StdError + 'static)> = self.source();
        while let Some(e) = next {
            let text = e.to_string();
            if !text.is_empty() && !out.contains(&text) {
                out.push_str(": ");
                out.push_str(&text);
            }
            next = e.source();
        }
        out
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }
    pub fn exists(message: impl Into<String>) -> Self {
        Self::new(Code::Exists, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::InternalError, message)
    }
    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidState, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(Code::Unsupported, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(Code::Timeout, message)
    }
}

impl fmt::Display for ContainerizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report())
    }
}

impl fmt::Debug for ContainerizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerizationError({}: {})", self.code, self.report())
    }
}

impl StdError for ContainerizationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

impl From<std::io::Error> for ContainerizationError {
    fn from(e: std::io::Error) -> Self {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => Code::NotFound,
            std::io::ErrorKind::AlreadyExists => Code::Exists,
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
                Code::InvalidArgument
            }
            std::io::ErrorKind::TimedOut => Code::Timeout,
            std::io::ErrorKind::Interrupted => Code::Interrupted,
            std::io::ErrorKind::Unsupported => Code::Unsupported,
            _ => Code::InternalError,
        };
        let message = e.to_string();
        Self::new(code, message).with_cause(e)
    }
}

/// Adds context to foreign errors: `io_result.context(Code::NotFound, "reading x")?`.
pub trait ResultExt<T> {
    fn context(self, code: Code, message: impl Into<String>) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, code: Code, message: impl Into<String>) -> Result<T> {
        self.map_err(|e| ContainerizationError::new(code, message).with_cause(e))
    }
}

#[cfg(feature = "grpc")]
mod grpc {
    use super::{Code, ContainerizationError};

    const CODE_KEY: &str = "containerization-code";

    impl From<ContainerizationError> for tonic::Status {
        fn from(e: ContainerizationError) -> Self {
            let grpc = match e.code {
                Code::InvalidArgument => tonic::Code::InvalidArgument,
                Code::NotFound => tonic::Code::NotFound,
                Code::Exists => tonic::Code::AlreadyExists,
                Code::InvalidState => tonic::Code::FailedPrecondition,
                Code::Timeout => tonic::Code::DeadlineExceeded,
                Code::Unsupported => tonic::Code::Unimplemented,
                Code::Cancelled | Code::Interrupted => tonic::Code::Cancelled,
                Code::Empty => tonic::Code::OutOfRange,
                Code::InternalError => tonic::Code::Internal,
                Code::Unknown => tonic::Code::Unknown,
            };
            let mut status = tonic::Status::new(grpc, e.report());
            if let Ok(v) = e.code.as_str().parse() {
                status.metadata_mut().insert(CODE_KEY, v);
            }
            status
        }
    }

    impl From<tonic::Status> for ContainerizationError {
        fn from(s: tonic::Status) -> Self {
            let code = match s.metadata().get(CODE_KEY).and_then(|v| v.to_str().ok()) {
                Some(raw) => Code::from_raw(raw),
                None => match s.code() {
                    tonic::Code::InvalidArgument => Code::InvalidArgument,
                    tonic::Code::NotFound => Code::NotFound,
                    tonic::Code::AlreadyExists => Code::Exists,
                    tonic::Code::FailedPrecondition => Code::InvalidState,
                    tonic::Code::DeadlineExceeded => Code::Timeout,
                    tonic::Code::Unimplemented => Code::Unsupported,
                    tonic::Code::Cancelled => Code::Cancelled,
                    tonic::Code::Unavailable => Code::Interrupted,
                    tonic::Code::Internal => Code::InternalError,
                    _ => Code::Unknown,
                },
            };
            ContainerizationError::new(code, s.message().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_codes_round_trip() {
        for c in Code::ALL {
            assert_eq!(Code::from_raw(c.as_str()), c);
        }
        assert_eq!(Code::from_raw("bogus"), Code::Unknown);
    }

    #[test]
    fn display_reads_as_one_line_with_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = ContainerizationError::not_found("image busybox:latest not found").with_cause(io);
        assert!(e.is_code(Code::NotFound));
        assert_eq!(
            e.to_string(),
            "image busybox:latest not found: no such file"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn io_errors_map_to_codes() {
        let e: ContainerizationError =
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "x").into();
        assert!(e.is_code(Code::Exists));
    }
}
