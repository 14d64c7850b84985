//! A real OCI registry (`docker-registry`, the CNCF distribution registry) for tests: one
//! process per test on a random loopback port with temporary storage, stopped on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::skip;

/// A running registry.
pub struct Registry {
    child: Child,
    addr: String,
    _storage: tempfile::TempDir,
}

/// Whether `program` is on PATH (not every tool has a `--version`: htpasswd does not).
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `None` (the caller skips) when `program` is missing outside CI; in CI a missing tool
/// fails the test.
pub fn require(program: &str) -> Option<()> {
    if have(program) {
        return Some(());
    }
    skip(format_args!("`{program}` is not installed"))
}

/// What a test registry requires besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// An htpasswd file (bcrypt entries, `htpasswd -Bbn`): basic auth is required.
    pub htpasswd: Option<std::path::PathBuf>,
    /// A certificate and key (PEM): the registry speaks only HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Registry {
    /// Starts a registry, or returns `None` when `docker-registry` is not installed
    /// (outside CI).
    pub fn start() -> Option<Self> {
        Self::start_with(&Options::default())
    }

    /// [`Registry::start`] requiring basic auth as `user`:`password` (an htpasswd file
    /// written in `dir`); `None` also when `htpasswd` is missing outside CI.
    pub fn start_with_login(dir: &Path, user: &str, password: &str) -> Option<Self> {
        let htpasswd = htpasswd_for(dir, user, password)?;
        Self::start_with(&Options {
            htpasswd: Some(htpasswd),
            ..Options::default()
        })
    }

    /// [`Registry::start`] with basic auth and/or TLS.
    pub fn start_with(options: &Options) -> Option<Self> {
        require("docker-registry")?;
        let storage = tempfile::tempdir().unwrap();
        let data = storage.path().join("data");
        let config = storage.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    \
             rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            data.display()
        );
        if let Some((cert, key)) = &options.tls {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(htpasswd) = &options.htpasswd {
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: pack-tests\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .env("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", &data)
            .env("REGISTRY_HTTP_SECRET", "pack-tests")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        // The registry logs `listening on 127.0.0.1:PORT` once it accepts connections. The
        // reader thread keeps draining the log so the registry never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("docker-registry did not report its address within 30 s");
            }
        };
        Some(Self {
            child,
            addr,
            _storage: storage,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The registry's storage directory (`docker/registry/v2/...` below it).
    pub fn storage(&self) -> std::path::PathBuf {
        self._storage.path().join("data")
    }

    /// The file that holds the blob `digest` (`sha256:<hex>`, or the hex alone) in its
    /// storage.
    pub fn blob_file(&self, digest: &str) -> std::path::PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// `docker://127.0.0.1:PORT/<repo>` for skopeo.
    pub fn docker_ref(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }
}

fn listening_addr(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok_and(|p| p != 0))
        .then_some(addr)
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `alice:wonderland` in a bcrypt htpasswd file, for [`Options::htpasswd`].
pub fn htpasswd(dir: &Path) -> Option<std::path::PathBuf> {
    htpasswd_for(dir, "alice", "wonderland")
}

/// `user:password` in a bcrypt htpasswd file in `dir`; `None` when `htpasswd` is missing
/// outside CI.
pub fn htpasswd_for(dir: &Path, user: &str, password: &str) -> Option<std::path::PathBuf> {
    require("htpasswd")?;
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .unwrap();
    assert!(out.status.success());
    Some(crate::common::write(dir, "htpasswd", out.stdout))
}

/// Runs skopeo with `args` and returns stdout; panics with stderr on failure.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `oci:<path>:<tag>` for skopeo.
pub fn oci_ref(layout: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", layout.display())
}

#[test]
fn parses_the_listening_line() {
    let line = r#"time="x" level=info msg="listening on 127.0.0.1:41253" go.version=go1.19.8"#;
    assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:41253"));
    assert_eq!(listening_addr("listening on 127.0.0.1:0"), None);
    assert_eq!(listening_addr("redis not configured"), None);
}
