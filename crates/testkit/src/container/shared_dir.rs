//! A temporary host folder to bind-mount into a container ([`super::ContainerSpec::mount_ro`])
//! while the host keeps changing it: a configuration that is rewritten and reloaded while the
//! container runs.
//!
//! The process in the container often runs as another user (Prometheus as `nobody`), so
//! folders are made 0755 and files 0644 whatever the umask; and every file is replaced in one
//! rename, so a reload never reads half of one.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// A folder removed when dropped, unless [`SharedDir::keep`] is called.
pub struct SharedDir(tempfile::TempDir);

impl SharedDir {
    /// A new empty folder in the system's temporary folder, named `{prefix}…`.
    pub fn new(prefix: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("create a temporary folder to share with a container")?;
        set_mode(dir.path(), 0o755)?;
        Ok(Self(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `contents` to `relative` in one rename, creating its folders.
    pub fn write(&self, relative: impl AsRef<Path>, contents: &[u8]) -> anyhow::Result<()> {
        let path = self.path().join(relative);
        let parent = path.parent().unwrap_or(self.path());
        let missing: Vec<&Path> = parent.ancestors().take_while(|dir| !dir.is_dir()).collect();
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        for dir in missing {
            set_mode(dir, 0o755)?;
        }
        let name = path.file_name().context("a file name to write")?;
        let partial = parent.join(format!(".{}.partial", name.to_string_lossy()));
        std::fs::write(&partial, contents)
            .with_context(|| format!("write {}", partial.display()))?;
        set_mode(&partial, 0o644)?;
        std::fs::rename(&partial, &path).with_context(|| format!("write {}", path.display()))
    }

    /// Copies every file directly in the host folder `source` to the folder `relative`.
    pub fn copy_files(&self, source: &Path, relative: impl AsRef<Path>) -> anyhow::Result<()> {
        let relative = relative.as_ref();
        for entry in
            std::fs::read_dir(source).with_context(|| format!("read {}", source.display()))?
        {
            let path = entry?.path();
            if let (true, Some(name)) = (path.is_file(), path.file_name()) {
                let contents =
                    std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
                self.write(relative.join(name), &contents)?;
            }
        }
        Ok(())
    }

    /// Leaves the folder behind (to look at after a run) and returns where it is.
    pub fn keep(self) -> PathBuf {
        self.0.keep()
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Written and copied files are readable by others, in folders others can enter, and no
    /// partial file is left behind.
    #[test]
    fn files_are_readable_by_another_user() {
        let shared = SharedDir::new("otel-testkit-shared-").unwrap();
        assert_eq!(mode(shared.path()), 0o755);
        shared.write("config.yml", b"one").unwrap();
        shared.write("config.yml", b"two").unwrap();
        assert_eq!(
            std::fs::read(shared.path().join("config.yml")).unwrap(),
            b"two"
        );
        assert_eq!(mode(&shared.path().join("config.yml")), 0o644);

        let source = tempfile::tempdir().unwrap();
        std::fs::write(source.path().join("a.yml"), "a").unwrap();
        std::fs::set_permissions(
            source.path().join("a.yml"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::create_dir(source.path().join("nested")).unwrap();
        shared.copy_files(source.path(), "rules/x").unwrap();
        let copied = shared.path().join("rules/x/a.yml");
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "a");
        assert_eq!(mode(&copied), 0o644);
        assert_eq!(mode(&shared.path().join("rules")), 0o755);
        assert_eq!(mode(&shared.path().join("rules/x")), 0o755);
        assert!(
            !shared.path().join("rules/x/nested").exists(),
            "folders are not copied"
        );

        let mut names: Vec<String> = std::fs::read_dir(shared.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["config.yml", "rules"]);
    }

    /// A kept folder outlives its handle.
    #[test]
    fn a_kept_folder_stays() {
        let shared = SharedDir::new("otel-testkit-shared-").unwrap();
        let path = shared.keep();
        assert!(path.is_dir());
        std::fs::remove_dir(path).unwrap();
    }
}
