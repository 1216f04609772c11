//! The JSON report.

use std::path::Path;

use super::Report;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The report could not be serialized.
    #[error("serializing the report: {0}")]
    Json(#[from] serde_json::Error),
}

/// The report as pretty JSON.
pub fn to_string(report: &Report) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}

/// Reads a report back.
pub fn from_str(text: &str) -> Result<Report, serde_json::Error> {
    serde_json::from_str(text)
}

/// Writes `text` to `path`.
pub fn write_file(path: &Path, text: &str) -> Result<(), WriteError> {
    std::fs::write(path, text).map_err(|source| WriteError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Writes the JSON report to `path`.
pub fn write(report: &Report, path: &Path) -> Result<(), WriteError> {
    write_file(path, &to_string(report)?)
}
