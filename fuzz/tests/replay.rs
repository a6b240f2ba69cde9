//! Every seed, corpus file and regression runs through its harness, uninstrumented, in the
//! normal `cargo test`: a crash the fuzzer once found stays fixed without AFL++ installed.
//! And the layout stays whole: every target has its binary and seeds, and nothing else is
//! there.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use weft_fuzz::TARGETS;

/// The fuzz crate's folders: `corpus/`, `regressions/`, `src/bin/`.
fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// The entries of a folder, sorted; none when it does not exist (a target with no
/// regression yet has no folder, as git keeps no empty ones).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read.map(|e| e.expect("a folder entry").path()).collect();
    paths.sort();
    paths
}

#[test]
fn every_corpus_and_regression_file_passes_its_harness() {
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, harness) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for file in entries(&dir(kind).join(name)) {
                let data = std::fs::read(&file).expect("a readable input");
                ran += 1;
                if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
                    failed.push(file.display().to_string());
                }
            }
        }
    }
    assert!(ran > 0);
    assert!(failed.is_empty(), "failed: {failed:#?}");
}

#[test]
fn every_target_has_a_binary_and_seeds_and_nothing_else_is_there() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(names.len(), TARGETS.len(), "a target named twice");
    let stems = |dir: &Path| -> BTreeSet<String> {
        entries(dir)
            .iter()
            .map(|p| {
                p.file_stem()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    };
    let expected: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    assert_eq!(stems(&dir("src/bin")), expected, "one binary per target");
    assert_eq!(stems(&dir("corpus")), expected, "one corpus per target");
    let regressions = stems(&dir("regressions"));
    assert!(
        regressions.is_subset(&expected),
        "regressions of no target: {:?}",
        regressions.difference(&expected).collect::<Vec<_>>()
    );
    for name in &names {
        let seeds = entries(&dir("corpus").join(name));
        assert!(seeds.len() >= 3, "{name}: {} seeds", seeds.len());
        let regressions = entries(&dir("regressions").join(name));
        for file in seeds.iter().chain(&regressions) {
            let file = file.file_name().expect("a name").to_string_lossy();
            // AFL++ names its finds `id:…`; a committed file has a name that says what it is
            // and that every filesystem and tool takes.
            assert!(!file.contains(':'), "{name}/{file}");
        }
    }
    let manifest = std::fs::read_to_string(dir("Cargo.toml")).expect("the manifest");
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"\npath = \"src/bin/{name}.rs\"")),
            "{name} is a [[bin]] of Cargo.toml"
        );
    }
}
