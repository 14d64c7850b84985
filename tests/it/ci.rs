//! pack as a CI step: `pack.toml`, `pack init`, `--quiet`/`--json` output, the stage
//! log, the example component, and the workflows of docs/ci.md run verbatim.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::registry::Registry;

/// `pack` in `dir`, with its own cache (`dir/.cache`) and none of the caller's settings.
fn pack_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = crate::common::pack_in(dir);
    cmd.env("PACK_CACHE_DIR", dir.join(".cache"));
    cmd
}

fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn index_annotations(layout: &Path, tag: &str) -> Value {
    blob_json(layout, &index_digest(layout, tag))["annotations"].clone()
}

/// A project: the hello-cli fixture built by a `[component] build` command, WIT, and a
/// manifest in `dir/project/pack.toml` that signs with the PEM in `MY_KEY`.
fn project(dir: &Path) -> PathBuf {
    let project = dir.join("project");
    copy_dir(&fixture("wit/hello-cli"), &project.join("wit"));
    let component = fixture("components/hello-cli.wasm");
    write(
        &project,
        "pack.toml",
        format!(
            r#"# a test project
[component]
build = "mkdir -p built && cp '{}' built/hello.wasm && echo built it"
path = "built/hello.wasm"

[wit]
path = "wit"

[build]
targets = ["linux/amd64"]
output = "out/hello"
tag = "v1"

[annotations]
"org.opencontainers.image.version" = "1.0.0"
"org.opencontainers.image.source" = "https://example.com/hello"

[sign]
key-env = "MY_KEY"
password-env = "MY_PASSWORD"
"#,
            component.display()
        ),
    );
    project
}

/// [`pack_in`] `dir` with the secrets that [`project`]'s manifest signs with: the PEM of
/// `private` in `MY_KEY`, its password (`pw`) in `MY_PASSWORD`.
fn pack_with_secrets(dir: &Path, private: &Path) -> assert_cmd::Command {
    let mut cmd = pack_in(dir);
    cmd.env("MY_KEY", std::fs::read_to_string(private).unwrap())
        .env("MY_PASSWORD", "pw");
    cmd
}

