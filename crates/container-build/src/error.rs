//! Error helpers: every parse error names its Dockerfile line.

use containerization_error::ContainerizationError;

/// `Dockerfile:<line>: <msg>` as an InvalidArgument error.
pub fn line_error(line: usize, msg: impl std::fmt::Display) -> ContainerizationError {
    ContainerizationError::invalid_argument(format!("Dockerfile:{line}: {msg}"))
}
