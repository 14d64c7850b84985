//! Checking a component against a WIT world: "will it link on a host that provides
//! this world?"
//!
//! The component's own type is decoded into WIT and compared item by item with the
//! world. Names are matched the way wasmtime 48's component linker matches them: an
//! exact name first, then (unless `strict`) a semver-compatible one, so an import of
//! `wasi:io/poll@0.2.9` is served by the world's `wasi:io/poll@0.2.12`. Types are then
//! compared structurally, resources by identity. Every mismatch is reported, not only
//! the first.

use semver::Version;
use serde::Serialize;
use wit_parser::{
    Function, Handle, InterfaceId, Resolve, Type, TypeDefKind, TypeId, TypeOwner, WorldId,
    WorldItem,
};

use crate::wasm::Input;
use crate::wit::Wit;
use crate::{Error, Result};

/// How names are matched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Exact names only (versions included): the verdict of
    /// `wasm-tools component targets`.
    pub strict: bool,
}

/// The outcome of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub conforms: bool,
    /// The world checked against, fully qualified.
    pub world: String,
    pub strict: bool,
    /// The component's imports, by name.
    pub imports: Vec<String>,
    /// The component's exports, by name.
    pub exports: Vec<String>,
    pub mismatches: Vec<Mismatch>,
    /// Differences that still link, e.g. a semver-compatible version.
    pub notes: Vec<String>,
}

/// What kind of mismatch was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MismatchKind {
    /// The world requires an export that the component does not have.
    MissingExport,
    /// The component imports something that the world does not provide.
    ImportNotProvided,
    /// The component imports an item that the world's version of the interface lacks.
    ItemMissing,
    /// Both sides have the item but with incompatible types.
    TypeMismatch,
}

impl MismatchKind {
    pub fn describe(self) -> &'static str {
        match self {
            MismatchKind::MissingExport => "missing export",
            MismatchKind::ImportNotProvided => "import not provided",
            MismatchKind::ItemMissing => "item missing from the world",
            MismatchKind::TypeMismatch => "type mismatch",
        }
    }
}

/// One mismatch between the component and the world.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub kind: MismatchKind,
    /// The full name of the item, e.g. `wasi:io/poll@0.2.9#poll` or
    /// `fixtures:calc/calculator@0.1.0#add`.
    pub item: String,
    /// For type mismatches, the path from the item to the difference, e.g.
    /// `["param a"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
    /// What the world has (type mismatches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What the component has (type mismatches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// One line for people, e.g. `export add > param a: expected u64, found u32`.
    pub message: String,
}

/// Validates `input` completely, decodes its WIT and checks it against `world` in
/// `wit`. Validation of function bodies runs in parallel with decoding.
pub fn check(input: &Input, wit: &Wit, world: WorldId, options: Options) -> Result<Report> {
    let (resolve, component_world) = validate_and_decode(input)?;
    Ok(check_decoded(
        &resolve,
        component_world,
        wit,
        world,
        options,
    ))
}

/// A component's own imports and exports, by name, from its decoded WIT.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Interface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Validates `input` completely and lists its imports and exports (what an OCI
/// bundle's portable config records when no world was checked).
pub fn describe(input: &Input) -> Result<Interface> {
    let (resolve, world) = validate_and_decode(input)?;
    let w = &resolve.worlds[world];
    Ok(Interface {
        imports: w
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
        exports: w
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect(),
    })
}

/// [`decode_wit`], with a panic inside wit-parser's decoder turned into `None`: wit-parser
/// 0.254 reaches `unreachable!()` on some valid components (found by the
/// `validate_smith` fuzz target), and a hostile input must not crash pack.
fn decode_guarded(
    bytes: &[u8],
) -> Option<std::result::Result<wit_parser::decoding::DecodedWasm, String>> {
    std::panic::catch_unwind(|| decode_wit(bytes).map_err(|e| format!("{e:#}"))).ok()
}

