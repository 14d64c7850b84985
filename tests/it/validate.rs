//! `pack validate`: every mismatch kind, the semver rule, bad input, `--json`, and the
//! corpus verdicts (cross-checked against `wasm-tools component targets`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve};

use crate::common::*;

/// Builds a component whose type is `world` of `wit` (a dummy core module inside), so a
/// test states exactly what the component imports and exports.
fn component(dir: &Path, name: &str, wit: &str, world: &str) -> PathBuf {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str(format!("{name}.wit"), wit).unwrap();
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    let mut module =
        wit_component::dummy_module(&resolve, world, ManglingAndAbi::Legacy(LiftLowerAbi::Sync));
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)
        .unwrap();
    let bytes = ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    write(dir, &format!("{name}.wasm"), bytes)
}

fn validate(
    component: &Path,
    wit: &Path,
    world: Option<&str>,
    extra: &[&str],
) -> std::process::Output {
    let mut cmd = pack();
    cmd.arg("validate").arg(component).arg("--wit").arg(wit);
    if let Some(world) = world {
        cmd.args(["--world", world]);
    }
    cmd.args(extra).output().unwrap()
}

fn validate_json(
    component: &Path,
    wit: &Path,
    world: Option<&str>,
    extra: &[&str],
) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = validate(component, wit, world, &args);
    let code = out.status.code().unwrap();
    let json = json_stdout(&out);
    (code, json)
}

fn mismatches(json: &Value) -> Vec<(String, String)> {
    json["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["item"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The world the tests check against: a calculator export and a versioned dependency.
const HOST_WIT: &str = r#"
package fixtures:host;

world app {
    import fixtures:dep/api@0.1.9;
    export fixtures:calc/calculator@0.1.0;
}

package fixtures:dep@0.1.9 {
    interface api {
        record entry { key: string, value: u64 }
        get: func(key: string) -> option<entry>;
    }
}

package fixtures:calc@0.1.0 {
    interface calculator {
        record point { x: s64, y: s64 }
        variant shape { dot(point), line(tuple<point, point>) }
        add: func(a: u64, b: u64) -> u64;
        sum: func(values: list<s64>) -> s64;
        midpoint: func(a: point, b: point) -> point;
        area: func(s: shape) -> result<f64, string>;
    }
}
"#;

/// A component that matches HOST_WIT's `app`, except for what `calc` and `dep` change.
fn app_wit(dep_version: &str, dep_items: &str, calc_items: &str) -> String {
    format!(
        r#"
package fixtures:app;

world app {{
    import fixtures:dep/api@{dep_version};
    export fixtures:calc/calculator@0.1.0;
}}

package fixtures:dep@{dep_version} {{
    interface api {{
        record entry {{ key: string, value: u64 }}
        {dep_items}
    }}
}}

package fixtures:calc@0.1.0 {{
    interface calculator {{
        record point {{ x: s64, y: s64 }}
        variant shape {{ dot(point), line(tuple<point, point>) }}
        {calc_items}
    }}
}}
"#
    )
}

const GOOD_DEP: &str = "get: func(key: string) -> option<entry>;";
const GOOD_CALC: &str = "
    add: func(a: u64, b: u64) -> u64;
    sum: func(values: list<s64>) -> s64;
    midpoint: func(a: point, b: point) -> point;
    area: func(s: shape) -> result<f64, string>;";

/// Asserts that a `pack validate --json` run that exited `code` with the report `json`
/// found exactly the `expected` (kind, item) mismatches, in any order, and so exited 1
/// (0 when none are expected).
#[track_caller]
fn assert_mismatches(code: i32, json: &Value, expected: &[(&str, &str)]) {
    let what = format!("{} against {}", json["component"], json["world"]);
    let mut found = mismatches(json);
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|&(kind, item)| (kind.to_string(), item.to_string()))
        .collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected, "{what}");
    assert_eq!(code, if expected.is_empty() { 0 } else { 1 }, "{what}");
}

/// A test's directory, with HOST_WIT written in it.
struct Setup {
    dir: tempfile::TempDir,
    host: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let host = write(dir.path(), "host/world.wit", HOST_WIT);
    Setup { dir, host }
}

impl Setup {
    /// A component of the `app` world of `wit`, `name.wasm` in the test's directory.
    fn component(&self, name: &str, wit: &str) -> PathBuf {
        component(self.dir.path(), name, wit, "app")
    }

