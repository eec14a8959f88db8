//! Modules import only downward. Each top-level module of `src/` has a layer; a module may use
//! `crate::X` only for an X in a lower layer (or itself). An import cycle between modules is
//! impossible under this rule, and a change that adds one fails here, naming the file and line.

use std::collections::BTreeMap;
use std::path::Path;

/// Lower first. The pipeline reads upward: sources → judgement → actions → commands.
const LAYERS: &[&[&str]] = &[
    &[
        "error", "timefmt", "token", "process", "shutdown", "backoff",
    ],
    &["source"],
    &["inventory"],
    &["diagnose", "docker"],
    &["report", "probe", "check"],
    &["repair"],
    &["exit"],
    &["watch"],
    &["cli"],
    &["config"],
    &["run", "main", "lib"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} has no layer in tests/layering.rs"))
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    walk(&src, &mut files);
    let mut upward = vec![];
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let from = layer_of(&module);
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                let after = &rest[i + "crate::".len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &after[name.len()..];
                if name.is_empty() || name == module {
                    continue;
                }
                *edges.entry((module.clone(), name.clone())).or_default() += 1;
                if layer_of(&name) >= from {
                    upward.push(format!(
                        "{}:{}: {module} (layer {from}) uses crate::{name} (layer {})",
                        rel.display(),
                        n + 1,
                        layer_of(&name)
                    ));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up or sideways:\n{}",
        upward.join("\n")
    );
    assert!(
        edges.len() > 20,
        "the scan found only {} edges",
        edges.len()
    );
}
