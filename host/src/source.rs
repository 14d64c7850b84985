//! Where a bundle comes from: an OCI layout on disk, or a registry reference.

use std::fmt;
use std::path::Path;

use pack_packager::LayoutRef;

/// A bundle to run: `<LAYOUT>[:<TAG>]` or `<REGISTRY>/<REPOSITORY>[:<TAG>|@<DIGEST>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An OCI image layout directory and a tag in it. Used in place.
    Layout(LayoutRef),
    /// A registry reference, pulled into the content store.
    Registry(String),
}

impl Source {
    /// Tells a layout from a registry reference the way docker tells a registry host from
    /// a repository path: an existing directory (with or without `:<TAG>`) is a layout;
    /// otherwise a string whose first `/`-separated component names a host (it contains
    /// `.` or `:`, or is `localhost`) is a registry reference; anything else is a layout
    /// path (which then has to exist). Paths that start with `/`, `./` or `../` are
    /// always layouts.
    pub fn parse(input: &str) -> Source {
        let layout = LayoutRef::parse(input);
        if layout.path.is_dir()
            || input.starts_with('/')
            || input.starts_with("./")
            || input.starts_with("../")
        {
            return Source::Layout(layout);
        }
        if let Some((host, rest)) = input.split_once('/')
            && !rest.is_empty()
            && (host.contains('.') || host.contains(':') || host == "localhost")
            && !Path::new(host).is_dir()
        {
            return Source::Registry(input.to_string());
        }
        Source::Layout(layout)
    }

    /// A short name for the component: the layout directory's or the repository's last
    /// component (`app` for `out/app:v1` and for `registry.example.com/team/app:v1`).
    pub fn name(&self) -> String {
        let last = match self {
            Source::Layout(l) => {
                let absolute = std::fs::canonicalize(&l.path).unwrap_or_else(|_| l.path.clone());
                absolute
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }
            Source::Registry(r) => {
                let repo = r.split('@').next().unwrap_or(r);
                let last = repo.rsplit('/').next().unwrap_or(repo);
                last.split(':').next().unwrap_or(last).to_string()
            }
        };
        if last.is_empty() {
            "component".to_string()
        } else {
            last
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Layout(l) => write!(f, "{l}"),
            Source::Registry(r) => f.write_str(r),
        }
    }
}

impl std::str::FromStr for Source {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Source::parse(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_references() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir(&app).unwrap();
        let s = app.to_str().unwrap();
        assert!(matches!(Source::parse(s), Source::Layout(l) if l.tag == "latest"));
        assert!(matches!(Source::parse(&format!("{s}:v1")), Source::Layout(l) if l.tag == "v1"));
        assert_eq!(Source::parse(s).name(), "app");

        for r in [
            "127.0.0.1:5000/app:v1",
            "localhost/team/app",
            "registry.example.com/app@sha256:abc",
        ] {
            assert_eq!(Source::parse(r), Source::Registry(r.to_string()), "{r}");
        }
        assert_eq!(Source::parse("127.0.0.1:5000/team/app:v1").name(), "app");
        assert_eq!(Source::parse("localhost/app@sha256:abc").name(), "app");
        for l in ["out/app", "./x.y/app", "app:v1", "/abs/path"] {
            assert!(matches!(Source::parse(l), Source::Layout(_)), "{l}");
        }
    }
}
