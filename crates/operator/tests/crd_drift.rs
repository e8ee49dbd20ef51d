//! The committed CRD manifest is exactly what `omjob-operator crds` prints.
//!
//! The CRDs are generated from the `omjob-api` types; the committed copy at
//! `deploy/crds/omjob-crds.yaml` is what people and CI apply. This test runs the real binary so
//! that the subcommand, not just the library function, is what the file is checked against.

// Test helpers outside `#[test]` functions fail loudly too; clippy.toml only covers the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Command};

const REGENERATE: &str = "run `cargo run -p omjob-operator -- crds > deploy/crds/omjob-crds.yaml`";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds/omjob-crds.yaml")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let output = Command::new(env!("CARGO_BIN_EXE_omjob-operator"))
        .arg("crds")
        .output()
        .expect("run omjob-operator crds");
    assert!(
        output.status.success(),
        "`omjob-operator crds` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated = String::from_utf8(output.stdout).expect("CRD YAML is UTF-8");

    let path = committed_path();
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {REGENERATE}", path.display()));

    if committed != generated {
        let first_diff = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "deploy/crds/omjob-crds.yaml is out of date with the omjob-api types \
             (first difference at line {first_diff}); {REGENERATE}"
        );
    }
}

#[test]
fn the_binary_output_is_the_library_rendering() {
    let output = Command::new(env!("CARGO_BIN_EXE_omjob-operator"))
        .arg("crds")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        omjob_api::crds::render_yaml().unwrap()
    );
}
