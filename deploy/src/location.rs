//! Where a piece of configuration came from: a file and a line.
//!
//! Every key the INI parser reads keeps its [`Location`], so that any later step (loading,
//! building a pipeline, binding a socket) can point the user at `deploy.ini:12` instead of
//! saying only what went wrong.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file and a 1-based line number in it; serialized as `"PATH:LINE"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Location {
    /// The path as the loader built it (relative paths stay relative, as the user wrote them).
    pub file: Arc<Path>,
    /// The 1-based line number.
    pub line: u32,
}

impl Location {
    /// A location in `file` at `line`.
    pub fn new(file: &Arc<Path>, line: u32) -> Self {
        Location {
            file: Arc::clone(file),
            line,
        }
    }

    /// The file, as an owned path.
    pub fn path(&self) -> PathBuf {
        self.file.to_path_buf()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

impl From<Location> for String {
    fn from(at: Location) -> String {
        at.to_string()
    }
}

impl TryFrom<String> for Location {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (file, line) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("location without ':LINE': {text:?}"))?;
        let line = line
            .parse()
            .map_err(|_| format!("location with a bad line number: {text:?}"))?;
        Ok(Location {
            file: Arc::from(Path::new(file)),
            line,
        })
    }
}
