//! `.dockerignore` semantics.

use container_build::DockerIgnore;

fn check(patterns: &str, cases: &[(&str, bool)]) {
    let ig = DockerIgnore::parse(patterns).expect("parse");
    for (path, want) in cases {
        assert_eq!(
            ig.is_excluded(path),
            *want,
            "patterns {patterns:?}, path {path}"
        );
    }
}

#[test]
fn simple_names_and_directories() {
    check(
        "# comment\n\nnode_modules\n*.log\n",
        &[
            ("node_modules", true),
            ("node_modules/a/b.js", true),
            ("src/node_modules", false),
            ("a.log", true),
            ("logs/a.log", false),
            ("a.txt", false),
        ],
    );
}

#[test]
fn star_question_and_classes() {
    check(
        "*/temp*\n*/*/temp*\ntemp?\n[a-c]x.txt\n[!d]y.txt\n",
        &[
            ("somedir/temporary.txt", true),
            ("somedir/sub/temp", true),
            ("a/b/c/temp", false),
            ("temp", false),
            ("temp1", true),
            ("temp12", false),
            ("bx.txt", true),
            ("dx.txt", false),
            ("ay.txt", true),
            ("dy.txt", false),
        ],
    );
}

#[test]
fn double_star() {
    check(
        "**/*.go\nbuild/**\n**/secret\n",
        &[
            ("main.go", true),
            ("a/b/c.go", true),
            ("a/go", false),
            ("build/x", true),
            ("build/x/y", true),
            ("secret", true),
            ("deep/down/secret", true),
            ("secrets", false),
        ],
    );
}

#[test]
fn exceptions_last_match_wins() {
    check(
        "*.md\n!README.md\nREADME-secret.md\n",
        &[
            ("CHANGES.md", true),
            ("README.md", false),
            ("README-secret.md", true),
        ],
    );
    check("!a.txt\n*\n", &[("a.txt", true), ("b", true)]);
    check(
        "docs\n!docs/keep.md\n",
        &[("docs/x.md", true), ("docs/keep.md", false)],
    );
    assert!(DockerIgnore::parse("a\n!b\n").unwrap().has_exceptions());
    assert!(!DockerIgnore::parse("a\n").unwrap().has_exceptions());
}

#[test]
fn leading_slash_and_dot_slash_are_stripped() {
    check(
        "/root.txt\n./dir/\nx/../y\n",
        &[
            ("root.txt", true),
            ("dir/f", true),
            ("y", true),
            ("x", false),
            ("./root.txt", true),
            ("/dir", true),
        ],
    );
    let ig = DockerIgnore::parse("/a/\n!./b\n").unwrap();
    assert_eq!(ig.patterns()[0].text, "a");
    assert_eq!(ig.patterns()[1].text, "b");
    assert!(ig.patterns()[1].exception);
}

#[test]
fn escaped_characters() {
    check("a\\*b\n", &[("a*b", true), ("axb", false)]);
}

#[test]
fn bad_pattern_names_its_line() {
    let e = DockerIgnore::parse("ok\n[abc\n").unwrap_err();
    assert_eq!(
        e.message,
        ".dockerignore:2: unterminated character class in pattern '[abc'"
    );
}

#[test]
fn double_star_inside_a_name_spans_whole_directories() {
    // moby compiles `a**b` to `a(.*/)?b`.
    check(
        "a**b\nx/**\n",
        &[
            ("ab", true),
            ("az/b", true),
            ("azb", false),
            ("x/y/z", true),
            ("x", false),
        ],
    );
}

#[test]
fn comments_only_in_the_first_column() {
    check("#a\n #b\n", &[("#a", false), ("#b", true)]);
}
