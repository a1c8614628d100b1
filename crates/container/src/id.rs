//! Container ids: what a caller may name a container.

/// Why an id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("container id is empty")]
    Empty,
    #[error("container id {0:?} is longer than 1024 bytes")]
    TooLong(String),
    #[error("container id {0:?} is invalid: it may contain only letters, digits, '_', '+', '-' and '.', and may not be '.' or '..'")]
    BadChars(String),
}

/// Check that `id` is usable as a directory name under the state root: no `/`, no
/// `..`, nothing that could be read as an option or a path (runc's rule).
pub fn validate(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > 1024 {
        return Err(IdError::TooLong(id.to_string()));
    }
    let ok = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if !ok || id == "." || id == ".." || id.starts_with('-') {
        return Err(IdError::BadChars(id.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["a", "web-1", "x_y.z+1", "0123456789abcdef"] {
            assert_eq!(validate(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_paths_and_dots() {
        assert_eq!(validate(""), Err(IdError::Empty));
        for id in ["a/b", "..", ".", "../x", "a b", "-rf", "é", "a\0b"] {
            assert!(validate(id).is_err(), "{id:?} should be refused");
        }
        assert!(matches!(
            validate(&"a".repeat(1025)),
            Err(IdError::TooLong(_))
        ));
    }
}
