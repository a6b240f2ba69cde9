//! Locates a parse error in its source text, so every config error can name file and line.

use std::fmt;
use std::path::{Path, PathBuf};

/// `file:line:column: cause`, the shape editors and people both read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub cause: String,
}

impl SourceError {
    /// Turns a TOML error into one that names the line it happened on.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let offset = err.span().map(|s| s.start).unwrap_or(0);
        let (line, column) = line_column(text, offset);
        Self {
            file: file.to_path_buf(),
            line,
            column,
            cause: err.message().trim().to_string(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.cause
        )
    }
}

impl std::error::Error for SourceError {}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_their_line() {
        let text = "a = 1\nb = \"x\"\nc = nope\n";
        let err = toml::from_str::<toml::Table>(text).unwrap_err();
        let e = SourceError::from_toml(Path::new("f.toml"), text, &err);
        assert_eq!(e.line, 3);
        assert!(e.to_string().starts_with("f.toml:3:"), "{e}");
    }
}
