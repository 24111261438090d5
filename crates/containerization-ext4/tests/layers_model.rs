//! Property test: random layer stacks unpacked into ext4 equal a reference
//! model of OCI overlay semantics, and every image passes e2fsck.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::layer::Layer;
use common::{Kind, sha};
use containerization_ext4::unpack_layers;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    File { mode: u32, data: Vec<u8> },
    Dir { mode: u32 },
    Symlink { target: String },
    Whiteout,
    Opaque,
}

/// Model state: path -> (kind, mode).
type State = BTreeMap<String, (Kind, u16)>;

fn ancestors(p: &str) -> Vec<String> {
    let parts: Vec<&str> = p.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn is_under(p: &str, dir: &str) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
}

/// Makes a random op map a valid layer: implicit parent dirs, no entries
/// at or under a whiteout, opaque dirs present as dirs.
fn normalize(raw: Vec<(String, Op)>) -> BTreeMap<String, Op> {
    let mut ops: BTreeMap<String, Op> = BTreeMap::new();
    let mut opaque: BTreeSet<String> = BTreeSet::new();
    for (p, op) in raw {
        if op == Op::Opaque {
            opaque.insert(p);
        } else {
            ops.entry(p).or_insert(op);
        }
    }
    // Whiteouts win over anything at or below them; entries under a
    // non-directory op are dropped.
    let whiteouts: Vec<String> = ops
        .iter()
        .filter(|(_, o)| **o == Op::Whiteout)
        .map(|(p, _)| p.clone())
        .collect();
    ops.retain(|p, o| {
        !whiteouts
            .iter()
            .any(|w| is_under(p, w) || (p == w && *o != Op::Whiteout))
    });
    opaque.retain(|d| !whiteouts.iter().any(|w| d == w || is_under(d, w)));
    let nondirs: Vec<String> = ops
        .iter()
        .filter(|(_, o)| !matches!(o, Op::Dir { .. }))
        .map(|(p, _)| p.clone())
        .collect();
    ops.retain(|p, _| !nondirs.iter().any(|n| is_under(p, n)));
    opaque.retain(|d| !nondirs.iter().any(|n| d == n || is_under(d, n)));
    let all: Vec<String> = ops.keys().cloned().chain(opaque.iter().cloned()).collect();
    for p in all {
        for a in ancestors(&p) {
            ops.entry(a).or_insert(Op::Dir { mode: 0o755 });
        }
    }
    for d in opaque {
        ops.entry(d.clone()).or_insert(Op::Dir { mode: 0o755 });
        ops.insert(format!("{d}/.wh..wh..opq"), Op::Opaque);
    }
    ops
}

fn remove_tree(state: &mut State, p: &str) {
    state.retain(|k, _| k != p && !is_under(k, p));
}

/// The reference semantics, independent of entry order within a layer.
fn apply(state: &mut State, layer: &BTreeMap<String, Op>) {
    let lower: State = state.clone();
    for (p, op) in layer {
        match op {
            Op::Opaque => {
                let d = p.trim_end_matches("/.wh..wh..opq");
                let doomed: Vec<String> =
                    lower.keys().filter(|k| is_under(k, d)).cloned().collect();
                for k in doomed {
                    state.remove(&k);
                }
            }
            Op::Whiteout => remove_tree(state, p),
            _ => {}
        }
    }
    for (p, op) in layer {
        match op {
            Op::Dir { mode } => {
                if matches!(state.get(p), Some((Kind::Dir, _))) {
                    state.insert(p.clone(), (Kind::Dir, *mode as u16));
                } else {
                    remove_tree(state, p);
                    state.insert(p.clone(), (Kind::Dir, *mode as u16));
                }
            }
            Op::File { mode, data } => {
                remove_tree(state, p);
                state.insert(p.clone(), (Kind::File(sha(data)), *mode as u16));
            }
            Op::Symlink { target } => {
                remove_tree(state, p);
                state.insert(
                    p.clone(),
                    (Kind::Symlink(target.as_bytes().to_vec()), 0o777),
                );
            }
            Op::Whiteout | Op::Opaque => {}
        }
    }
}

/// Renders a layer as tar: entries parents-first, markers at the given
/// positions (so they come before or after their siblings).
fn render(layer: &BTreeMap<String, Op>, marker_pos: &[usize]) -> Vec<u8> {
    let entries: Vec<(&String, &Op)> = layer
        .iter()
        .filter(|(_, o)| !matches!(o, Op::Whiteout | Op::Opaque))
        .collect();
    let markers: Vec<(&String, &Op)> = layer
        .iter()
        .filter(|(_, o)| matches!(o, Op::Whiteout | Op::Opaque))
        .collect();
    let mut order: Vec<(&String, &Op)> = entries;
    for (i, m) in markers.into_iter().enumerate() {
        let pos = marker_pos.get(i).copied().unwrap_or(0) % (order.len() + 1);
        order.insert(pos, m);
    }
    let mut l = Layer::new();
    for (p, op) in order {
        match op {
            Op::File { mode, data } => {
                l.file_mode(p, *mode, data);
            }
            Op::Dir { mode } => {
                l.dir(p, *mode);
            }
            Op::Symlink { target } => {
                l.symlink(p, target);
            }
            Op::Whiteout => {
                l.whiteout(p);
            }
            Op::Opaque => {
                l.file(p, b"");
            }
        }
    }
    l.finish()
}

fn path_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..=3)
        .prop_map(|v| v.join("/"))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (prop::sample::select(vec![0o644u32, 0o600, 0o755]), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(mode, data)| Op::File { mode, data }),
        3 => prop::sample::select(vec![0o755u32, 0o700, 0o711]).prop_map(|mode| Op::Dir { mode }),
        1 => prop::sample::select(vec!["a", "../b", "/etc/x"]).prop_map(|t| Op::Symlink { target: t.to_string() }),
        2 => Just(Op::Whiteout),
        2 => Just(Op::Opaque),
    ]
}

fn layer_strategy() -> impl Strategy<Value = (BTreeMap<String, Op>, Vec<usize>)> {
    (
        prop::collection::vec((path_strategy(), op_strategy()), 1..10),
        prop::collection::vec(any::<usize>(), 0..10),
    )
        .prop_map(|(raw, pos)| (normalize(raw), pos))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn layer_stacks_match_the_overlay_model(layers in prop::collection::vec(layer_strategy(), 1..5)) {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut model = State::new();
        for (i, (layer, pos)) in layers.iter().enumerate() {
            let p = dir.path().join(format!("l{i}.tar"));
            std::fs::write(&p, render(layer, pos)).unwrap();
            paths.push(p);
            apply(&mut model, layer);
        }
        let img = dir.path().join("img.ext4");
        unpack_layers(&paths, &img, 16 << 20).unwrap();
        common::fsck(&img);
        let got: State = common::read_tree(&img)
            .into_iter()
            .map(|(k, e)| (String::from_utf8(k).unwrap(), (e.kind, e.mode)))
            .collect();
        prop_assert_eq!(got, model);
    }
}