    /// `good.wasm`: a component that matches HOST_WIT's `app` exactly.
    fn good_component(&self) -> PathBuf {
        self.component("good", &app_wit("0.1.9", GOOD_DEP, GOOD_CALC))
    }

    /// `pack validate COMPONENT --wit HOST --world app EXTRA`.
    fn validate(&self, component: &Path, extra: &[&str]) -> std::process::Output {
        validate(component, &self.host, Some("app"), extra)
    }

    /// [`Setup::validate`] with `--json`: (exit code, report).
    fn validate_json(&self, component: &Path, extra: &[&str]) -> (i32, Value) {
        validate_json(component, &self.host, Some("app"), extra)
    }

    /// The message of `pack validate` for `component`, which it must reject as bad input.
    fn bad(&self, component: &Path) -> String {
        bad(component, &self.host, Some("app"))
    }
}

#[test]
fn conforming_component_exits_zero() {
    let s = setup();
    let c = s.good_component();
    let out = s.validate(&c, &[]);
    assert_exit(&out, 0);
    assert_stdout_has(&out, "conforms to fixtures:host/app");
    // The world may be named fully qualified too.
    let out = validate(&c, &s.host, Some("fixtures:host/app"), &[]);
    assert_exit(&out, 0);
    // Exact names: also conforms with --strict.
    let out = s.validate(&c, &["--strict"]);
    assert_exit(&out, 0);
}

#[test]
fn missing_export() {
    let s = setup();
    let wit = r#"
        package fixtures:app;
        world app { import fixtures:dep/api@0.1.9; }
        package fixtures:dep@0.1.9 { interface api { record entry { key: string, value: u64 } get: func(key: string) -> option<entry>; } }
    "#;
    let c = s.component("noexport", wit);
    let (code, json) = s.validate_json(&c, &[]);
    assert_mismatches(
        code,
        &json,
        &[("missing-export", "fixtures:calc/calculator@0.1.0")],
    );
    assert_eq!(json["verdict"], "does-not-conform");
}

#[test]
fn missing_function_in_exported_interface() {
    let s = setup();
    let calc = GOOD_CALC.replace("sum: func(values: list<s64>) -> s64;", "");
    let c = s.component("nosum", &app_wit("0.1.9", GOOD_DEP, &calc));
    let (code, json) = s.validate_json(&c, &[]);
    assert_mismatches(
        code,
        &json,
        &[("missing-export", "fixtures:calc/calculator@0.1.0#sum")],
    );
}

