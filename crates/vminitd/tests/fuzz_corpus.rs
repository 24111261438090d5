//! Replays the `agent_request` fuzz seed corpus (`fuzz/corpus/agent_request`)
//! and deterministic mutations of it through the fuzz entry points, so the
//! target runs on stable Rust too. Any panic (an escape from the root or
//! the CopyIn directory included) fails the test.

use vminitd::fuzzing;

#[path = "../../../fuzz/replay.rs"]
mod replay;
use replay::{Rng, corpus};

/// A few byte changes, sometimes a cut or a doubled span; the selector
/// byte is kept so each seed stays with its decoder.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut d = seed.to_vec();
    if d.len() < 2 {
        d.push(rng.next() as u8);
        return d;
    }
    for _ in 0..1 + rng.next() % 4 {
        let i = 1 + (rng.next() as usize) % (d.len() - 1);
        d[i] = match rng.next() % 7 {
            0 => d[i] ^ (1 << (rng.next() % 8)),
            1 => b"{}[]\":,/.\n"[(rng.next() % 10) as usize],
            2 => b"0123456789"[(rng.next() % 10) as usize],
            3 => 0xff,
            4 => 0,
            _ => rng.next() as u8,
        };
    }
    match rng.next() % 8 {
        0 => d.truncate(1 + (rng.next() as usize) % (d.len() - 1)),
        1 => {
            let i = 1 + (rng.next() as usize) % (d.len() - 1);
            let span = d[i..].iter().take(16).copied().collect::<Vec<_>>();
            d.splice(i..i, span);
        }
        _ => {}
    }
    d
}

#[test]
fn agent_requests_survive_corpus_and_mutations() {
    let seeds = corpus("agent_request");
    let mut rng = Rng(0x0a9e_17e5_eed5_f00d);
    for s in &seeds {
        fuzzing::request(s);
        let rounds = if s.first() == Some(&2) { 150 } else { 1500 };
        for _ in 0..rounds {
            fuzzing::request(&mutate(s, &mut rng));
        }
    }
    fuzzing::request(&[]);
    fuzzing::request(&[0]);
    fuzzing::request(&[2]);
}

#[test]
fn the_create_seeds_are_accepted_specs() {
    let creates: Vec<_> = corpus("agent_request")
        .into_iter()
        .filter(|s| s.first() == Some(&0))
        .collect();
    assert!(creates.len() >= 3);
    for s in &creates {
        assert!(
            fuzzing::create_process(&s[1..]),
            "a seed spec is refused: {}",
            String::from_utf8_lossy(&s[1..])
        );
    }
}
