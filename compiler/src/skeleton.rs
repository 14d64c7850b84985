//! A component's type skeleton: the same component with the code of every core module
//! replaced by one-instruction bodies and its data segments left out.
//!
//! Decoding a component's WIT (its imports, exports and their types) needs the whole
//! component to be validated, core modules included, because component instantiations
//! are type-checked against the modules' imports and exports. It does not need what the
//! functions do. A skeleton keeps every section that gives a module its type (types,
//! imports, functions, tables, memories, tags, globals, exports, start, elements) and
//! gives each function the body `unreachable`, which type-checks against any signature.
//! Its component-level sections are the original's, byte for byte, so it decodes to the
//! same WIT as the original, for a fraction of the work: in a large component almost
//! all the bytes are code and data.
//!
//! The skeleton is only a faster way to the same answer: callers validate the original
//! in full, and fall back to decoding the original if the skeleton does not decode.

use wasmparser::{BinaryReaderError, Parser, Payload};

/// Section ids used when re-encoding (the binary format's own numbers).
const CORE_CODE: u8 = 10;
const COMPONENT_CORE_MODULE: u8 = 1;
const COMPONENT_COMPONENT: u8 = 4;

/// One function body: no locals, `unreachable`, `end`.
const UNREACHABLE_BODY: [u8; 3] = [0x00, 0x00, 0x0b];

/// A module or component being re-encoded.
struct Frame {
    out: Vec<u8>,
    /// Whether this frame is a core module (whose code and data are replaced).
    module: bool,
    /// The section id this frame is wrapped in inside its parent.
    section_id: u8,
}

/// Builds the type skeleton of a component or module (see the module docs).
pub fn skeleton(bytes: &[u8]) -> Result<Vec<u8>, BinaryReaderError> {
    let mut stack: Vec<Frame> = Vec::new();
    // The section id the next header's frame is wrapped in (none for the outermost).
    let mut wrapper = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        match &payload {
            Payload::Version {
                range, encoding, ..
            } => {
                let mut out = Vec::with_capacity(if stack.is_empty() { 64 * 1024 } else { 4096 });
                out.extend_from_slice(&bytes[range.clone()]);
                stack.push(Frame {
                    out,
                    module: *encoding == wasmparser::Encoding::Module,
                    section_id: wrapper,
                });
            }
            Payload::ModuleSection { .. } => wrapper = COMPONENT_CORE_MODULE,
            Payload::ComponentSection { .. } => wrapper = COMPONENT_COMPONENT,
            Payload::End(_) => {
                let frame = stack.pop().expect("End follows a Version");
                match stack.last_mut() {
                    Some(parent) => write_section(&mut parent.out, frame.section_id, &frame.out),
                    None => return Ok(frame.out),
                }
            }
            Payload::CodeSectionStart { count, .. } => {
                let frame = stack.last_mut().expect("inside a module");
                let mut content = Vec::with_capacity(5 + *count as usize * 4);
                write_u32(&mut content, *count);
                for _ in 0..*count {
                    write_u32(&mut content, UNREACHABLE_BODY.len() as u32);
                    content.extend_from_slice(&UNREACHABLE_BODY);
                }
                write_section(&mut frame.out, CORE_CODE, &content);
            }
            Payload::CodeSectionEntry(_) => {}
            Payload::DataSection(_) | Payload::DataCountSection { .. } => {}
            Payload::CustomSection(_) if stack.last().is_some_and(|f| f.module) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    let frame = stack.last_mut().expect("inside a module or component");
                    write_section(&mut frame.out, id, &bytes[range]);
                }
            }
        }
    }
    // parse_all ends with the outermost End, which returned above; an input that stops
    // early is an error from the parser.
    unreachable!("the parser ends every input with End or an error")
}

fn write_section(out: &mut Vec<u8>, id: u8, content: &[u8]) {
    out.push(id);
    write_u32(
        out,
        u32::try_from(content.len()).expect("sections are at most 4 GiB"),
    );
    out.extend_from_slice(content);
}

fn write_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoded WIT, in full: `Resolve`'s debug form lists every arena, less the
    /// arenas' process-wide ids.
    fn decode(bytes: &[u8]) -> String {
        let text = format!(
            "{:?}",
            wit_parser::decoding::decode(bytes).unwrap().resolve()
        );
        text.split("arena_id: ")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.trim_start_matches(|c: char| c.is_ascii_digit())
                }
            })
            .collect()
    }

    #[test]
    fn skeleton_of_a_module_validates_and_keeps_its_type() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "f" (func $f (param i32) (result i32)))
                (memory (export "memory") 1)
                (data (i32.const 0) "hello")
                (func (export "g") (param i64) (result i64)
                    local.get 0 i64.const 1 i64.add)
                (@custom "name-ish" "dropped")
            )"#,
        )
        .unwrap();
        let skeleton = skeleton(&wasm).unwrap();
        assert!(skeleton.len() < wasm.len());
        wasmparser::Validator::new()
            .validate_all(&skeleton)
            .unwrap();
        let exports: Vec<String> = Parser::new(0)
            .parse_all(&skeleton)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(s) => Some(
                    s.into_iter()
                        .map(|e| e.unwrap().name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(exports, ["memory", "g"]);
    }

    /// The project's fixtures, and the third-party corpus when it is beside the checkout
    /// (`PACK_CORPUS`): a skeleton is a small fraction of the component, validates, and
    /// decodes to exactly the same WIT.
    #[test]
    fn skeleton_of_a_component_decodes_to_the_same_wit() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut paths: Vec<_> = ["hello-cli.wasm", "calc.wasm"]
            .iter()
            .map(|name| root.join("fixtures/components").join(name))
            .collect();
        let corpus = std::env::var_os("PACK_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("../shared/corpus"))
            .join("components");
        if let Ok(entries) = std::fs::read_dir(&corpus) {
            paths.extend(entries.map(|e| e.unwrap().path()));
        }
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            let skeleton = skeleton(&bytes).unwrap();
            let name = path.display();
            assert!(
                skeleton.len() * 2 < bytes.len(),
                "{name}: {} bytes",
                skeleton.len()
            );
            wasmparser::Validator::new_with_features(crate::wasm::wasmtime_features())
                .validate_all(&skeleton)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(decode(&skeleton), decode(&bytes), "{name}");
        }
    }
}
