//! Configuration errors that point at the file, line, column and key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key the problem is about (`cluster`, `listener[0].route[1].cluster`).
    pub key: Option<String>,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigError {
    pub fn io(file: &Path, err: &std::io::Error) -> Self {
        Self {
            file: file.to_path_buf(),
            position: None,
            key: None,
            message: format!("cannot read the file: {err}"),
        }
    }

    /// Turns a parse error into one that names line, column and key.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        let position = err.span().map(|span| line_col(text, span.start));
        let key = err.span().and_then(|span| key_at(text, span));
        Self {
            file: file.to_path_buf(),
            position,
            key,
            message: err.message().trim().to_string(),
        }
    }

    /// A semantic problem at `span` of `text`.
    pub fn at(file: &Path, text: &str, span: Option<Range<usize>>, key: String, message: String) -> Self {
        Self {
            file: file.to_path_buf(),
            position: span.map(|s| line_col(text, s.start)),
            key: Some(key),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(key) = &self.key {
            write!(f, " (key `{key}`)")?;
        }
        write!(f, " at {}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigErrors {
    pub fn single(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The key written on the line of `span`: either the span is the key
/// itself, or the key precedes `=` on that line.
fn key_at(text: &str, span: Range<usize>) -> Option<String> {
    let start = span.start.min(text.len());
    let line_start = text.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text.get(start..)?.find('\n').map_or(text.len(), |i| start + i);
    let line = text.get(line_start..line_end)?.trim();
    if line.starts_with('[') {
        return Some(line.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    let key = line.split('=').next()?.trim();
    (!key.is_empty()).then(|| key.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
    }

    #[test]
    fn key_is_taken_from_the_line() {
        let text = "[cluster]\nconnect_timeout = \"5 parsecs\"\n";
        let start = text.find("\"5").unwrap_or(0);
        assert_eq!(key_at(text, start..start + 3).as_deref(), Some("connect_timeout"));
    }
}