#[test]
fn import_not_provided() {
    let s = setup();
    let wit = format!(
        "{}\npackage fixtures:extra@1.0.0 {{ interface log {{ write: func(msg: string); }} }}",
        app_wit("0.1.9", GOOD_DEP, GOOD_CALC).replace(
            "import fixtures:dep/api@0.1.9;",
            "import fixtures:dep/api@0.1.9;\n    import fixtures:extra/log@1.0.0;"
        )
    );
    let c = s.component("extra", &wit);
    let out = s.validate(&c, &[]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(text.contains("import not provided"), "{text}");
    assert!(text.contains("fixtures:extra/log@1.0.0"), "{text}");
}

#[test]
fn item_missing_from_worlds_version() {
    let s = setup();
    // The component was built against a newer 0.1.x that has `put`; the world's 0.1.9 does
    // not, so linking fails on that one item although the name matches.
    let dep = "get: func(key: string) -> option<entry>;\n put: func(e: entry);";
    let c = s.component("newer", &app_wit("0.1.12", dep, GOOD_CALC));
    let (code, json) = s.validate_json(&c, &[]);
    assert_mismatches(
        code,
        &json,
        &[("item-missing", "fixtures:dep/api@0.1.12#put")],
    );
    let notes = json["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("fixtures:dep/api@0.1.9")),
        "{notes:?}"
    );
}

#[test]
fn type_mismatches_name_the_path() {
    let s = setup();
    let calc = "
        add: func(a: u32, b: u64) -> u64;
        sum: func(values: list<s32>) -> s64;
        midpoint: func(a: point, b: point) -> tuple<s64, s64>;
        area: func(s: shape) -> result<f32, string>;";
    let c = s.component("types", &app_wit("0.1.9", GOOD_DEP, calc));
    let out = s.validate(&c, &[]);
    assert_exit(&out, 1);
    let text = stdout(&out);
    for expected in [
        "export fixtures:calc/calculator@0.1.0#add > param a: expected u64, found u32",
        "export fixtures:calc/calculator@0.1.0#sum > param values > list element: expected s64, found s32",
        "export fixtures:calc/calculator@0.1.0#midpoint > result: expected record point, found tuple<s64, s64>",
        "export fixtures:calc/calculator@0.1.0#area > result > ok: expected f64, found f32",
        "4 mismatches",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn record_field_and_variant_case_mismatches() {
    let s = setup();
    let wit = app_wit("0.1.9", GOOD_DEP, GOOD_CALC)
        .replace(
            "record point { x: s64, y: s64 }",
            "record point { x: s64, y: string }",
        )
        .replace(
            "record entry { key: string, value: u64 }",
            "record entry { key: string, val: u64 }",
        );
    let c = s.component("fields", &wit);
    let (code, json) = s.validate_json(&c, &[]);
    assert_eq!(code, 1);
    let all = strings_of(&json["mismatches"], "message").join("\n");
    assert!(all.contains("import fixtures:dep/api@0.1.9#entry: expected record with fields (key, value), found record with fields (key, val)"), "{all}");
    assert!(
        all.contains(
            "export fixtures:calc/calculator@0.1.0#point > field y: expected s64, found string"
        ),
        "{all}"
    );
    // The same difference, reached through the variant that carries a point.
    assert!(
        all.contains("#shape > case dot > field y: expected s64, found string"),
        "{all}"
    );
    let m = &json["mismatches"].as_array().unwrap()[0];
    assert_eq!(m["kind"], "type-mismatch");
    assert!(m["expected"].is_string() && m["found"].is_string());
}

#[test]
fn semver_compatible_versions_link_both_ways() {
    let s = setup();
    for version in ["0.1.5", "0.1.9", "0.1.30"] {
        let c = s.component(
            &format!("v{version}"),
            &app_wit(version, GOOD_DEP, GOOD_CALC),
        );
        let (code, json) = s.validate_json(&c, &[]);
        assert_eq!(code, 0, "{version}: {json}");
        if version != "0.1.9" {
            let note = json["notes"][0].as_str().unwrap();
            assert!(
                note.contains(&format!("fixtures:dep/api@{version}")) && note.contains("@0.1.9"),
                "{note}"
            );
            // --strict: exact names only, as wasm-tools component targets.
            let (code, json) = s.validate_json(&c, &["--strict"]);
            let api = format!("fixtures:dep/api@{version}");
            assert_mismatches(code, &json, &[("import-not-provided", &api)]);
        }
    }
    // 0.2.x is not compatible with 0.1.x.
    let c = s.component("v0.2", &app_wit("0.2.0", GOOD_DEP, GOOD_CALC));
    let (code, json) = s.validate_json(&c, &[]);
    assert_mismatches(
        code,
        &json,
        &[("import-not-provided", "fixtures:dep/api@0.2.0")],
    );
}

#[test]
fn every_mismatch_is_reported() {
    let s = setup();
    let wit = r#"
        package fixtures:app;
        world app {
            import fixtures:dep/api@0.1.9;
            import fixtures:other/thing@2.0.0;
            export fixtures:calc/calculator@0.1.0;
        }
        package fixtures:dep@0.1.9 { interface api { extra: func(); get: func(key: string) -> option<u8>; } }
        package fixtures:other@2.0.0 { interface thing { f: func(); } }
        package fixtures:calc@0.1.0 { interface calculator { add: func(a: u64, b: u64) -> u64; } }
    "#;
    let c = s.component("many", wit);
    let (code, json) = s.validate_json(&c, &[]);
    assert_eq!(code, 1);
    let found = mismatches(&json);
    for expected in [
        ("item-missing", "fixtures:dep/api@0.1.9#extra"),
        ("type-mismatch", "fixtures:dep/api@0.1.9#get"),
        ("import-not-provided", "fixtures:other/thing@2.0.0"),
        ("missing-export", "fixtures:calc/calculator@0.1.0#point"),
        ("missing-export", "fixtures:calc/calculator@0.1.0#sum"),
        ("missing-export", "fixtures:calc/calculator@0.1.0#midpoint"),
        ("missing-export", "fixtures:calc/calculator@0.1.0#area"),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1.to_string())),
            "missing {expected:?} in {found:?}"
        );
    }
}