/// Validates `input` (function bodies in parallel) while decoding its WIT.
fn validate_and_decode(input: &Input) -> Result<(Resolve, WorldId)> {
    input.expect_component()?;
    let (validated, decoded) = rayon::join(|| input.validate(), || decode_guarded(&input.bytes));
    validated?;
    let decoded = decoded
        .ok_or_else(|| Error::Decode {
            path: input.path.clone(),
            message: "wit-parser failed on this valid component (an internal error of \
                      wit-parser 0.254)"
                .to_string(),
        })?
        .map_err(|message| Error::Decode {
            path: input.path.clone(),
            message,
        })?;
    match decoded {
        wit_parser::decoding::DecodedWasm::Component(resolve, world) => Ok((resolve, world)),
        wit_parser::decoding::DecodedWasm::WitPackage(..) => Err(Error::Decode {
            path: input.path.clone(),
            message: "it is a WIT package encoded as wasm, not a component".to_string(),
        }),
    }
}

/// Decodes a component's WIT from its type skeleton (see [`crate::skeleton`]), or from
/// the component itself should the skeleton not decode.
fn decode_wit(bytes: &[u8]) -> anyhow::Result<wit_parser::decoding::DecodedWasm> {
    let from_skeleton = crate::skeleton::skeleton(bytes)
        .ok()
        .and_then(|skeleton| wit_parser::decoding::decode(&skeleton).ok());
    if let Some(decoded) = from_skeleton {
        return Ok(decoded);
    }
    wit_parser::decoding::decode(bytes)
}

/// Checks an already decoded component world against `world`.
pub fn check_decoded(
    component: &Resolve,
    component_world: WorldId,
    wit: &Wit,
    world: WorldId,
    options: Options,
) -> Report {
    let mut checker = Checker {
        comp: component,
        target: &wit.resolve,
        strict: options.strict,
        mismatches: Vec::new(),
        notes: Vec::new(),
    };
    let cw = &component.worlds[component_world];
    let tw = &wit.resolve.worlds[world];

    let world_imports: Vec<(String, &WorldItem)> = tw
        .imports
        .iter()
        .map(|(k, v)| (wit.resolve.name_world_key(k), v))
        .collect();
    for (key, item) in &cw.imports {
        let name = component.name_world_key(key);
        checker.check_item(Direction::Import, &name, item, &world_imports);
    }

    let component_exports: Vec<(String, &WorldItem)> = cw
        .exports
        .iter()
        .map(|(k, v)| (component.name_world_key(k), v))
        .collect();
    for (key, item) in &tw.exports {
        let name = wit.resolve.name_world_key(key);
        checker.check_item(Direction::Export, &name, item, &component_exports);
    }

    Report {
        conforms: checker.mismatches.is_empty(),
        world: wit.world_name(world),
        strict: options.strict,
        imports: cw
            .imports
            .keys()
            .map(|k| component.name_world_key(k))
            .collect(),
        exports: cw
            .exports
            .keys()
            .map(|k| component.name_world_key(k))
            .collect(),
        mismatches: checker.mismatches,
        notes: checker.notes,
    }
}

/// The key under which wasmtime 48 also files a versioned name, so that
/// semver-compatible versions find each other: `1.x.y` files under `1`, `0.2.x`
/// under `0.2`; `0.0.x` and pre-releases only under their exact name.
fn compat_key(name: &str) -> Option<(&str, String)> {
    let at = name.rfind('@')?;
    let version = Version::parse(&name[at + 1..]).ok()?;
    if !version.pre.is_empty() {
        None
    } else if version.major != 0 {
        Some((&name[..at], version.major.to_string()))
    } else if version.minor != 0 {
        Some((&name[..at], format!("0.{}", version.minor)))
    } else {
        None
    }
}

fn version_of(name: &str) -> Option<Version> {
    let at = name.rfind('@')?;
    Version::parse(&name[at + 1..]).ok()
}

/// A difference found while comparing two types.
struct Diff {
    path: Vec<String>,
    expected: String,
    found: String,
}

struct Checker<'a> {
    /// The component's decoded WIT.
    comp: &'a Resolve,
    /// The world's WIT.
    target: &'a Resolve,
    strict: bool,
    mismatches: Vec<Mismatch>,
    notes: Vec<String>,
}

