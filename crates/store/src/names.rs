//! What a file name may be.
//!
//! Names are opaque UTF-8 keys: they are never used as paths on disk (the store
//! indexes files by a keyed hash of the name, and keeps the name itself only inside
//! encrypted records), so `../x`, `a/b` or `/etc/passwd` are ordinary names that can
//! never reach outside the data dir. What is refused is what breaks the people and
//! scripts that read names: the empty name, control characters (NUL, newline, escape
//! sequences that would rewrite a terminal) and names too long to display.

/// Longest accepted name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 4096;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is empty; give a name with at least one visible character")]
    Empty,
    #[error("the name is {len} bytes long; the limit is {MAX_NAME_BYTES} bytes")]
    TooLong { len: usize },
    #[error(
        "the name contains the control character U+{code:04X} at byte {offset}; \
         control characters (NUL, newline, tab, escape) are not allowed in names"
    )]
    ControlCharacter { code: u32, offset: usize },
}

/// Checks that `name` can be stored.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { len: name.len() });
    }
    if let Some((offset, c)) = name.char_indices().find(|(_, c)| c.is_control()) {
        return Err(NameError::ControlCharacter {
            code: c as u32,
            offset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_like_names_are_plain_keys() {
        for name in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a/b",
            "ünïcødé ✓",
            " spaced ",
        ] {
            assert_eq!(validate_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refused_names_say_why() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(
            validate_name(&"x".repeat(10_000)),
            Err(NameError::TooLong { len: 10_000 })
        );
        assert_eq!(
            validate_name("a\0b"),
            Err(NameError::ControlCharacter { code: 0, offset: 1 })
        );
        assert!(validate_name("line\nbreak").is_err());
        assert_eq!(validate_name(&"x".repeat(MAX_NAME_BYTES)), Ok(()));
    }
}