/// Rewrites the pack.toml of `project` with `edit`.
fn edit_manifest(project: &Path, edit: impl FnOnce(&str) -> String) {
    let path = project.join("pack.toml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(&manifest)).unwrap();
}

#[test]
fn build_reads_pack_toml_with_its_build_command_and_a_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = encrypted_key_pair(d, "ci", "pw");
    let project = project(d);

    // From the parent directory: paths in the file are relative to the file.
    let out = pack_with_secrets(d, &private)
        .args(["build", "--manifest", "project/pack.toml", "--json"])
        .args(["-a", "org.opencontainers.image.version=1.0.1"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(json["tag"], "v1");
    assert_eq!(json["signed"], true);
    assert_eq!(json["world"], "fixtures:hello-cli/hello-cli@0.1.0");
    assert_eq!(json["platforms"].as_array().unwrap().len(), 2);
    let err = stderr(&out);
    assert!(
        err.contains("built it"),
        "the build command's output: {err}"
    );
    assert!(!err.contains("BEGIN") && !err.contains("PRIVATE"), "{err}");
    assert!(project.join("built/hello.wasm").is_file());
    let layout = project.join("out/hello");
    // The flag replaced one annotation of the file and kept the other.
    let annotations = index_annotations(&layout, "v1");
    assert_eq!(annotations["org.opencontainers.image.version"], "1.0.1");
    assert_eq!(
        annotations["org.opencontainers.image.source"],
        "https://example.com/hello"
    );
    let verify = pack_in(d)
        .arg("verify")
        .arg(format!("{}:v1", layout.display()))
        .arg("--key")
        .arg(&public)
        .output()
        .unwrap();
    assert_exit(&verify, 0);

    // PACK_TAG overrides the file, a flag overrides PACK_TAG; PACK_SIGN_KEY_FILE
    // overrides key-env, so MY_KEY is not needed.
    let build = |args: &[&str]| {
        pack_in(&project)
            .env("PACK_TAG", "v2")
            .env("PACK_SIGN_KEY_FILE", &private)
            .env("PACK_KEY_PASSWORD", "pw")
            .arg("build")
            .args(args)
            .output()
            .unwrap()
    };
    let out = build(&["--json"]);
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(json["tag"], "v2");
    assert_eq!(json["signed"], true);
    let out = build(&["--tag", "v3", "--json"]);
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(json["tag"], "v3");
    assert!(!stderr(&out).contains("deprecated"), "{}", stderr(&out));

    // The variable's old name still works for now, with a warning naming the new one.
    let out = pack_in(&project)
        .env("PACK_SIGN_KEY", &private)
        .env("PACK_KEY_PASSWORD", "pw")
        .args(["build", "--tag", "v4", "--json"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(json["signed"], true);
    assert_stderr_has(
        &out,
        "PACK_SIGN_KEY is deprecated: set PACK_SIGN_KEY_FILE instead",
    );

    // A component given on the command line skips the build command.
    std::fs::remove_file(project.join("built/hello.wasm")).unwrap();
    let out = build(&[
        fixture("components/hello-cli.wasm").to_str().unwrap(),
        "--json",
    ]);
    assert_exit(&out, 0);
    assert!(!stderr(&out).contains("built it"));
    assert!(!project.join("built/hello.wasm").exists());
}

#[test]
fn bad_manifests_and_missing_secrets_are_usage_errors_that_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = project(d);
    let manifest = std::fs::read_to_string(project.join("pack.toml")).unwrap();
    // `pack build` in `dir`: a usage error (exit 2); its stderr.
    let usage_error = |case: &str, dir: &Path| {
        let out = pack_in(dir).arg("build").output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{case}: {err}");
        err
    };

    let line = manifest.lines().position(|l| l == "tag = \"v1\"").unwrap() + 2;
    for (case, text, expected) in [
        // Naming the key, the file and the line.
        (
            "an unknown key",
            manifest.replace("tag = \"v1\"", "tag = \"v1\"\ntargest = [\"all\"]"),
            vec![format!("pack.toml:{line}"), "`targest`".to_string()],
        ),
        (
            "an unknown table",
            format!("{manifest}\n[signing]\nkey = \"k\"\n"),
            vec!["`signing`".to_string()],
        ),
        // Naming the variable; nothing is signed and the key's content is never printed.
        (
            "key-env names a variable that is not set",
            manifest.clone(),
            vec!["MY_KEY is not set".to_string()],
        ),
    ] {
        write(&project, "pack.toml", text);
        let err = usage_error(case, &project);
        for expected in expected {
            assert!(err.contains(&expected), "{case}: no {expected:?} in {err}");
        }
    }

    // Nothing to build from: a manifest-less directory says where a value may come from.
    let empty = d.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = usage_error("no manifest", &empty);
    assert!(
        err.contains("PACK_COMPONENT") && err.contains("pack.toml"),
        "{err}"
    );
}

#[test]
fn a_failing_build_command_exits_with_5_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path());
    edit_manifest(&project, |manifest| {
        let start = manifest.find("build = ").unwrap();
        let end = start + manifest[start..].find('\n').unwrap();
        format!(
            "{}build = \"echo compile error: missing semicolon >&2; exit 3\"{}",
            &manifest[..start],
            &manifest[end..]
        )
    });
    let out = pack_output(&project, &["build", "--quiet"]);
    assert_exit(&out, 5);
    let err = stderr(&out);
    assert!(err.contains("compile error: missing semicolon"), "{err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert!(stdout(&out).is_empty());
    assert!(!project.join("out").exists());
}

#[test]
fn quiet_prints_only_reference_and_digest_and_ci_logs_each_stage_with_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, _) = encrypted_key_pair(d, "ci", "pw");
    let project = project(d);
    let build = |args: &[&str]| {
        pack_with_secrets(&project, &private)
            .env("CI", "true")
            .env_remove("NO_COLOR")
            .arg("build")
            .args(args)
            .output()
            .unwrap()
    };

    let out = build(&["--quiet"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let (reference, digest) = text
        .strip_suffix('\n')
        .and_then(|t| t.split_once('@'))
        .unwrap_or_else(|| panic!("not REFERENCE@DIGEST: {text:?}"));
    assert_eq!(reference, "out/hello:v1");
    assert!(is_digest(digest), "{text:?}");
    assert!(!text.trim_end().contains('\n'), "one line only: {text:?}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // In CI: no colors, no bars, one line per stage with its duration.
    let out = build(&[]);
    assert_exit(&out, 0);
    let err = stderr(&out);
    assert!(
        !err.contains('\x1b') && !stdout(&out).contains('\x1b'),
        "{err}"
    );
    for stage in [
        "ran `mkdir",
        "validated ",
        "compiled 1 target(s)",
        "packaged ",
        "signed ",
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("no `{stage}` line in:\n{err}"));
        let time = line.rsplit(" in ").next().unwrap();
        assert!(
            time.ends_with(" ms") || time.ends_with(" s"),
            "no duration in `{line}`"
        );
    }
    assert!(
        stdout(&out).contains(digest),
        "the same bundle: {}",
        stdout(&out)
    );
}

#[test]
fn push_reads_pack_toml_and_quiet_prints_only_reference_and_digest() {
    let Some((registry, dir)) = registry_and_tempdir() else {
        return;
    };
    let d = dir.path();
    let project = project(d);
    // Unsigned, pushed to the registry.
    edit_manifest(&project, |manifest| {
        format!(
            "{manifest}\n[push]\nrepository = \"{}/team/hello\"\n",
            registry.addr()
        )
        .replace(
            "[sign]\nkey-env = \"MY_KEY\"\npassword-env = \"MY_PASSWORD\"\n",
            "",
        )
    });
    let out = pack_output(&project, &["build", "--json"]);
    assert_exit(&out, 0);
    let built: Value = json_stdout(&out);

    let out = pack_output(&project, &["push", "--quiet"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        format!(
            "{}/team/hello:v1@{}\n",
            registry.addr(),
            built["digest"].as_str().unwrap()
        )
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // Arguments still win over the file.
    let out = pack_in(&project)
        .args(["push", "out/hello:v1"])
        .arg(format!("{}/other/name:x", registry.addr()))
        .arg("--json")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(
        json["reference"],
        format!("{}/other/name:x", registry.addr())
    );
    assert_eq!(json["digest"], built["digest"]);
}

#[test]
fn init_writes_a_commented_manifest_that_builds_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixture("components/hello-http.wasm"), d.join("app.wasm")).unwrap();
    let out = pack_output(d, &["init", "app.wasm", "--json"]);
    assert_exit(&out, 0);
    let json: Value = json_stdout(&out);
    assert_eq!(json["kind"], "http-handler");
    assert_eq!(json["component"], "app.wasm");
    let text = std::fs::read_to_string(d.join("pack.toml")).unwrap();
    assert!(text.contains("wasi:http/incoming-handler"), "{text}");
    assert!(text.contains("path = \"app.wasm\""), "{text}");

    // It is kept unless --force.
    std::fs::write(d.join("pack.toml"), "# mine\n").unwrap();
    let out = pack_output(d, &["init", "app.wasm"]);
    assert_exit(&out, 2);
    assert_stderr_has(&out, "--force");
    assert_eq!(
        std::fs::read_to_string(d.join("pack.toml")).unwrap(),
        "# mine\n"
    );
    let out = pack_output(d, &["init", "app.wasm", "--force"]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, "wasi:http/proxy handler");
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".pack.toml"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // What it wrote builds (one target instead of the four, to keep the test short).
    let out = pack_in(d)
        .env("PACK_TARGET", "pulley64")
        .args(["build", "--quiet"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stdout(&out).starts_with("target/pack/app:latest@sha256:"),
        "{}",
        stdout(&out)
    );

    // A core module is not a component: nothing is written.
    let core = d.join("core");
    std::fs::create_dir_all(&core).unwrap();
    let out = pack_in(&core)
        .arg("init")
        .arg(fixture("mismatch/core-module.wasm"))
        .output()
        .unwrap();
    assert_exit(&out, 2);
    assert!(!core.join("pack.toml").exists());
}

/// Copies the example's manifest and WIT (not its build output) into `dir`.
fn example_project(dir: &Path) -> PathBuf {
    let project = dir.join("hello-http");
    let example = root().join("examples/hello-http");
    copy_dir(&example.join("wit"), &project.join("wit"));
    std::fs::copy(example.join("pack.toml"), project.join("pack.toml")).unwrap();
    project
}

#[test]
fn the_example_builds_from_its_pack_toml_and_serves_http() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (private, public) = encrypted_key_pair(d, "release", "pw");
    let project = example_project(d);
    let out = pack_in(&project)
        .env("PACK_COMPONENT", fixture("components/hello-http.wasm"))
        .env(
            "PACK_SIGN_KEY_PEM",
            std::fs::read_to_string(&private).unwrap(),
        )
        .env("PACK_KEY_PASSWORD", "pw")
        .args(["build", "--quiet"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let line = stdout(&out);
    let (reference, _) = line.trim_end().split_once('@').unwrap();
    assert_eq!(reference, "target/pack/hello-http:v0.1.0");

    let mut server = Spawned(
        Command::new(env!("CARGO_BIN_EXE_pack"))
            .current_dir(&project)
            .env("PACK_STORE", d.join("store"))
            .args(["run", reference, "--key"])
            .arg(&public)
            .args(["--listen", "127.0.0.1:0", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut events = BufReader::new(server.0.stderr.take().unwrap()).lines();
    let mut next = || -> Value {
        let line = events
            .next()
            .expect("pack run ended before it listened")
            .unwrap();
        json_str(&line)
    };
    let loaded = next();
    assert_eq!(loaded["event"], "loaded", "{loaded}");
    assert!(
        loaded["signedBy"].as_str().is_some_and(is_digest),
        "{loaded}"
    );
    let listening = next();
    assert_eq!(listening["event"], "listening", "{listening}");
    let addr = listening["address"].as_str().unwrap().to_string();

    let (status, body) = http_get(&addr, "/greet?name=ci");
    let request = next();

    server.signal("-TERM");
    let exit = next();
    let code = server.exit_code_within(Duration::from_secs(60));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "hello from pack: GET /greet?name=ci\n");
    assert_eq!(request["event"], "request");
    assert_eq!(request["status"], 200);
    assert_eq!(request["uri"], "/greet?name=ci");
    assert_eq!(exit["event"], "exit", "{exit}");
    assert_eq!(code, Some(0));
}

/// The fenced ```yaml block that follows `heading` in docs/ci.md.
fn yaml_after(doc: &str, heading: &str) -> String {
    let rest = &doc[doc
        .find(heading)
        .unwrap_or_else(|| panic!("no `{heading}` in docs/ci.md"))..];
    let open = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let close = rest[open..].find("```").expect("the end of the yaml block");
    rest[open..open + close].to_string()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The lines below `line_index` indented deeper than it, dedented.
fn block(lines: &[&str], line_index: usize) -> Vec<String> {
    let base = indent(lines[line_index]);
    let body: Vec<&str> = lines[line_index + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || indent(l) > base)
        .copied()
        .collect();
    let inner = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(inner..).unwrap_or("").to_string())
        .collect()
}

/// The GitHub Actions steps: (name, script) of every `run:` step, in order.
fn github_steps(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut steps = Vec::new();
    let mut name = String::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if let Some(n) = t.strip_prefix("- name: ") {
            name = n.to_string();
        } else if t.starts_with("- ") {
            name = String::new();
        }
        if t == "run: |" {
            steps.push((name.clone(), block(&lines, i).join("\n")));
        } else if let Some(script) = t.strip_prefix("run: ") {
            steps.push((name.clone(), script.to_string()));
        }
    }
    steps
}

/// The lines below the first line `key:` of `yaml` indented deeper than it, dedented.
fn block_of(yaml: &str, key: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim() == key)
        .unwrap_or_else(|| panic!("no `{key}` in {yaml}"));
    block(&lines, i)
}

/// The keys of the mapping `key:` (e.g. the job's `env:`).
fn mapping_keys(yaml: &str, key: &str) -> Vec<String> {
    block_of(yaml, key)
        .iter()
        .filter(|l| !l.starts_with(' ') && l.contains(':'))
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect()
}

/// The items of the list `key:` (GitLab's `script:`), each a shell command.
fn list_items(yaml: &str, key: &str) -> Vec<String> {
    block_of(yaml, key)
        .iter()
        .filter_map(|l| l.strip_prefix("- ").map(str::to_string))
        .collect()
}

/// Runs `script` with bash (`-e`, as CI runners do) in `dir` with `env`, and the pack
/// under test first on PATH.
fn run_script(dir: &Path, script: &str, env: &[(&str, String)]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_pack")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let mut cmd = Command::new("bash");
    clear_configuration(&mut cmd);
    cmd.current_dir(dir)
        .args(["-e", "-o", "pipefail", "-c", script])
        .env("PATH", path)
        .env("HOME", dir)
        .env("PACK_CACHE_DIR", dir.join(".cache"))
        .env("CI", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs `script` as [`run_script`] does; it must succeed (the panic names it as `what`).
#[track_caller]
fn run_ci_script(what: &str, dir: &Path, script: &str, env: &[(&str, String)]) {
    let out = run_script(dir, script, env);
    assert!(
        out.status.success(),
        "{what} failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
}

/// The value of `key` in `text`, lines of `KEY=VALUE` that a job wrote to `file`.
#[track_caller]
fn output_value(text: &str, key: &str, file: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {file}: {text}"))
        .to_string()
}

#[test]
fn the_ci_workflows_in_docs_run_verbatim_against_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Some(registry) = Registry::start_with_login(d, "alice", "wonderland") else {
        return;
    };
    let (private, public) = encrypted_key_pair(d, "release", "pw");
    let doc = std::fs::read_to_string(root().join("docs/ci.md")).unwrap();

    // What the CI service provides: the secrets and the job's variables.
    let secrets = |repo: &str, tag: &str| {
        vec![
            ("PACK_REPOSITORY", format!("{}/{repo}", registry.addr())),
            ("PACK_TAG", tag.to_string()),
            (
                "PACK_SIGN_KEY_PEM",
                std::fs::read_to_string(&private).unwrap(),
            ),
            ("PACK_KEY_PASSWORD", "pw".to_string()),
            ("PACK_REGISTRY_USERNAME", "alice".to_string()),
            ("PACK_REGISTRY_PASSWORD", "wonderland".to_string()),
            (
                "PACK_COMPONENT",
                fixture("components/hello-http.wasm").display().to_string(),
            ),
        ]
    };
    let pull_and_check = |reference: &str, digest: &str| {
        let out = pack_in(d)
            .args(["pull", reference, "-o"])
            .arg(d.join(format!("pulled-{}", digest.len())))
            .arg("--key")
            .arg(&public)
            .args(["-u", "alice", "--password-stdin", "--json"])
            .write_stdin("wonderland\n")
            .output()
            .unwrap();
        assert_exit(&out, 0);
        let json: Value = json_stdout(&out);
        assert_eq!(json["digest"], digest);
    };

    // GitHub Actions: every `run:` step after the one that installs pack.
    let github = yaml_after(&doc, "## GitHub Actions");
    let steps = github_steps(&github);
    let install = steps
        .iter()
        .position(|(name, _)| name == "Install pack")
        .expect("an `Install pack` step");
    let steps = &steps[install + 1..];
    assert!(steps.len() >= 2, "{steps:?}");
    let mut env = secrets("github/hello-http", "v1.2.3");
    for key in mapping_keys(&github, "env:") {
        assert!(
            env.iter().any(|(k, _)| *k == key),
            "the workflow's env sets {key}, which this test does not provide"
        );
    }
    let project = example_project(&d.join("github"));
    let output = d.join("github-output");
    std::fs::write(&output, "").unwrap();
    env.push(("GITHUB_OUTPUT", output.display().to_string()));
    env.push((
        "GITHUB_SHA",
        "0123456789abcdef0123456789abcdef01234567".to_string(),
    ));
    for (name, script) in steps {
        run_ci_script(&format!("step `{name}`"), &project, script, &env);
    }
    let outputs = std::fs::read_to_string(&output).unwrap();
    let get = |key: &str| output_value(&outputs, key, "GITHUB_OUTPUT");
    let (reference, digest) = (get("reference"), get("digest"));
    assert!(is_digest(&digest), "{outputs}");
    assert_eq!(
        reference,
        format!("{}/github/hello-http:v1.2.3@{digest}", registry.addr())
    );
    pull_and_check(&reference, &digest);
    let annotations = index_annotations(&project.join("target/pack/hello-http"), "v1.2.3");
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        "0123456789abcdef0123456789abcdef01234567"
    );

    // GitLab CI: the job's `script:`, in one shell as the runner does.
    let gitlab = yaml_after(&doc, "## GitLab CI");
    let script = list_items(&gitlab, "script:").join("\n");
    let project = example_project(&d.join("gitlab"));
    let mut env = secrets("gitlab/hello-http", "v2.0.0");
    env.push((
        "CI_COMMIT_SHA",
        "fedcba9876543210fedcba9876543210fedcba98".to_string(),
    ));
    run_ci_script("the GitLab job", &project, &script, &env);
    let dotenv = std::fs::read_to_string(project.join("pack.env")).unwrap();
    let get = |key: &str| output_value(&dotenv, key, "pack.env");
    let (reference, digest) = (get("PACK_REFERENCE"), get("PACK_DIGEST"));
    assert_eq!(
        reference,
        format!("{}/gitlab/hello-http:v2.0.0@{digest}", registry.addr())
    );
    pull_and_check(&reference, &digest);
}
