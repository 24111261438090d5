//! The parser never panics, whatever the input.

use container_build::{DockerIgnore, fuzz_parse, parse};
use proptest::prelude::*;
use std::collections::HashMap;

/// Fragments that reach the interesting paths more often than random text.
fn dockerfile_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ADD ".to_string()),
        Just("ENV ".to_string()),
        Just("ARG ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("EXPOSE ".to_string()),
        Just("--mount=type=cache,target=/x ".to_string()),
        Just("--from=0 ".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E'".to_string()),
        Just("EOF".to_string()),
        Just("\\\n".to_string()),
        Just("\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("${A:-$B}".to_string()),
        Just("${".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("[\"a\"]".to_string()),
        Just(" AS x".to_string()),
        "[ -~]{0,8}".prop_map(|s| s),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn parse_never_panics_on_fragments(text in dockerfile_like()) {
        let _ = parse(&text, &HashMap::new());
        fuzz_parse(text.as_bytes());
    }

    #[test]
    fn parse_never_panics_on_any_string(text in any::<String>()) {
        let _ = parse(&text, &HashMap::new());
        let _ = DockerIgnore::parse(&text).map(|d| d.is_excluded(&text));
    }

    #[test]
    fn fuzz_entry_never_panics(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_parse(&data);
    }
}