impl<'a> Checker<'a> {
    /// Finds `wanted` among `candidates` by exact name, then (unless strict) by
    /// semver-compatible name, preferring the highest version as wasmtime does.
    fn lookup<'c, T>(
        &self,
        wanted: &str,
        candidates: &'c [(String, T)],
    ) -> Option<&'c (String, T)> {
        if let Some(exact) = candidates.iter().find(|(n, _)| n == wanted) {
            return Some(exact);
        }
        if self.strict {
            return None;
        }
        let key = compat_key(wanted)?;
        candidates
            .iter()
            .filter(|(n, _)| compat_key(n).as_ref() == Some(&key))
            .max_by(|(a, _), (b, _)| version_of(a).cmp(&version_of(b)))
    }

    fn mismatch(&mut self, kind: MismatchKind, item: String, message: String) {
        self.mismatches.push(Mismatch {
            kind,
            item,
            path: Vec::new(),
            expected: None,
            found: None,
            message,
        });
    }

    fn type_mismatches(&mut self, direction: &str, item: &str, diffs: Vec<Diff>) {
        for diff in diffs {
            let mut message = format!("{direction} {item}");
            for step in &diff.path {
                message.push_str(" > ");
                message.push_str(step);
            }
            message.push_str(&format!(
                ": expected {}, found {}",
                diff.expected, diff.found
            ));
            self.mismatches.push(Mismatch {
                kind: MismatchKind::TypeMismatch,
                item: item.to_string(),
                path: diff.path,
                expected: Some(diff.expected),
                found: Some(diff.found),
                message,
            });
        }
    }

    /// Looks up the required side's item `name` (a component import, or a world export)
    /// among the other side's `others`, by a semver-compatible name unless `--strict`,
    /// and compares the two.
    fn check_item(
        &mut self,
        direction: Direction,
        name: &str,
        item: &WorldItem,
        others: &[(String, &WorldItem)],
    ) {
        let Some((other_name, other_item)) = self.lookup(name, others) else {
            let (kind, message) = match direction {
                Direction::Import => {
                    let how = if self.strict && compat_key(name).is_some() {
                        " under this exact name (--strict)"
                    } else {
                        ""
                    };
                    let message = format!(
                        "the component imports `{name}`, which the world does not provide{how}"
                    );
                    (MismatchKind::ImportNotProvided, message)
                }
                Direction::Export => (
                    MismatchKind::MissingExport,
                    format!("the world requires the component to export `{name}`, and it does not"),
                ),
            };
            self.mismatch(kind, name.to_string(), message);
            return;
        };
        if other_name != name {
            self.notes.push(match direction {
                Direction::Import => format!(
                    "import `{name}` is provided by the world's `{other_name}` (semver-compatible)"
                ),
                Direction::Export => format!(
                    "the world's export `{name}` is served by the component's `{other_name}` \
                     (semver-compatible)"
                ),
            });
        }
        let (world_item, component_item) = direction.world_first(item, other_item);
        self.compare_items(direction, name, (other_name, world_item), component_item);
    }

    /// Compares the world's item `expected` with the component's `found`, both named
    /// `name` on the side being checked; `other_name` is the name on the other side
    /// (they differ by a semver-compatible version).
    fn compare_items(
        &mut self,
        direction: Direction,
        name: &str,
        (other_name, expected): (&str, &WorldItem),
        found: &WorldItem,
    ) {
        match (expected, found) {
            (WorldItem::Interface { id: wid, .. }, WorldItem::Interface { id, .. }) => {
                self.compare_interfaces(direction, name, other_name, *wid, *id)
            }
            (WorldItem::Function(wf), WorldItem::Function(f)) => {
                let diffs = self.compare_functions(wf, f);
                self.type_mismatches(direction.word(), name, diffs);
            }
            (WorldItem::Type { id: wid, .. }, WorldItem::Type { id, .. }) => {
                let diffs = self.compare_types(Type::Id(*wid), Type::Id(*id));
                self.type_mismatches(direction.word(), name, diffs);
            }
            (expected, found) => self.type_mismatches(
                direction.word(),
                name,
                vec![Diff {
                    path: Vec::new(),
                    expected: item_kind(expected).to_string(),
                    found: item_kind(found).to_string(),
                }],
            ),
        }
    }

    /// The items of an interface, the world's (`wid`) against the component's (`id`).
    /// An import: every type and function the component imports from it must be in the
    /// world's version, with a compatible type. An export: every one the world requires
    /// must be exported by the component, with a compatible type.
    fn compare_interfaces(
        &mut self,
        direction: Direction,
        name: &str,
        other_name: &str,
        wid: InterfaceId,
        id: InterfaceId,
    ) {
        let world_iface = &self.target.interfaces[wid];
        let iface = &self.comp.interfaces[id];
        // The side whose items must all be matched, and the side they are looked up in.
        let (required, other) = match direction {
            Direction::Import => (iface, world_iface),
            Direction::Export => (world_iface, iface),
        };
        for (tname, tid) in &required.types {
            let item = format!("{name}#{tname}");
            match other.types.get(tname) {
                None => {
                    let message = direction.missing("type", tname, name, other_name);
                    self.mismatch(direction.missing_kind(), item, message)
                }
                Some(other_tid) => {
                    let (wtid, ctid) = direction.world_first(*tid, *other_tid);
                    let diffs = self.compare_types(Type::Id(wtid), Type::Id(ctid));
                    self.type_mismatches(direction.word(), &item, diffs);
                }
            }
        }
        for (fname, func) in &required.functions {
            let item = format!("{name}#{fname}");
            match other.functions.get(fname) {
                None => {
                    let message = direction.missing("function", fname, name, other_name);
                    self.mismatch(direction.missing_kind(), item, message)
                }
                Some(other_func) => {
                    let (wf, f) = direction.world_first(func, other_func);
                    let diffs = self.compare_functions(wf, f);
                    self.type_mismatches(direction.word(), &item, diffs);
                }
            }
        }
    }

    /// Compares the world's function `expected` with the component's `found`.
    fn compare_functions(&self, expected: &Function, found: &Function) -> Vec<Diff> {
        let mut diffs = Vec::new();
        if expected.kind.is_async() != found.kind.is_async() {
            let kind = |f: &Function| {
                if f.kind.is_async() {
                    "async func"
                } else {
                    "func"
                }
            };
            diffs.push(Diff {
                path: Vec::new(),
                expected: kind(expected).to_string(),
                found: kind(found).to_string(),
            });
        }
        if expected.params.len() != found.params.len() {
            let list = |r: &Resolve, f: &Function| {
                let params: Vec<String> = f
                    .params
                    .iter()
                    .map(|p| format!("{}: {}", p.name, render(r, p.ty)))
                    .collect();
                format!("({})", params.join(", "))
            };
            diffs.push(Diff {
                path: vec!["params".to_string()],
                expected: list(self.target, expected),
                found: list(self.comp, found),
            });
        } else {
            for (e, f) in expected.params.iter().zip(&found.params) {
                if e.name != f.name {
                    diffs.push(Diff {
                        path: vec![format!("param {}", e.name)],
                        expected: format!("parameter `{}`", e.name),
                        found: format!("parameter `{}`", f.name),
                    });
                    continue;
                }
                self.compare(
                    e.ty,
                    f.ty,
                    &mut vec![format!("param {}", e.name)],
                    &mut diffs,
                );
            }
        }
        match (expected.result, found.result) {
            (None, None) => {}
            (Some(e), Some(f)) => self.compare(e, f, &mut vec!["result".to_string()], &mut diffs),
            (e, f) => diffs.push(Diff {
                path: vec!["result".to_string()],
                expected: e.map_or("no result".to_string(), |t| render(self.target, t)),
                found: f.map_or("no result".to_string(), |t| render(self.comp, t)),
            }),
        }
        diffs
    }

    fn compare_types(&self, expected: Type, found: Type) -> Vec<Diff> {
        let mut diffs = Vec::new();
        self.compare(expected, found, &mut Vec::new(), &mut diffs);
        diffs
    }

    /// Compares the world's type `expected` with the component's `found`, pushing a
    /// [`Diff`] with the path to every difference.
    fn compare(&self, expected: Type, found: Type, path: &mut Vec<String>, diffs: &mut Vec<Diff>) {
        let expected = dealias(self.target, expected);
        let found = dealias(self.comp, found);
        let differ = |path: &Vec<String>, e: String, f: String, diffs: &mut Vec<Diff>| {
            diffs.push(Diff {
                path: path.clone(),
                expected: e,
                found: f,
            })
        };
        let (eid, fid) = match (expected, found) {
            (Type::Id(e), Type::Id(f)) => (e, f),
            (e, f) if e == f => return,
            (e, f) => return differ(path, render(self.target, e), render(self.comp, f), diffs),
        };
        let ek = &self.target.types[eid].kind;
        let fk = &self.comp.types[fid].kind;
        // Enums and flags match when they name the same cases in the same order.
        let same_names =
            |path: &Vec<String>, kind: &str, e: Vec<&str>, f: Vec<&str>, diffs: &mut Vec<Diff>| {
                if e != f {
                    let show = |names: Vec<&str>| format!("{kind} ({})", names.join(", "));
                    differ(path, show(e), show(f), diffs);
                }
            };
        let whole = |diffs: &mut Vec<Diff>, path: &Vec<String>| {
            differ(
                path,
                render(self.target, expected),
                render(self.comp, found),
                diffs,
            )
        };
        match (ek, fk) {
            (TypeDefKind::Record(e), TypeDefKind::Record(f)) => {
                let names = |fields: &[wit_parser::Field]| {
                    fields.iter().map(|x| x.name.clone()).collect::<Vec<_>>()
                };
                if names(&e.fields) != names(&f.fields) {
                    return differ(
                        path,
                        format!("record with fields ({})", names(&e.fields).join(", ")),
                        format!("record with fields ({})", names(&f.fields).join(", ")),
                        diffs,
                    );
                }
                for (ef, ff) in e.fields.iter().zip(&f.fields) {
                    self.nested(path, format!("field {}", ef.name), ef.ty, ff.ty, diffs);
                }
            }
            (TypeDefKind::Variant(e), TypeDefKind::Variant(f)) => {
                let names = |v: &wit_parser::Variant| {
                    v.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
                };
                if names(e) != names(f) {
                    return differ(
                        path,
                        format!("variant with cases ({})", names(e).join(", ")),
                        format!("variant with cases ({})", names(f).join(", ")),
                        diffs,
                    );
                }
                for (ec, fc) in e.cases.iter().zip(&f.cases) {
                    match (ec.ty, fc.ty) {
                        (None, None) => {}
                        (Some(et), Some(ft)) => {
                            self.nested(path, format!("case {}", ec.name), et, ft, diffs)
                        }
                        (et, ft) => {
                            path.push(format!("case {}", ec.name));
                            diffs.push(Diff {
                                path: path.clone(),
                                expected: et
                                    .map_or("no payload".into(), |t| render(self.target, t)),
                                found: ft.map_or("no payload".into(), |t| render(self.comp, t)),
                            });
                            path.pop();
                        }
                    }
                }
            }
            (TypeDefKind::Enum(e), TypeDefKind::Enum(f)) => same_names(
                path,
                "enum",
                e.cases.iter().map(|c| c.name.as_str()).collect(),
                f.cases.iter().map(|c| c.name.as_str()).collect(),
                diffs,
            ),
            (TypeDefKind::Flags(e), TypeDefKind::Flags(f)) => same_names(
                path,
                "flags",
                e.flags.iter().map(|c| c.name.as_str()).collect(),
                f.flags.iter().map(|c| c.name.as_str()).collect(),
                diffs,
            ),
            (TypeDefKind::Tuple(e), TypeDefKind::Tuple(f)) => {
                if e.types.len() != f.types.len() {
                    return whole(diffs, path);
                }
                for (i, (et, ft)) in e.types.iter().zip(&f.types).enumerate() {
                    self.nested(path, format!("element {i}"), *et, *ft, diffs);
                }
            }
            (TypeDefKind::Option(e), TypeDefKind::Option(f)) => {
                self.nested(path, "option".into(), *e, *f, diffs)
            }
            (TypeDefKind::List(e), TypeDefKind::List(f)) => {
                self.nested(path, "list element".into(), *e, *f, diffs)
            }
            (TypeDefKind::FixedLengthList(e, en), TypeDefKind::FixedLengthList(f, fnum)) => {
                if en != fnum {
                    return whole(diffs, path);
                }
                self.nested(path, "list element".into(), *e, *f, diffs)
            }
            (TypeDefKind::Map(ek, ev), TypeDefKind::Map(fk, fv)) => {
                self.nested(path, "map key".into(), *ek, *fk, diffs);
                self.nested(path, "map value".into(), *ev, *fv, diffs);
            }
            (TypeDefKind::Result(e), TypeDefKind::Result(f)) => {
                for (step, et, ft) in [("ok", e.ok, f.ok), ("err", e.err, f.err)] {
                    match (et, ft) {
                        (None, None) => {}
                        (Some(et), Some(ft)) => self.nested(path, step.into(), et, ft, diffs),
                        _ => {
                            return whole(diffs, path);
                        }
                    }
                }
            }
            (TypeDefKind::Future(e), TypeDefKind::Future(f))
            | (TypeDefKind::Stream(e), TypeDefKind::Stream(f)) => match (e, f) {
                (None, None) => {}
                (Some(e), Some(f)) => self.nested(path, "payload".into(), *e, *f, diffs),
                _ => whole(diffs, path),
            },
            (TypeDefKind::Handle(e), TypeDefKind::Handle(f)) => {
                let (own_e, re) = match e {
                    Handle::Own(r) => (true, *r),
                    Handle::Borrow(r) => (false, *r),
                };
                let (own_f, rf) = match f {
                    Handle::Own(r) => (true, *r),
                    Handle::Borrow(r) => (false, *r),
                };
                if own_e != own_f || !self.same_resource(re, rf) {
                    whole(diffs, path);
                }
            }
            (TypeDefKind::Resource, TypeDefKind::Resource) => {
                if !self.same_resource(eid, fid) {
                    whole(diffs, path);
                }
            }
            _ => whole(diffs, path),
        }
    }

    fn nested(
        &self,
        path: &mut Vec<String>,
        step: String,
        e: Type,
        f: Type,
        diffs: &mut Vec<Diff>,
    ) {
        path.push(step);
        self.compare(e, f, path, diffs);
        path.pop();
    }

    /// Resources are nominal: two are the same when they are defined by the same
    /// interface (by name, with a semver-compatible version unless strict) under the
    /// same name.
    fn same_resource(&self, expected: TypeId, found: TypeId) -> bool {
        let e = resource_identity(self.target, expected);
        let f = resource_identity(self.comp, found);
        match (e, f) {
            (Some((ei, en)), Some((fi, fname))) => {
                en == fname
                    && (ei == fi
                        || (!self.strict
                            && compat_key(&ei).is_some()
                            && compat_key(&ei) == compat_key(&fi)))
            }
            // Resources defined outside any named interface (e.g. by a world) match by name.
            (None, None) => {
                self.target.types[dealias_id(self.target, expected)].name
                    == self.comp.types[dealias_id(self.comp, found)].name
            }
            _ => false,
        }
    }
}

