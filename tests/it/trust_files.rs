//! The files a host runs code from: a blob swapped for a symbolic link, a blob or a
//! directory of the layout that others can write, and what pack writes under `umask 000`
//! (layouts, the compile cache, the content store), all through the real binary; and the
//! honest paths, `--allow-jit` included.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use pack_packager::Layout;

use crate::common::*;
use crate::registry::Registry;

/// A key pair and two signed bundles of the hello-cli fixture, built once: `native`
/// (this machine's platform) and `foreign` (only another platform's).
fn bundles() -> &'static SignedHello {
    static BUNDLES: OnceLock<SignedHello> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        SignedHello::build("trust", &[("native", here()), ("foreign", elsewhere())])
    })
}

/// The blob of the first layer of `media_type` in the manifests of `layout`'s `latest`
/// bundle.
fn layer_blob(layout: &Path, media_type: &str) -> PathBuf {
    let l = Layout::open(layout).unwrap();
    let index = l.read_image_index(&l.resolve("latest").unwrap()).unwrap();
    for entry in index.manifests() {
        let manifest = l.read_manifest(entry).unwrap();
        if let Some(layer) = manifest.layers().iter().find(|d| {
            pack_packager::compression::plain_media_type(d.media_type().as_ref()) == media_type
        }) {
            return l.blob_path(layer.digest()).unwrap();
        }
    }
    panic!("no `{media_type}` layer in {}", layout.display());
}

fn cwasm_blob(layout: &Path) -> PathBuf {
    layer_blob(layout, pack_packager::media_types::CWASM_LAYER)
}

fn runs(out: &Output) {
    assert_exit(out, 0);
    assert_stdout_has(out, HELLO_RAN);
}

/// Refused (exit 2, a bundle that cannot be trusted), nothing ran, and stderr names
/// `path` and says `needle`.
fn refused(out: &Output, path: &Path, needle: &str) {
    assert_exit(out, 2);
    assert!(!stdout(out).contains(HELLO_RAN), "it ran: {}", stdout(out));
    let err = stderr(out);
    assert!(
        err.contains(&format!("`{}`", path.display())),
        "no {path:?} in\n{err}"
    );
    assert!(err.contains(needle), "no {needle:?} in\n{err}");
}

