//! One thing to fix in the repository: the file (and line) to edit and what to change. `check`
//! collects them from its rules and from the deploy's preflight, and prints them.

use std::fmt;

/// One thing to fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Relative to the workspace root: the file to edit.
    pub file: String,
    pub line: Option<usize>,
    /// What is wrong; what to change.
    pub message: String,
}

impl Problem {
    pub fn new(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// A problem of `file` at the first line containing `needle` (the whole file if none does).
    pub fn near(file: &str, text: &str, needle: &str, message: impl Into<String>) -> Self {
        Self::new(file, line_of(text, needle), message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    let at = text.find(needle)?;
    Some(line_at(text, at))
}

/// The 1-based line of byte offset `at` in `text`.
pub fn line_at(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}