/// Which side of the world is being checked: what the component imports (it must be
/// provided) or what the world wants exported (it must be there).
#[derive(Debug, Clone, Copy)]
enum Direction {
    Import,
    Export,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Import => "import",
            Direction::Export => "export",
        }
    }

    fn missing_kind(self) -> MismatchKind {
        match self {
            Direction::Import => MismatchKind::ItemMissing,
            Direction::Export => MismatchKind::MissingExport,
        }
    }

    /// `(world's, component's)` of a pair found as `(required side's, other side's)`.
    fn world_first<T>(self, required: T, other: T) -> (T, T) {
        match self {
            Direction::Import => (other, required),
            Direction::Export => (required, other),
        }
    }

    /// Why the `what` named `item` of interface `name` has no counterpart in the other
    /// side's `other_name`.
    fn missing(self, what: &str, item: &str, name: &str, other_name: &str) -> String {
        match self {
            Direction::Import => format!(
                "the component imports {what} `{item}` from `{name}`, but the world's \
                 `{other_name}` has no such {what}"
            ),
            Direction::Export => format!(
                "the world requires {what} `{item}` in `{name}`, and the component's \
                 `{other_name}` has none"
            ),
        }
    }
}

fn item_kind(item: &WorldItem) -> &'static str {
    match item {
        WorldItem::Interface { .. } => "an interface",
        WorldItem::Function(_) => "a function",
        WorldItem::Type { .. } => "a type",
    }
}

