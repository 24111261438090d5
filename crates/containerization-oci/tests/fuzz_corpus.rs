//! Replays the OCI fuzz seed corpus (`fuzz/corpus/oci_*`) and deterministic
//! mutations of it through the fuzz entry points, so the targets run on
//! stable Rust too. Any panic fails the test.

use containerization_oci::fuzzing;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{Rng, corpus};

/// A few byte changes, sometimes a cut or a doubled span (JSON nesting).
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    if d.is_empty() {
        return vec![rng.next() as u8];
    }
    for _ in 0..1 + rng.next() % 4 {
        let i = (rng.next() as usize) % d.len();
        d[i] = match rng.next() % 6 {
            0 => d[i] ^ (1 << (rng.next() % 8)),
            1 => b"{}[]\":,/@"[(rng.next() % 9) as usize],
            2 => b"0123456789abcdef"[(rng.next() % 16) as usize],
            3 => 0xff,
            _ => rng.next() as u8,
        };
    }
    match rng.next() % 8 {
        0 => d.truncate((rng.next() as usize) % d.len()),
        1 => {
            let i = (rng.next() as usize) % d.len();
            let span = d[i..].iter().take(16).copied().collect::<Vec<_>>();
            d.splice(i..i, span);
        }
        _ => {}
    }
    d
}

#[test]
fn references_and_platforms_survive_corpus_and_mutations() {
    let seeds = corpus("oci_reference");
    let mut rng = Rng(0x05ee_d0c1_2e7e_2e4c);
    for s in &seeds {
        fuzzing::reference(s);
        for _ in 0..3000 {
            fuzzing::reference(&mutate(s, &mut rng));
        }
    }
    fuzzing::reference(&[]);
    fuzzing::reference(&vec![b'a'; 300]);
}

#[test]
fn image_json_survives_corpus_and_mutations() {
    let seeds = corpus("oci_image");
    let mut rng = Rng(0x001a_6e15_0ddc_0ffe);
    for s in &seeds {
        fuzzing::image_json(s);
        for _ in 0..300 {
            fuzzing::image_json(&mutate(s, &mut rng));
        }
    }
    fuzzing::image_json(&[]);
    fuzzing::image_json(b"{\"manifests\":[{}]}");
}
