//! `<LAYOUT>[:<TAG>]`: a layout directory and a tag in it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The tag used when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// A layout directory and a tag, parsed from `<LAYOUT>[:<TAG>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub path: PathBuf,
    /// The tag in it.
    pub tag: String,
}

impl LayoutRef {
    /// Parses `<LAYOUT>[:<TAG>]`.
    ///
    /// Paths may contain `:`. The string is split at its last `:` only when what follows
    /// is a valid tag, what precedes is not empty, and the whole string is not an existing
    /// path; otherwise the whole string is the layout and the tag is [`DEFAULT_TAG`].
    pub fn parse(s: &str) -> Self {
        if !Path::new(s).exists()
            && let Some((path, tag)) = s.rsplit_once(':')
            && !path.is_empty()
            && is_valid_tag(tag)
        {
            return Self {
                path: PathBuf::from(path),
                tag: tag.to_string(),
            };
        }
        Self {
            path: PathBuf::from(s),
            tag: DEFAULT_TAG.to_string(),
        }
    }
}

impl std::str::FromStr for LayoutRef {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.tag)
    }
}

/// Whether `tag` is a valid OCI tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks `tag` with [`is_valid_tag`].
pub fn check_tag(tag: &str) -> Result<()> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(Error::InvalidTag {
            tag: tag.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        for ok in [
            "latest",
            "v1.2.3",
            "_x",
            "A-b_c.d",
            "sha256-abc.sig",
            &"a".repeat(128),
        ] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a b", "é", &"a".repeat(129)] {
            assert!(!is_valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn parse_splits_at_the_last_colon_when_a_tag_follows() {
        assert_eq!(
            LayoutRef::parse("out/bundle:v1"),
            LayoutRef {
                path: "out/bundle".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(LayoutRef::parse("out/bundle").tag, "latest");
        for (input, path, tag) in [
            ("dir:with:colons:v2", "dir:with:colons", "v2"),
            // What follows the last ':' is not a tag: the whole string is the path.
            ("C:/x/y", "C:/x/y", "latest"),
            ("dir:", "dir:", "latest"),
            (":tag", ":tag", "latest"),
        ] {
            let r = LayoutRef::parse(input);
            assert_eq!(
                (r.path.to_str().unwrap(), r.tag.as_str()),
                (path, tag),
                "{input}"
            );
        }
    }

    #[test]
    fn parse_keeps_an_existing_path_whole() {
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("bundle:v1");
        std::fs::create_dir(&odd).unwrap();
        let s = odd.to_str().unwrap();
        assert_eq!(
            LayoutRef::parse(s),
            LayoutRef {
                path: odd.clone(),
                tag: "latest".into()
            }
        );
        let with_tag = format!("{s}:v2");
        assert_eq!(
            LayoutRef::parse(&with_tag),
            LayoutRef {
                path: odd,
                tag: "v2".into()
            }
        );
    }
}