fn dealias(resolve: &Resolve, mut ty: Type) -> Type {
    while let Type::Id(id) = ty {
        match resolve.types[id].kind {
            TypeDefKind::Type(inner) => ty = inner,
            _ => break,
        }
    }
    ty
}

fn dealias_id(resolve: &Resolve, id: TypeId) -> TypeId {
    match dealias(resolve, Type::Id(id)) {
        Type::Id(id) => id,
        _ => id,
    }
}

/// `(interface id with version, type name)` of the interface that defines a resource.
fn resource_identity(resolve: &Resolve, id: TypeId) -> Option<(String, String)> {
    let id = dealias_id(resolve, id);
    let def = &resolve.types[id];
    match def.owner {
        TypeOwner::Interface(iface) => Some((resolve.id_of(iface)?, def.name.clone()?)),
        TypeOwner::World(_) | TypeOwner::None => None,
    }
}

/// Renders a type the way WIT writes it, for messages.
pub fn render(resolve: &Resolve, ty: Type) -> String {
    let id = match ty {
        Type::Bool => return "bool".into(),
        Type::U8 => return "u8".into(),
        Type::U16 => return "u16".into(),
        Type::U32 => return "u32".into(),
        Type::U64 => return "u64".into(),
        Type::S8 => return "s8".into(),
        Type::S16 => return "s16".into(),
        Type::S32 => return "s32".into(),
        Type::S64 => return "s64".into(),
        Type::F32 => return "f32".into(),
        Type::F64 => return "f64".into(),
        Type::Char => return "char".into(),
        Type::String => return "string".into(),
        Type::ErrorContext => return "error-context".into(),
        Type::Id(id) => id,
    };
    let def = &resolve.types[id];
    let named = |kind: &str| match &def.name {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    };
    let opt = |t: Option<Type>| t.map(|t| render(resolve, t));
    match &def.kind {
        TypeDefKind::Record(_) => named("record"),
        TypeDefKind::Variant(_) => named("variant"),
        TypeDefKind::Enum(_) => named("enum"),
        TypeDefKind::Flags(_) => named("flags"),
        TypeDefKind::Resource => named("resource"),
        TypeDefKind::Type(t) => render(resolve, *t),
        TypeDefKind::Handle(Handle::Own(r)) => format!("own<{}>", resource_name(resolve, *r)),
        TypeDefKind::Handle(Handle::Borrow(r)) => format!("borrow<{}>", resource_name(resolve, *r)),
        TypeDefKind::Tuple(t) => {
            let items: Vec<String> = t.types.iter().map(|t| render(resolve, *t)).collect();
            format!("tuple<{}>", items.join(", "))
        }
        TypeDefKind::Option(t) => format!("option<{}>", render(resolve, *t)),
        TypeDefKind::List(t) => format!("list<{}>", render(resolve, *t)),
        TypeDefKind::FixedLengthList(t, n) => format!("list<{}, {n}>", render(resolve, *t)),
        TypeDefKind::Map(k, v) => format!("map<{}, {}>", render(resolve, *k), render(resolve, *v)),
        TypeDefKind::Result(r) => match (opt(r.ok), opt(r.err)) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{ok}>"),
            (None, Some(err)) => format!("result<_, {err}>"),
            (Some(ok), Some(err)) => format!("result<{ok}, {err}>"),
        },
        TypeDefKind::Future(t) => opt(*t).map_or("future".into(), |t| format!("future<{t}>")),
        TypeDefKind::Stream(t) => opt(*t).map_or("stream".into(), |t| format!("stream<{t}>")),
        TypeDefKind::Unknown => "unknown".into(),
    }
}

fn resource_name(resolve: &Resolve, id: TypeId) -> String {
    let id = dealias_id(resolve, id);
    let def = &resolve.types[id];
    let name = def.name.clone().unwrap_or_else(|| "resource".into());
    match def.owner {
        TypeOwner::Interface(iface) => match resolve.id_of(iface) {
            Some(iface) => format!("{iface}#{name}"),
            None => name,
        },
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::compat_key;

    #[test]
    fn compat_keys_follow_wasmtime() {
        assert_eq!(
            compat_key("wasi:io/poll@0.2.9"),
            Some(("wasi:io/poll", "0.2".into()))
        );
        assert_eq!(compat_key("a:b/c@1.4.0"), Some(("a:b/c", "1".into())));
        assert_eq!(compat_key("a:b/c@0.0.3"), None);
        assert_eq!(compat_key("a:b/c@0.2.0-rc-2023"), None);
        assert_eq!(compat_key("a:b/c"), None);
        assert_ne!(compat_key("a:b/c@0.2.1"), compat_key("a:b/c@0.3.1"));
    }
}
