//! Every fuzz target's seeds (`fuzz/seeds/<target>/`) and every crash input the fuzzers
//! found (`fuzz/regressions/<target>/`), replayed on stable in the normal suite: each must
//! return without a panic, an abort or a hang. A new crash found by `cargo +nightly fuzz
//! run <target>` is fixed, then its input is copied into `fuzz/regressions/<target>/`.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_target_has_a_cargo_fuzz_binary_and_seeds() {
    for t in strongroom_fuzzing::TARGETS {
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{t}.rs"));
        let text =
            std::fs::read_to_string(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert!(
            text.contains(&format!("run(\"{t}\"")),
            "{} runs another target",
            bin.display()
        );
        let seeds = strongroom_fuzzing::inputs(&fuzz_dir().join("seeds").join(t));
        assert!(!seeds.is_empty(), "no seeds for {t}");
    }
}

#[test]
fn seeds_and_crash_inputs_replay_without_a_panic() {
    let mut replayed = 0;
    for t in strongroom_fuzzing::TARGETS {
        for kind in ["seeds", "regressions"] {
            for (path, data) in strongroom_fuzzing::inputs(&fuzz_dir().join(kind).join(t)) {
                eprintln!("{}", path.display());
                strongroom_fuzzing::run(t, &data);
                replayed += 1;
            }
        }
    }
    assert!(replayed >= strongroom_fuzzing::TARGETS.len());
    eprintln!("replayed {replayed} inputs");
}
