//! The README's examples, run. Every ```` ```console ```` block of README.md is part of one
//! session in one directory, the blocks in order: each `$ ` line is a command run by `sh`
//! (with the `pack` under test first on PATH), and the lines after it are what it prints,
//! stdout and stderr as they interleave. The session starts with `app.wasm` (the
//! hello-cli fixture), `calc.wasm` and `wit/` (the hello-cli world), a registry that
//! wants `alice`/`wonderland` at `localhost:5000`, and a home directory of its own
//! (`/home/me`).
//!
//! Compared as placeholders: digests and other hex strings of 12 or more digits,
//! durations, sizes (signatures differ in length by a byte or two, and sizes are
//! rounded), and the registry's and home directory's real names. `...` in the README
//! stands for any lines. Lines a terminal shows as progress bars (`linux/amd64:
//! compiling`, and how a target's compile ended with the function cache's counts) are not
//! in the README and are left out.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::registry::Registry;

/// A line that is a progress bar on a terminal: `linux/amd64: compiling`, `linux/amd64:
/// compiled in 1.2 s: 316 functions compiled, 0 from the function cache`.
fn is_progress(line: &str) -> bool {
    line.ends_with(": compiling")
        || (line.contains(": compiled in ") && line.ends_with(" from the function cache"))
}

/// One command of a console block and the lines it should print.
struct Step {
    command: String,
    expected: Vec<String>,
}

fn console_steps(readme: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_console = false;
    for line in readme.lines() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.starts_with("```") {
            in_console = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_string(),
                expected: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.expected.push(line.to_string());
        }
    }
    steps
}

/// Hex runs of 12 or more digits become `<hex>`, durations `<time>`.
fn placeholders(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let boundary = |c: Option<&char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
    while i < chars.len() {
        let start = i;
        if boundary(start.checked_sub(1).and_then(|p| chars.get(p))) {
            let mut end = i;
            while end < chars.len() && matches!(chars[end], '0'..='9' | 'a'..='f') {
                end += 1;
            }
            if end - start >= 12 && boundary(chars.get(end)) {
                out.push_str("<hex>");
                i = end;
                continue;
            }
            // A duration: digits, an optional fraction, then ` ms` or ` s`.
            let mut end = i;
            while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.') {
                end += 1;
            }
            if end > start && chars[start].is_ascii_digit() {
                let rest: String = chars[end..].iter().take(5).collect();
                let units = [(" ms", "<time>"), (" s", "<time>"), (" B", "<size>")]
                    .into_iter()
                    .chain([(" KiB", "<size>"), (" MiB", "<size>")]);
                for (unit, placeholder) in units {
                    if rest.starts_with(unit) && boundary(chars.get(end + unit.len())) {
                        out.push_str(placeholder);
                        i = end + unit.len();
                        break;
                    }
                }
                if i != start {
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out.trim_end().to_string()
}

/// Whether `actual` matches `expected`, where a `...` line stands for any lines.
fn matches(expected: &[String], actual: &[String]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| a == first && matches(rest, more)),
    }
}

#[test]
fn the_readme_examples_print_what_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    let Some(registry) = Registry::start_with_login(dir.path(), "alice", "wonderland") else {
        return;
    };
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::copy(fixture("components/hello-cli.wasm"), home.join("app.wasm")).unwrap();
    std::fs::copy(fixture("components/calc.wasm"), home.join("calc.wasm")).unwrap();
    copy_dir(&fixture("wit/hello-cli"), &home.join("wit"));

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let steps = console_steps(&readme);
    assert!(
        steps.len() >= 10,
        "the README's console examples: {}",
        steps.len()
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_pack")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let home_text = home.to_str().unwrap();
    let mut failures = Vec::new();
    for step in &steps {
        let command = step.command.replace("localhost:5000", registry.addr());
        let mut cmd = Command::new("sh");
        clear_configuration(&mut cmd);
        let out = cmd
            .arg("-c")
            .arg(format!("{command} 2>&1"))
            .current_dir(&home)
            .env("PATH", &path)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .env("PACK_KEY_PASSWORD", "pw")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout)
            .replace(registry.addr(), "localhost:5000")
            .replace(home_text, "/home/me");
        let actual: Vec<String> = text
            .lines()
            .filter(|l| !is_progress(l))
            .map(placeholders)
            .collect();
        let expected: Vec<String> = step.expected.iter().map(|l| placeholders(l)).collect();
        if !matches(&expected, &actual) {
            failures.push(format!(
                "$ {}\n--- the README says:\n{}\n--- it printed (exit {:?}):\n{}",
                step.command,
                step.expected.join("\n"),
                out.status.code(),
                text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn placeholders_and_wildcards() {
    assert_eq!(
        placeholders("✓ built out/app:v1 in 849 ms (sha256:3ae72de774a0)"),
        "✓ built out/app:v1 in <time> (sha256:<hex>)"
    );
    assert_eq!(
        placeholders("key 7a81168114b8cae7, 1.2 s, 345.7 KiB, 230993 B in 11 blobs"),
        "key <hex>, <time>, <size>, <size> in 11 blobs"
    );
    assert_eq!(placeholders("ids 12 msgs"), "ids 12 msgs");
    let lines = |s: &str| s.lines().map(String::from).collect::<Vec<_>>();
    assert!(matches(&lines("a\n...\nd"), &lines("a\nb\nc\nd")));
    assert!(matches(&lines("a\n..."), &lines("a")));
    assert!(!matches(&lines("a\nd"), &lines("a\nb\nd")));
}