/// A copy of the layout `bundle` as `app` in a fresh temporary directory: (the directory,
/// the copy).
fn copy_of(bundle: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("app");
    copy_layout(bundle, &layout);
    (dir, layout)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_blob_swapped_for_a_symbolic_link_is_refused() {
    let (dir, layout) = copy_of(bundles().layout("native"));
    runs(&bundles().run(&layout, &[]));

    // The artifact is now a link to a file outside the layout, with the same (valid)
    // content: whoever controls the link's target controls what runs.
    let blob = cwasm_blob(&layout);
    let outside = dir.path().join("outside.cwasm");
    std::fs::rename(&blob, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &blob).unwrap();
    let out = bundles().run(&layout, &[]);
    refused(&out, &blob, "is a symbolic link");
    assert_stderr_has(&out, "hint: replace the link");

    // The same for a linked directory on the way, and for a linked `index.json`.
    std::fs::remove_file(&blob).unwrap();
    std::fs::rename(&outside, &blob).unwrap();
    runs(&bundles().run(&layout, &[]));
    let blobs = layout.join("blobs/sha256");
    let moved = dir.path().join("sha256");
    std::fs::rename(&blobs, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &blobs).unwrap();
    refused(&bundles().run(&layout, &[]), &blobs, "is a symbolic link");
    std::fs::remove_file(&blobs).unwrap();
    std::fs::rename(&moved, &blobs).unwrap();
    let index = layout.join("index.json");
    std::fs::rename(&index, dir.path().join("index.json")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("index.json"), &index).unwrap();
    refused(&bundles().run(&layout, &[]), &index, "is a symbolic link");

    // A layout that is itself a link is the user's choice: followed.
    std::fs::remove_file(&index).unwrap();
    std::fs::rename(dir.path().join("index.json"), &index).unwrap();
    let named = dir.path().join("named");
    std::os::unix::fs::symlink(&layout, &named).unwrap();
    runs(&bundles().run(&named, &[]));
}

#[test]
fn a_blob_or_directory_others_can_write_is_refused() {
    let (_dir, layout) = copy_of(bundles().layout("native"));
    let blob = cwasm_blob(&layout);
    let sha256 = layout.join("blobs/sha256");
    for (path, mode, good) in [
        (blob.clone(), 0o666, 0o644),
        (blob.clone(), 0o664, 0o644),
        (sha256.clone(), 0o777, 0o755),
        (layout.join("blobs"), 0o775, 0o755),
        (layout.clone(), 0o757, 0o755),
        (layout.join("index.json"), 0o646, 0o644),
    ] {
        chmod(&path, mode);
        let out = bundles().run(&layout, &[]);
        refused(&out, &path, "writable by");
        assert_stderr_has(&out, format!("chmod go-w {}", path.display()));
        chmod(&path, good);
    }
    runs(&bundles().run(&layout, &[]));

    // A file of another user (only root can make one): refused too, as root.
    let me = std::fs::metadata(&blob).unwrap().uid();
    if me == 0 {
        std::os::unix::fs::chown(&blob, Some(54321), None).unwrap();
        let out = bundles().run(&layout, &[]);
        refused(&out, &blob, "belongs to user 54321");
        std::os::unix::fs::chown(&blob, Some(0), None).unwrap();
    }
    runs(&bundles().run(&layout, &[]));
}

#[test]
fn allow_jit_compiles_the_checked_portable_component() {
    let (dir, layout) = copy_of(bundles().layout("foreign"));
    // Nothing fits this machine: with --allow-jit the portable component runs.
    let out = bundles().run(&layout, &["--allow-jit"]);
    runs(&out);
    assert_stderr_has(
        &out,
        "warning: --allow-jit: compiling the portable component",
    );
    // The component it compiles is read through the same checks: a link is refused.
    let wasm = layer_blob(&layout, pack_packager::media_types::WASM_LAYER);
    let outside = dir.path().join("outside.wasm");
    std::fs::rename(&wasm, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &wasm).unwrap();
    refused(
        &bundles().run(&layout, &["--allow-jit"]),
        &wasm,
        "is a symbolic link",
    );
}

/// Every directory and file under `root` (itself included) whose mode lets group or
/// others write.
fn writable_by_others(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.mode() & 0o022 != 0 && !meta.file_type().is_symlink() {
            found.push(format!("{} ({:o})", path.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

/// Nothing under `dir/<root>`, for each of `roots`, is writable by group or others.
#[track_caller]
fn assert_none_writable_by_others(dir: &Path, roots: &[&str]) {
    for root in roots {
        let bad = writable_by_others(&dir.join(root));
        assert!(bad.is_empty(), "writable by others: {bad:#?}");
    }
}

/// `pack ARGS` run by `sh` after `umask 000`, to its end.
fn pack_umask_000(args: &[&str]) -> Output {
    assert_cmd::Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_pack"),
        ])
        .args(args)
        .env_remove("PACK_COLOR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn nothing_pack_writes_under_umask_000_is_writable_by_others() {
    let b = bundles();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let here = here();
    let hello = fixture("components/hello-cli.wasm");

    // The umask really is 000 for the child.
    let new = d.join("new");
    let out = pack_umask_000(&[
        "key",
        "generate",
        "--no-password",
        "--output-prefix",
        s(&new),
    ]);
    assert_exit(&out, 0);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&d.join("new.key")), 0o600);
    assert_eq!(mode(&d.join("new.pub")), 0o644);

    // pack build: the output layout (and the directories made for it) and the cache.
    let (built, build_cache) = (d.join("out/deep/app"), d.join("build-cache"));
    let out = pack_umask_000(&[
        "build",
        s(&hello),
        "-t",
        here,
        "-o",
        s(&built),
        "--sign-key",
        s(&b.private),
        "--cache-dir",
        s(&build_cache),
    ]);
    assert_exit(&out, 0);
    // pack compile: its output directory and the cache.
    let (compiled, compile_cache) = (d.join("compiled/out"), d.join("compile-cache/pack"));
    let out = pack_umask_000(&[
        "compile",
        s(&hello),
        "-t",
        here,
        "-o",
        s(&compiled),
        "--cache-dir",
        s(&compile_cache),
    ]);
    assert_exit(&out, 0);
    assert_none_writable_by_others(d, &["out", "build-cache", "compiled", "compile-cache"]);
    // What was built runs (the host's checks pass on what pack wrote).
    runs(&bundles().run(&built, &[]));

    // The content store and a pulled layout, through a real registry.
    let Some(registry) = Registry::start() else {
        return;
    };
    let reference = format!("{}/team/hello:v1", registry.addr());
    pack_push(b.layout("native"), &reference);
    let store = d.join("data/pack/store");
    runs(&pack_umask_000(&[
        "run",
        &reference,
        "--key",
        s(&b.public),
        "--store",
        s(&store),
    ]));
    let pulled = d.join("pulled/app");
    let out = pack_umask_000(&["pull", &reference, "--key", s(&b.public), "-o", s(&pulled)]);
    assert_exit(&out, 0);
    assert_none_writable_by_others(d, &["data", "pulled"]);
    runs(&bundles().run(d.join("pulled/app:v1"), &[]));

    // A store others can write is refused before anything is read from it.
    chmod(&store, 0o777);
    let out = pack()
        .args(["run", &reference, "--key", s(&b.public), "--store"])
        .arg(&store)
        .output()
        .unwrap();
    refused(&out, &store, "writable by its group and others");
}
