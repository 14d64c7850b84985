//! Loading WIT packages and selecting a world in them.

use std::path::{Path, PathBuf};

use wit_parser::{PackageId, Resolve, WorldId};

use crate::{Error, Result};

/// A WIT package (with its dependencies) loaded from a file or directory.
#[derive(Debug, Clone)]
pub struct Wit {
    pub path: PathBuf,
    pub resolve: Resolve,
    /// The package at `path` itself (not its `deps/`).
    pub package: PackageId,
}

impl Wit {
    /// Loads a WIT file, a directory with an optional `deps/` folder, or a WIT package
    /// encoded as wasm, as `wit-parser` reads them. Parse errors keep wit-parser's
    /// rendering with file, line and snippet.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Wit {
                path: path.to_path_buf(),
                message: "no such file or directory".to_string(),
            });
        }
        let mut resolve = Resolve::default();
        let (package, _sources) = match resolve.push_path(path) {
            Ok(loaded) => loaded,
            // Rendered with file, line, column and a snippet where the error has a
            // source location, after the chain of what was being read.
            Err(e) => {
                return Err(Error::Wit {
                    path: path.to_path_buf(),
                    message: resolve.render_error(&e),
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            resolve,
            package,
        })
    }

    /// Selects a world by `name` (in the main package) or `ns:pkg/name[@version]`; with
    /// no name, the main package's only world.
    pub fn world(&self, name: Option<&str>) -> Result<WorldId> {
        let not_found = || Error::WorldNotFound {
            path: self.path.clone(),
            requested: name.map(str::to_string),
            available: self.world_names(),
        };
        if name.is_none() && self.resolve.packages[self.package].worlds.len() != 1 {
            return Err(not_found());
        }
        self.resolve
            .select_world(&[self.package], name)
            .map_err(|_| not_found())
    }

    /// The fully qualified name of a world, e.g. `wasi:cli/command@0.2.12`.
    pub fn world_name(&self, world: WorldId) -> String {
        let world = &self.resolve.worlds[world];
        match world.package {
            Some(pkg) => {
                let name = &self.resolve.packages[pkg].name;
                let version = name
                    .version
                    .as_ref()
                    .map(|v| format!("@{v}"))
                    .unwrap_or_default();
                format!("{}:{}/{}{}", name.namespace, name.name, world.name, version)
            }
            None => world.name.clone(),
        }
    }

    /// Every world that can be named: the main package's first, then the dependencies'.
    pub fn world_names(&self) -> Vec<String> {
        let main = self.resolve.packages[self.package].worlds.values().copied();
        let others = self
            .resolve
            .packages
            .iter()
            .filter(|(id, _)| *id != self.package)
            .flat_map(|(_, p)| p.worlds.values().copied());
        main.chain(others).map(|w| self.world_name(w)).collect()
    }
}
