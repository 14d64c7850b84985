//! The compile cache is authenticated: an entry written by whoever can write the cache
//! directory (a cache restored from another CI job, another machine) is not used unless
//! its MAC verifies with this user's secret; outputs are copies, not links into the
//! cache; and the shared cache trusts the public keys it is given (`--cache-trust`).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::*;
use crate::shared_cache::{assert_amd64_entry_ignored, cwasm_digest, sources, summary};

const TARGET: &str = "linux/amd64";

/// `pack` as a user whose home is `home` (so whose cache key is `home/.config/pack/
/// cache.key`), with the compile cache `cache`.
fn as_user(home: &Path, cache: &Path) -> assert_cmd::Command {
    let mut cmd = pack_in(home);
    cmd.env("PACK_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

/// `pack build <component> -t linux/amd64 -o <home>/<out> --json --sign-key <key>`.
fn build_signed(cmd: &mut assert_cmd::Command, component: &Path, out: &str, key: &Path) -> Output {
    cmd.arg("build")
        .arg(component)
        .args(["-t", TARGET, "-o", out, "--json", "--sign-key"])
        .arg(key)
        .output()
        .unwrap()
}

/// `pack compile <component> -t linux/amd64 -o <out> --json` by `cmd`; it must succeed:
/// the report's artifact, and the stderr.
fn compile_artifact(cmd: &mut assert_cmd::Command, component: &Path, out: &str) -> (Value, String) {
    let output = cmd
        .arg("compile")
        .arg(component)
        .args(["-t", TARGET, "-o", out, "--json"])
        .output()
        .unwrap();
    assert_exit(&output, 0);
    (
        json_stdout(&output)["artifacts"][0].clone(),
        stderr(&output),
    )
}

/// The only entry of a cache directory: `(.cwasm, .json)`.
fn only_entry(cache: &Path) -> (PathBuf, PathBuf) {
    let mut found: Vec<PathBuf> = files_under(cache)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let cwasm = found.remove(0);
    let json = cwasm.with_extension("json");
    assert!(json.exists(), "{}", json.display());
    (cwasm, json)
}

/// A copy of `cache` whose only entry holds `payload` instead, with the digests of its
/// `.json` fixed up to match (what a writer of the cache directory can do).
fn poisoned_copy(cache: &Path, to: &Path, payload: &[u8]) {
    copy_dir(cache, to);
    let (cwasm, json) = only_entry(to);
    std::fs::write(&cwasm, payload).unwrap();
    let mut meta = read_json(&json);
    meta["sha256"] = sha256_hex(payload).into();
    meta["size"] = payload.len().into();
    std::fs::write(&json, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

/// Two users' homes in `dir`, `h1` and `h2`, each with a cache of its own.
fn two_homes(dir: &Path) -> (PathBuf, PathBuf) {
    let homes = (dir.join("h1"), dir.join("h2"));
    std::fs::create_dir_all(&homes.0).unwrap();
    std::fs::create_dir_all(&homes.1).unwrap();
    homes
}

#[test]
fn a_poisoned_cache_from_elsewhere_is_compiled_again_and_never_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = two_homes(dir.path());
    let (sign_key, _) = key_pair(dir.path(), "release");
    let a = fixture("components/hello-cli.wasm");
    let b = fixture("components/calc.wasm");

    // User 1 builds A: a cold compile, which fills cache C.
    let cache = h1.join("cache");
    let cold = summary(&build_signed(
        &mut as_user(&h1, &cache),
        &a,
        "out/cold",
        &sign_key,
    ));
    assert_eq!(sources(&cold), ["compiled"], "{cold}");
    let a_cwasm = cwasm_digest(&h1.join("out/cold"));
    // B's artifact for the same target, from another cache.
    let (b_artifact, _) = compile_artifact(&mut as_user(&h1, &h1.join("cache-b")), &b, "b");
    let b_bytes = std::fs::read(h1.join("b").join(b_artifact["file"].as_str().unwrap())).unwrap();
    assert_ne!(sha256_hex(&b_bytes), a_cwasm);

    // Poisoned copies of C, each used once: by user 2 (another secret), by user 1 with
    // another PACK_CACHE_SECRET, and by user 1 with the very secret that made C.
    let cases: [(&str, &Path, Option<&str>); 3] = [
        ("another home", h2.as_path(), None),
        (
            "another PACK_CACHE_SECRET",
            h1.as_path(),
            Some("a CI secret that is not user 1's"),
        ),
        ("the same secret", h1.as_path(), None),
    ];
    for (i, (case, home, secret)) in cases.into_iter().enumerate() {
        let poisoned = dir.path().join(format!("poisoned-{i}"));
        poisoned_copy(&cache, &poisoned, &b_bytes);
        let user = || {
            let mut cmd = as_user(home, &poisoned);
            if let Some(secret) = secret {
                cmd.env("PACK_CACHE_SECRET", secret);
            }
            cmd
        };
        let layout = format!("out/poisoned-{i}");
        let out = build_signed(&mut user(), &a, &layout, &sign_key);
        let json = summary(&out);
        assert_eq!(sources(&json), ["compiled"], "{case}: {json}");
        assert_eq!(json["signed"], true, "{case}");
        assert_eq!(
            cwasm_digest(&home.join(&layout)),
            a_cwasm,
            "{case}: B's code was packaged"
        );
        assert_eq!(
            json["digest"], cold["digest"],
            "{case}: the bundle of a cold build"
        );
        let err = stderr(&out);
        assert_eq!(
            err.matches("warning: not using cache entry").count(),
            1,
            "{case}: {err}"
        );
        assert!(err.contains("MAC does not verify"), "{case}: {err}");

        // The fresh entry replaced the poisoned one: the next build is a hit, with A.
        let (cwasm, _) = only_entry(&poisoned);
        assert_eq!(
            sha256_hex(&std::fs::read(&cwasm).unwrap()),
            a_cwasm,
            "{case}"
        );
        let out = build_signed(&mut user(), &a, &layout, &sign_key);
        let again = summary(&out);
        assert_eq!(sources(&again), ["local-cache"], "{case}: {again}");
        assert_eq!(again["digest"], cold["digest"], "{case}");
        assert!(
            !stderr(&out).contains("warning"),
            "{case}: {}",
            stderr(&out)
        );
    }

    // Users 1 and 2 now have different key files, private to each.
    let key_file = |home: &Path| home.join(".config/pack/cache.key");
    assert_ne!(
        std::fs::read(key_file(&h1)).unwrap(),
        std::fs::read(key_file(&h2)).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key_file(&h2)), 0o600);
        assert_eq!(mode(&h2.join(".config/pack")), 0o700);
    }
}

#[test]
fn the_same_secret_hits_and_an_unusable_secret_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = two_homes(dir.path());
    let hello = fixture("components/hello-cli.wasm");
    let cache = dir.path().join("cache");
    // Whether the compile was a cache hit, and its stderr.
    let compile = |cmd: &mut assert_cmd::Command| {
        let (artifact, err) = compile_artifact(cmd, &hello, "out");
        (artifact["cacheHit"].clone(), err)
    };

    // The same user: a miss, then a hit.
    assert_eq!(compile(&mut as_user(&h1, &cache)).0, false);
    let (hit, err) = compile(&mut as_user(&h1, &cache));
    assert_eq!(hit, true);
    assert!(!err.contains("warning"), "{err}");

    // CI: a cache restored on another machine is used when PACK_CACHE_SECRET is the
    // same, and only then.
    let ci_cache = dir.path().join("ci-cache");
    let secret = "0123456789abcdef0123456789abcdef";
    let ci = |home: &Path| {
        let mut cmd = as_user(home, &ci_cache);
        cmd.env("PACK_CACHE_SECRET", secret);
        cmd
    };
    assert_eq!(compile(&mut ci(&h1)).0, false);
    let (hit, err) = compile(&mut ci(&h2));
    assert_eq!(hit, true, "{err}");

    // A secret too short to be one is a usage error that says what to do.
    let out = as_user(&h1, &cache)
        .env("PACK_CACHE_SECRET", "hunter2")
        .arg("compile")
        .arg(&hello)
        .args(["-t", TARGET, "-o", "out"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("PACK_CACHE_SECRET is 7 bytes long") && err.contains("hint:"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the secret is printed: {err}");

    // A key file others may read is not used (as ssh does with private keys): a warning,
    // and the target is compiled without the cache.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = h1.join(".config/pack/cache.key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (hit, err) = compile(&mut as_user(&h1, &cache));
        assert_eq!(hit, false);
        assert!(
            err.contains("is accessible by group or others")
                && err.contains("compiling without a cache")
                && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(compile(&mut as_user(&h1, &cache)).0, true);
    }
}

#[test]
fn compile_outputs_are_copies_not_links_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let cache = home.join("cache");
    let hello = fixture("components/hello-cli.wasm");
    // Whether the compile was a cache hit, and its output file.
    let compile = || {
        let (artifact, _) = compile_artifact(&mut as_user(home, &cache), &hello, "out");
        (
            artifact["cacheHit"].as_bool().unwrap(),
            home.join("out").join(artifact["file"].as_str().unwrap()),
        )
    };
    let (hit, output) = compile();
    assert!(!hit);
    let original = std::fs::read(&output).unwrap();
    let (entry, _) = only_entry(&cache);
    let check = |output: &Path| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let (o, e) = (
                std::fs::metadata(output).unwrap(),
                std::fs::metadata(&entry).unwrap(),
            );
            assert!(
                (o.dev(), o.ino()) != (e.dev(), e.ino()),
                "the output is the cache entry"
            );
            assert_eq!(o.nlink(), 1, "the output has another name");
        }
        // Editing the output in place leaves the entry alone.
        {
            use std::io::{Seek, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(output)
                .unwrap();
            f.seek(std::io::SeekFrom::Start(64)).unwrap();
            f.write_all(b"edited").unwrap();
        }
        assert_eq!(std::fs::read(&entry).unwrap(), original);
    };
    check(&output);

    // The next compile is a hit, and gives the original bytes back (a copy again).
    let (hit, again) = compile();
    assert!(hit);
    assert_eq!(again, output);
    assert_eq!(std::fs::read(&again).unwrap(), original);
    check(&again);
}

/// `pack build` of hello-cli for linux/amd64 through the shared cache `repo`, as a fresh
/// runner, with `args` (`--cache-key`, `--cache-trust`).
fn runner_build(repo: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    as_user(home.path(), &home.path().join("cache"))
        .arg("build")
        .arg(fixture("components/hello-cli.wasm"))
        .args([
            "-t",
            TARGET,
            "-o",
            "out/app",
            "--json",
            "--cache-repo",
            repo,
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn read_only_runners_trust_public_keys_and_nothing_else() {
    let Some((registry, keys)) = registry_and_tempdir() else {
        return;
    };
    let (builder, builder_pub) = key_pair(keys.path(), "builder");
    let (stranger, stranger_pub) = key_pair(keys.path(), "stranger");
    let repo = format!("{}/team/pack-cache", registry.addr());
    let path = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (builder, builder_pub) = (path(&builder), path(&builder_pub));
    let (stranger, stranger_pub) = (path(&stranger), path(&stranger_pub));
    let (k, t) = ("--cache-key", "--cache-trust");

    // A trusted builder fills the cache.
    let made = summary(&runner_build(&repo, &[k, &builder]));
    assert_eq!(made["cachePushed"], 1, "{made}");

    // A read-only runner with only the builder's public key: everything from the
    // registry, nothing pushed, no private key anywhere.
    let out = runner_build(&repo, &[t, &builder_pub]);
    let json = summary(&out);
    assert_eq!(sources(&json), ["registry"], "{json}\n{}", stderr(&out));
    assert_eq!(json["compiled"], 0);
    assert_eq!(json["cachePushed"], 0);
    assert_eq!(json["digest"], made["digest"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // A runner with a key of its own trusts the builder's entries as well.
    let out = runner_build(&repo, &[k, &stranger, t, &builder_pub]);
    let json = summary(&out);
    assert_eq!(sources(&json), ["registry"], "{json}\n{}", stderr(&out));

    // Trusting only another key: the builder's entry is not used.
    let out = runner_build(&repo, &[t, &stranger_pub]);
    let json = summary(&out);
    assert_eq!(sources(&json), ["compiled"], "{json}");
    assert_eq!(json["cachePushed"], 0, "read-only");
    assert_eq!(json["digest"], made["digest"]);
    assert_amd64_entry_ignored(&out, "another key");

    // --cache-trust takes public keys only; --cache-repo needs a key of either kind.
    let out = runner_build(&repo, &[t, &builder]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "is not a public key");
    let out = runner_build(&repo, &[]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "--cache-trust");

    // `[cache] trust` in pack.toml does the same as the flag.
    let home = tempfile::tempdir().unwrap();
    std::fs::copy(&builder_pub, home.path().join("builder.pub")).unwrap();
    write(
        home.path(),
        "pack.toml",
        format!(
            "[component]\npath = {:?}\n\n[build]\ntargets = [\"{TARGET}\"]\noutput = \"out/app\"\n\n\
             [cache]\nrepository = \"{repo}\"\ntrust = [\"builder.pub\"]\n",
            fixture("components/hello-cli.wasm")
        ),
    );
    let out = as_user(home.path(), &home.path().join("cache"))
        .args(["build", "--json"])
        .output()
        .unwrap();
    let json = summary(&out);
    assert_eq!(sources(&json), ["registry"], "{json}\n{}", stderr(&out));
    assert_eq!(json["digest"], made["digest"]);
}
