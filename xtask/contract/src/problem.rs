//! One thing to fix in the repository: the file (and line) to edit and what to change. `check`
//! collects them from its rules and from the deploy's preflight, and prints them. [`Stated`] is a
//! value read from a file together with its place, so a rule that finds it wrong can point there.

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

/// A value as one file states it, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stated<T> {
    pub value: T,
    pub file: String,
    pub line: Option<usize>,
}

impl<T> Stated<T> {
    pub fn new(value: T, file: &str, line: Option<usize>) -> Self {
        Self {
            value,
            file: file.to_owned(),
            line,
        }
    }

    /// A problem at this value's place.
    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem::new(&self.file, self.line, message)
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

/// A rule's test case: the edits `(file, from, to)` that break a clean fixture, and a part of each
/// problem they must give (no more problems than that).
#[cfg(test)]
pub type Case<'a> = (&'a [(&'a str, &'a str, &'a str)], &'a [&'a str]);

/// Runs every case through `found` (the problems of the fixture after the edits, as text) and
/// fails with each case that found other problems than it expects.
#[cfg(test)]
pub fn assert_cases(cases: &[Case<'_>], found: impl Fn(&[(&str, &str, &str)]) -> Vec<String>) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(edits, expected)| {
            let found = found(edits);
            let each = expected
                .iter()
                .all(|part| found.iter().any(|p| p.contains(part)));
            (!each || found.len() != expected.len()).then(|| format!("{edits:?}: {found:#?}"))
        })
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
