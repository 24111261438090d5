//! Shared by the stable replay tests of the fuzz targets
//! (`crates/*/tests/fuzz_corpus.rs`, included with `#[path]`): the seed
//! corpus of a target and a deterministic mutation source.

use std::path::PathBuf;

/// `fuzz/corpus/<name>/`.
pub fn corpus_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name)
}

/// The seeds of target `name`, sorted; panics if there are none.
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(name);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} missing: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "seed corpus {} is empty", dir.display());
    out
}

/// xorshift64: deterministic, dependency-free mutation source.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
