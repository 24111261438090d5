//! Helpers shared by the integration tests.
#![allow(dead_code)]

use container_build::{Dockerfile, Instruction, InstructionKind, parse};
use std::collections::HashMap;

/// Parses with no build args, panicking with the error message on failure.
pub fn ok(text: &str) -> Dockerfile {
    ok_args(text, &[])
}

/// Parses with build args.
pub fn ok_args(text: &str, args: &[(&str, &str)]) -> Dockerfile {
    let map: HashMap<String, String> = args
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse(text, &map) {
        Ok(d) => d,
        Err(e) => panic!("parse failed: {}", e.message),
    }
}

/// The error message of a parse that must fail.
pub fn err(text: &str) -> String {
    match parse(text, &HashMap::new()) {
        Ok(d) => panic!("parse unexpectedly succeeded: {d:?}"),
        Err(e) => {
            assert!(
                e.is_code(containerization_error::Code::InvalidArgument),
                "code: {:?}",
                e.code
            );
            e.message
        }
    }
}

/// The instructions of the only (last) stage.
pub fn last_instrs(d: &Dockerfile) -> &[Instruction] {
    &d.stages.last().expect("a stage").instructions
}

/// The kind of the single instruction of `FROM scratch\n<line>`.
pub fn one(line: &str) -> InstructionKind {
    let d = ok(&format!("FROM scratch\n{line}\n"));
    let ins = last_instrs(&d);
    assert_eq!(ins.len(), 1, "{ins:?}");
    ins[0].kind.clone()
}
