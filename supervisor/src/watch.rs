//! `--reload`: watching the files a config read (its `config:` includes too, and the
//! `watch_files` of a `[serve]` or `[pserve]` section) and asking for a reload when one changes.
//!
//! notify delivers events on its own thread; the callback only sets a flag and writes a byte to
//! the supervisor's wake socket, so the `poll` loop stays the one place where anything happens.
//! Directories are watched, not the files, because editors save by writing a new file and
//! renaming it over the old one. The loop waits for a quiet moment ([`DEBOUNCE`]) before
//! reloading, so one save is one reload.

use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the files must stay unchanged before a reload starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// A watch on a set of files.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    changed: Arc<AtomicBool>,
    files: BTreeSet<PathBuf>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch")
            .field("files", &self.files)
            .finish()
    }
}

impl FileWatch {
    /// Watches `files`; a change sets the flag and writes to `wake`.
    pub fn new(files: &[PathBuf], wake: &UnixStream) -> notify::Result<FileWatch> {
        let files: BTreeSet<PathBuf> = files.iter().cloned().collect();
        let changed = Arc::new(AtomicBool::new(false));
        let mut wake = wake.try_clone()?;
        let (flag, watched) = (Arc::clone(&changed), files.clone());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.kind.is_access() {
                    return;
                }
                if event.paths.iter().any(|p| watched.contains(p)) {
                    flag.store(true, Ordering::SeqCst);
                    let _ = wake.write(&[1]);
                }
            })?;
        let dirs: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        for dir in dirs {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        Ok(FileWatch {
            _watcher: watcher,
            changed,
            files,
        })
    }

    /// Whether a watched file changed since the last look.
    pub fn take_change(&self) -> bool {
        self.changed.swap(false, Ordering::SeqCst)
    }

    /// The watched files.
    pub fn files(&self) -> &BTreeSet<PathBuf> {
        &self.files
    }
}

/// The extra files a config asks to watch: `watch_files` (one per line) in its `[serve]` or
/// `[pserve]` section, relative to the file's directory.
pub fn watch_files(config: &Path) -> Vec<PathBuf> {
    let Ok(ini) = deploy::load::read_ini(config) else {
        return Vec::new();
    };
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    ["serve", "pserve"]
        .iter()
        .filter_map(|section| ini.raw(section, "watch_files"))
        .flat_map(|value| {
            value
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|line| {
            let path = PathBuf::from(line);
            let path = if path.is_relative() {
                dir.join(path)
            } else {
                path
            };
            std::fs::canonicalize(&path).unwrap_or(path)
        })
        .collect()
}
