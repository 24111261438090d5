//! Replays the fuzz seed corpus (`fuzz/corpus/`) and deterministic
//! mutations of it through the fuzz entry points, so the targets are
//! exercised on stable Rust too. Any panic fails the test.

use std::path::PathBuf;

use containerization_ext4::{fuzzing, unpack_layers};

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{Rng, corpus, corpus_dir};

/// The ext4 seeds, built from the layer seeds exactly as
/// `fuzz/make-ext4-corpus.sh` builds them for cargo-fuzz (images are built,
/// not committed).
fn ext4_seeds() -> Vec<Vec<u8>> {
    let layers = corpus_dir("layer_unpack");
    let dir = tempfile::tempdir().unwrap();
    let stacks: [(&str, &[&str], u64); 3] = [
        ("basic", &["basic.tar"], 128 << 10),
        ("many", &["many.tar"], 256 << 10),
        ("stacked", &["basic.tar", "many.tar"], 256 << 10),
    ];
    stacks
        .iter()
        .map(|(name, tars, size)| {
            let paths: Vec<PathBuf> = tars.iter().map(|t| layers.join(t)).collect();
            let out = dir.path().join(format!("{name}.ext4"));
            unpack_layers(&paths, &out, *size)
                .unwrap_or_else(|e| panic!("building seed {name}: {e}"));
            std::fs::read(&out).unwrap()
        })
        .collect()
}

/// Mutates bytes in the first `span` bytes (where the metadata lives).
fn mutate(seed: &[u8], rng: &mut Rng, span: usize) -> Vec<u8> {
    let mut d = seed.to_vec();
    let span = span.min(d.len());
    for _ in 0..1 + rng.next() % 8 {
        let i = (rng.next() as usize) % span;
        d[i] = match rng.next() % 4 {
            0 => d[i] ^ (1 << (rng.next() % 8)),
            1 => 0xff,
            2 => 0,
            _ => rng.next() as u8,
        };
    }
    if rng.next().is_multiple_of(16) {
        d.truncate((rng.next() as usize) % d.len().max(1));
    }
    d
}

#[test]
fn ext4_reader_survives_corpus_and_mutations() {
    let seeds = ext4_seeds();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for s in &seeds {
        fuzzing::ext4_reader(s);
        for _ in 0..1500 {
            fuzzing::ext4_reader(&mutate(s, &mut rng, 64 << 10));
        }
    }
    fuzzing::ext4_reader(&[]);
    fuzzing::ext4_reader(&[0u8; 4096]);
}

#[test]
fn layer_unpack_survives_corpus_and_mutations() {
    let seeds = corpus("layer_unpack");
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for s in &seeds {
        fuzzing::layer_unpack(s);
        for _ in 0..150 {
            fuzzing::layer_unpack(&mutate(s, &mut rng, s.len()));
        }
    }
    fuzzing::layer_unpack(&[]);
}
