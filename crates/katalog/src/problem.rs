//! Problems found in a Katalog: where (file, path, template position) and what.

use std::{fmt, path::PathBuf};

/// How bad a problem is: errors make `katalog check` fail, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located by its path in the document (`spec.crds.data-job.operatorBox...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// The file the path is in (a motif file for problems inside an imported motif).
    pub file: PathBuf,
    /// Dotted path inside that file; empty for the whole document.
    pub path: String,
    /// Line and column inside the template, for template problems.
    pub position: Option<(usize, usize)>,
    /// For a motif: the import that brought it in.
    pub via: Option<String>,
    pub message: String,
}

impl Problem {
    /// An error at `path` in `file`.
    pub fn error(file: impl Into<PathBuf>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.into(),
            path: path.into(),
            position: None,
            via: None,
            message: message.into(),
        }
    }

    /// A warning at `path` in `file`.
    pub fn warning(file: impl Into<PathBuf>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, path, message)
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            f.write_str(&self.path)?;
            if let Some((line, column)) = self.position {
                write!(f, " (template line {line}, column {column})")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(via) = &self.via {
            write!(f, " (motif imported at {via})")?;
        }
        Ok(())
    }
}

/// Joins a path prefix and a child key the way problems print them.
pub fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.starts_with('[')) {
        (true, _) => key.to_owned(),
        (false, true) => format!("{prefix}{key}"),
        (false, false) => format!("{prefix}.{key}"),
    }
}
