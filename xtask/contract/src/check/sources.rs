//! The files `check` reads, read once into memory, so every rule is a pure function of text.

use std::collections::BTreeMap;
use std::path::Path;

use super::Problem;

/// Folders read whole (recursively), relative to the root.
const FOLDERS: [&str; 3] = ["compose", "observability", "fly"];

/// Single files read.
const FILES: [&str; 1] = ["Dockerfile"];

/// File contents by path relative to the workspace root (`/`-separated).
#[derive(Debug, Default)]
pub struct Sources {
    files: BTreeMap<String, String>,
}

impl Sources {
    /// Reads [`FOLDERS`] and [`FILES`] under `root`; unreadable files become problems.
    pub fn read(root: &Path) -> (Self, Vec<Problem>) {
        let mut sources = Sources::default();
        let mut problems = Vec::new();
        let mut paths: Vec<String> = FILES.iter().map(|file| file.to_string()).collect();
        for folder in FOLDERS {
            list(root, folder, &mut paths);
        }
        for path in paths {
            match std::fs::read_to_string(root.join(&path)) {
                Ok(text) => {
                    sources.files.insert(path, text);
                }
                // Binary files under these folders are not ours to check.
                Err(err) if err.kind() == std::io::ErrorKind::InvalidData => {}
                Err(err) => problems.push(Problem::new(
                    &path,
                    None,
                    format!("cannot read it ({err}); restore it from git"),
                )),
            }
        }
        (sources, problems)
    }

    /// Sources made of `(path, text)` pairs: the rules' tests use small inline fixtures.
    #[cfg(test)]
    pub fn from_files(files: &[(&str, &str)]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(path, text)| (path.to_string(), text.to_string()))
                .collect(),
        }
    }

    /// What `check` finds in each of `edits` of the fixture `files` (`from` replaced by `to` in
    /// `file`), after asserting that it finds nothing in `files` themselves: the rules' tests
    /// break a clean fixture one way at a time.
    #[cfg(test)]
    pub fn found_after_edits(
        files: &[(&str, &str)],
        edits: &[(&str, &str, &str)],
        check: impl Fn(&Sources, &mut Vec<Problem>),
    ) -> Vec<String> {
        let found = |sources: &Sources| {
            let mut found = Vec::new();
            check(sources, &mut found);
            found.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let clean = found(&Self::from_files(files));
        assert_eq!(clean, Vec::<String>::new(), "the fixture itself is clean");
        let edited = |(file, from, to): &(&str, &str, &str)| {
            let mut sources = Self::from_files(files);
            let text = sources.files[*file].replace(from, to);
            assert_ne!(text, sources.files[*file], "{from:?} is not in {file}");
            sources.files.insert(file.to_string(), text);
            found(&sources)
        };
        edits.iter().flat_map(edited).collect()
    }

    pub fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    /// The files directly in `folder` (not below) whose name ends with one of `suffixes`.
    pub fn in_folder<'a>(
        &'a self,
        folder: &'a str,
        suffixes: &'a [&'a str],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.files
            .iter()
            .filter(move |(path, _)| {
                path.strip_prefix(folder)
                    .and_then(|rest| rest.strip_prefix('/'))
                    .is_some_and(|name| {
                        !name.contains('/') && suffixes.iter().any(|suffix| name.ends_with(suffix))
                    })
            })
            .map(|(path, text)| (path.as_str(), text.as_str()))
    }

    /// Whether `path` is a file read here or a folder holding one.
    pub fn exists(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        self.files.contains_key(path)
            || self.files.keys().any(|file| {
                file.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// Appends every file below `root/folder` to `paths` (build output and hidden folders skipped).
fn list(root: &Path, folder: &str, paths: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        let path = format!("{folder}/{name}");
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => list(root, &path, paths),
            Ok(_) => paths.push(path),
            Err(_) => {}
        }
    }
}