#[test]
fn json_report_shape() {
    let s = setup();
    let c = s.good_component();
    let (code, json) = s.validate_json(&c, &[]);
    assert_eq!(code, 0);
    assert_eq!(json["verdict"], "conforms");
    assert_eq!(json["conforms"], true);
    assert_eq!(json["world"], "fixtures:host/app");
    assert_eq!(json["strict"], false);
    assert_eq!(
        json["imports"],
        serde_json::json!(["fixtures:dep/api@0.1.9"])
    );
    assert_eq!(
        json["exports"],
        serde_json::json!(["fixtures:calc/calculator@0.1.0"])
    );
    assert_eq!(json["mismatches"], serde_json::json!([]));
    assert_eq!(json["component"], c.to_str().unwrap());
}

// ---- bad input: exit 2 with a precise message ----

fn bad(component: &Path, wit: &Path, world: Option<&str>) -> String {
    let out = validate(component, wit, world, &[]);
    assert_exit(&out, 2);
    assert!(out.stdout.is_empty(), "nothing on stdout for bad input");
    stderr(&out)
}

#[test]
fn bad_input_component_files() {
    let s = setup();
    let d = s.dir.path();
    let missing = d.join("nope.wasm");
    let err = s.bad(&missing);
    assert!(
        err.contains("cannot read") && err.contains("nope.wasm"),
        "{err}"
    );

    let text = write(d, "notes.wasm", "hello there\nthis is text\n");
    let err = s.bad(&text);
    assert!(
        err.contains("notes.wasm")
            && err.contains("is not a WebAssembly binary")
            && err.contains("\"hello there\""),
        "{err}"
    );

    let png = write(d, "image.wasm", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    assert!(s.bad(&png).contains("PNG image"));

    let wat = write(d, "text.wasm", "(component)");
    assert!(s.bad(&wat).contains("WebAssembly text"));

    let module = write(d, "core.wasm", wat::parse_str("(module (func))").unwrap());
    let err = s.bad(&module);
    assert!(
        err.contains("core.wasm") && err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");

    let invalid = write(
        d,
        "invalid.wasm",
        wat::parse_str("(component (core module (func (result i32) i64.const 0)))").unwrap(),
    );
    let err = s.bad(&invalid);
    assert!(
        err.contains("invalid.wasm") && err.contains("not valid WebAssembly"),
        "{err}"
    );
    assert!(
        err.contains("type mismatch") && err.contains("at offset 0x"),
        "{err}"
    );

    let mut truncated = std::fs::read(s.good_component()).unwrap();
    truncated.truncate(truncated.len() / 2);
    let truncated = write(d, "truncated.wasm", truncated);
    let err = s.bad(&truncated);
    assert!(
        err.contains("truncated.wasm") && err.contains("at offset"),
        "{err}"
    );
}

#[test]
fn bad_input_wit_and_world() {
    let s = setup();
    let d = s.dir.path();
    let c = s.good_component();

    let broken = write(
        d,
        "broken/world.wit",
        "package a:b;\n\nworld w {\n  import nope: func(x: u32) ->;\n}\n",
    );
    let err = bad(&c, &broken, None);
    assert!(err.contains("world.wit:4:"), "file and line: {err}");
    assert!(err.contains("import nope"), "snippet: {err}");

    let err = bad(&c, &d.join("no-such-dir"), None);
    assert!(err.contains("no-such-dir"), "{err}");

    let err = bad(&c, &s.host, Some("nosuch"));
    assert!(
        err.contains("no world `nosuch`") && err.contains("fixtures:host/app"),
        "{err}"
    );

    let two = write(d, "two/w.wit", "package a:b;\nworld one {}\nworld two {}\n");
    let err = bad(&c, &two, None);
    assert!(
        err.contains("more than one world") && err.contains("a:b/one") && err.contains("a:b/two"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_two() {
    let out = pack().args(["validate", "x.wasm"]).output().unwrap();
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--wit"));
    let out = pack().args(["validate", "--help"]).output().unwrap();
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("Examples:") && stdout(&out).contains("Exit status:"));
}

// ---- the corpus ----

/// (component, WIT, world, conforms, conforms with --strict)
const CORPUS_VERDICTS: &[(&str, &str, &str, bool, bool)] = &[
    ("c-cli", "wasi-wit-0.2.12", "cli", true, true),
    ("py-cli", "wasi-wit-0.2.12", "cli", true, false),
    ("js-hello-qjs", "hello/hello.wit", "", true, true),
    ("js-http-proxy-sm", "wasi-wit-0.2.12", "http", false, false),
];

#[test]
fn corpus_verdicts() {
    let Some(_) = corpus_dir() else { return };
    for &(name, wit, world, conforms, strict) in CORPUS_VERDICTS {
        let component = corpus(name).unwrap();
        let wit = corpus_wit(wit).unwrap();
        let world = (!world.is_empty()).then_some(world);
        let (code, _) = validate_json(&component, &wit, world, &[]);
        assert_eq!(code, if conforms { 0 } else { 1 }, "{name}");
        let (code, _) = validate_json(&component, &wit, world, &["--strict"]);
        assert_eq!(code, if strict { 0 } else { 1 }, "{name} --strict");
    }
}

#[test]
fn proxy_world_lacks_seven_imports() {
    let Some(component) = corpus("js-http-proxy-sm") else {
        return;
    };
    let wit = corpus_wit("wasi-wit-0.2.12").unwrap();
    let (code, json) = validate_json(&component, &wit, Some("http"), &[]);
    assert_eq!(code, 1);
    let found = mismatches(&json);
    let missing: Vec<&str> = found
        .iter()
        .filter(|(kind, _)| kind == "import-not-provided")
        .map(|(_, item)| item.as_str())
        .collect();
    for iface in [
        "wasi:cli/terminal-input",
        "wasi:cli/terminal-output",
        "wasi:cli/terminal-stdin",
        "wasi:cli/terminal-stdout",
        "wasi:cli/terminal-stderr",
        "wasi:filesystem/types",
        "wasi:filesystem/preopens",
    ] {
        assert!(
            missing.iter().any(|m| m.starts_with(&format!("{iface}@"))),
            "{iface} not reported in {missing:?}"
        );
    }
    assert_eq!(missing.len(), 7, "{found:?}");
    assert_eq!(found.len(), 7, "nothing else differs: {found:?}");
}

#[test]
fn py_cli_links_through_semver_notes() {
    let Some(component) = corpus("py-cli") else {
        return;
    };
    let wit = corpus_wit("wasi-wit-0.2.12").unwrap();
    let out = validate(&component, &wit, Some("cli"), &[]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("`wasi:io/poll@0.2.9` is provided by the world's `wasi:io/poll@0.2.12`"),
        "{text}"
    );
    assert!(
        text.contains("`wasi:cli/run@0.2.12` is served by the component's `wasi:cli/run@0.2.0`"),
        "{text}"
    );
}

/// `--strict` gives the same verdict as `wasm-tools component targets`, on the corpus
/// and on the generated mismatch cases.
#[test]
fn strict_agrees_with_wasm_tools() {
    let Some(wasm_tools) = tool("wasm-tools") else {
        return;
    };
    let targets = |component: &Path, wit: &Path, world: Option<&str>| -> bool {
        let mut cmd = std::process::Command::new(&wasm_tools);
        cmd.args(["component", "targets"]).arg(wit).arg(component);
        if let Some(world) = world {
            cmd.args(["--world", world]);
        }
        cmd.output().unwrap().status.success()
    };
    let mut cases: Vec<(PathBuf, PathBuf, Option<String>)> = Vec::new();
    if corpus_dir().is_some() {
        for &(name, wit, world, _, _) in CORPUS_VERDICTS {
            cases.push((
                corpus(name).unwrap(),
                corpus_wit(wit).unwrap(),
                (!world.is_empty()).then(|| world.to_string()),
            ));
        }
    }
    let s = setup();
    for (name, wit) in [
        ("good", app_wit("0.1.9", GOOD_DEP, GOOD_CALC)),
        ("older", app_wit("0.1.5", GOOD_DEP, GOOD_CALC)),
        (
            "types",
            app_wit("0.1.9", GOOD_DEP, "add: func(a: u32, b: u64) -> u64;"),
        ),
        (
            "fields",
            app_wit("0.1.9", GOOD_DEP, GOOD_CALC).replace("x: s64, y: s64", "x: s64, y: s32"),
        ),
    ] {
        cases.push((s.component(name, &wit), s.host.clone(), Some("app".into())));
    }
    for (component, wit, world) in cases {
        let ours = validate(&component, &wit, world.as_deref(), &["--strict"])
            .status
            .code();
        let theirs = targets(&component, &wit, world.as_deref());
        assert_eq!(
            ours == Some(0),
            theirs,
            "{}: pack --strict says {ours:?}, wasm-tools says {theirs}",
            component.display()
        );
    }
}

// ---- the project's own fixtures (fixtures/README.md, fixtures/mismatch/README.md) ----

#[test]
fn own_components_conform() {
    for (component, wit, world) in [
        ("components/hello-cli.wasm", "wit/hello-cli", "hello-cli"),
        ("components/calc.wasm", "wit/calc", "calc-wasi"),
    ] {
        let (code, json) = validate_json(&fixture(component), &fixture(wit), Some(world), &[]);
        assert_eq!(code, 0, "{component}: {json}");
    }
    // calc's Rust std adds WASI imports that the export-only `calc` world lacks.
    let (code, json) = validate_json(
        &fixture("components/calc.wasm"),
        &fixture("wit/calc"),
        Some("calc"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        mismatches(&json)
            .iter()
            .all(|(kind, item)| kind == "import-not-provided" && item.starts_with("wasi:"))
    );
}

#[test]
fn mismatch_fixtures() {
    const CALC: &str = "fixtures:calc/calculator@0.1.0";
    // (fixture, WIT, world, [(mismatch kind, item)])
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, &str, &str, &[(&str, &str)])] = &[
        (
            "export-nothing",
            "wit/calc",
            "calc",
            &[("missing-export", CALC)],
        ),
        (
            "export-wrong-interface",
            "wit/calc",
            "calc",
            &[("missing-export", CALC)],
        ),
        (
            "export-calculator-0.2.0",
            "wit/calc",
            "calc",
            &[("missing-export", CALC)],
        ),
        (
            "export-missing-function",
            "wit/calc",
            "calc",
            &[("missing-export", "fixtures:calc/calculator@0.1.0#describe")],
        ),
        (
            "import-not-provided",
            "wit/calc",
            "calc",
            &[("import-not-provided", "fixtures:calc/logger@0.1.0")],
        ),
        (
            "dep-api-0.1.5",
            "mismatch/worlds",
            "dep-v010",
            &[("item-missing", "fixtures:dep/api@0.1.5#extra")],
        ),
        ("dep-api-0.1.5", "mismatch/worlds", "dep-v019", &[]),
        (
            "dep-api-0.2.0",
            "mismatch/worlds",
            "dep-v019",
            &[("import-not-provided", "fixtures:dep/api@0.2.0")],
        ),
        (
            "type-param",
            "wit/calc",
            "calc",
            &[("type-mismatch", "fixtures:calc/calculator@0.1.0#add")],
        ),
        (
            "type-list-element",
            "wit/calc",
            "calc",
            &[("type-mismatch", "fixtures:calc/calculator@0.1.0#sum")],
        ),
        (
            "type-result",
            "wit/calc",
            "calc",
            &[("type-mismatch", "fixtures:calc/calculator@0.1.0#sum")],
        ),
        (
            "type-record-field",
            "wit/calc",
            "calc",
            &[
                ("type-mismatch", "fixtures:calc/calculator@0.1.0#summary"),
                ("type-mismatch", "fixtures:calc/calculator@0.1.0#stats"),
            ],
        ),
        (
            "type-variant-case",
            "wit/calc",
            "calc",
            &[
                ("type-mismatch", "fixtures:calc/calculator@0.1.0#calc-error"),
                ("type-mismatch", "fixtures:calc/calculator@0.1.0#apply"),
            ],
        ),
    ];
    for (file, wit, world, expected) in cases {
        let component = fixture(&format!("mismatch/{file}.wasm"));
        let (code, json) = validate_json(&component, &fixture(wit), Some(world), &[]);
        assert_mismatches(code, &json, expected);
    }
}

#[test]
fn broken_fixture_files() {
    let world = fixture("wit/calc");
    for (file, expected) in [
        (
            "core-module.wasm",
            "core WebAssembly module, not a component",
        ),
        (
            "invalid-section-id.wasm",
            "malformed section id (at offset 0x8f)",
        ),
        ("invalid-function-body.wasm", "(at offset 0x59)"),
        ("truncated-component.wasm", "(at offset 0x3cb)"),
        ("component-version-0xe.wasm", "encoding version 0xe"),
        ("truncated-header.wasm", "truncated wasm header"),
        ("empty.wasm", "the file is empty"),
        ("not-wasm.txt", "the file is text"),
        ("wat-text.wasm", "WebAssembly text"),
        ("png-header.png", "PNG image"),
        ("zip-header.zip", "zip archive"),
    ] {
        let err = bad(&fixture(&format!("mismatch/{file}")), &world, Some("calc"));
        assert!(
            err.contains(file) && err.contains(expected),
            "{file}: {err}"
        );
    }
}
