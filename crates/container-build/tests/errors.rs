//! Every error names its Dockerfile line and is InvalidArgument.

mod common;
use common::*;

#[test]
fn error_table() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM scratch\n\n# c\nCOPPY a b\n",
            "Dockerfile:4: unknown instruction: COPPY",
        ),
        ("", "Dockerfile: no FROM instruction"),
        (
            "# only a comment\nARG A=1\n",
            "Dockerfile: no FROM instruction",
        ),
        (
            "RUN true\nFROM scratch\n",
            "Dockerfile:1: RUN before the first FROM",
        ),
        ("FROM\n", "Dockerfile:1: FROM requires an image"),
        ("FROM a b c d\n", "Dockerfile:1: FROM takes an image"),
        ("FROM a XS b\n", "Dockerfile:1: FROM takes an image"),
        (
            "FROM a AS 1bad\n",
            "Dockerfile:1: invalid stage name '1bad'",
        ),
        (
            "FROM a AS x\nFROM b AS X\n",
            "Dockerfile:2: duplicate stage name 'X'",
        ),
        (
            "ARG I\nFROM $I\n",
            "Dockerfile:2: base name ($I) should not be blank",
        ),
        (
            "FROM --plat=x a\n",
            "Dockerfile:1: unknown flag for FROM: --plat",
        ),
        (
            "FROM scratch\nRUN --mount=type=nope,target=/x true\n",
            "Dockerfile:2: invalid --mount: unknown type 'nope'",
        ),
        (
            "FROM scratch\nRUN --mount=type=cache true\n",
            "Dockerfile:2: invalid --mount: type=cache needs target=",
        ),
        (
            "FROM scratch\nRUN --mount=type=cache,target=/x,sharing=odd true\n",
            "Dockerfile:2: invalid --mount: sharing=odd",
        ),
        (
            "FROM scratch\nRUN --mount=type=cache,target=/x,mode=9 true\n",
            "Dockerfile:2: invalid --mount: 'mode=9'",
        ),
        (
            "FROM scratch\nRUN --mount=type=secret true\n",
            "Dockerfile:2: invalid --mount: type=secret needs id=",
        ),
        (
            "FROM scratch\nRUN --network=wifi true\n",
            "Dockerfile:2: invalid --network=wifi",
        ),
        (
            "FROM scratch\nRUN --mount true\n",
            "Dockerfile:2: flag --mount needs a value",
        ),
        (
            "FROM scratch\nRUN\n",
            "Dockerfile:2: RUN requires a command",
        ),
        (
            "FROM scratch\nRUN --network=none\n",
            "Dockerfile:2: RUN requires a command",
        ),
        (
            "FROM scratch\nCOPY onlyone\n",
            "Dockerfile:2: COPY requires at least two arguments",
        ),
        (
            "FROM scratch\nCOPY --link=maybe a b\n",
            "Dockerfile:2: invalid value for --link",
        ),
        (
            "FROM scratch\nCOPY --from= a b\n",
            "Dockerfile:2: --from must not be empty",
        ),
        (
            "FROM scratch\nCOPY --from=3 a b\n",
            "Dockerfile:2: --from=3: no earlier stage",
        ),
        (
            "FROM scratch AS me\nCOPY --from=me a b\n",
            "Dockerfile:2: --from=me: a stage can not copy from itself",
        ),
        (
            "FROM scratch\nENV\n",
            "Dockerfile:2: ENV requires at least one argument",
        ),
        (
            "FROM scratch\nENV ONLYKEY\n",
            "Dockerfile:2: ENV ONLYKEY: missing value",
        ),
        (
            "FROM scratch\nENV A=1 B\n",
            "Dockerfile:2: ENV: can't find = in 'B'",
        ),
        (
            "FROM scratch\nENV =1\n",
            "Dockerfile:2: ENV names can not be blank",
        ),
        (
            "FROM scratch\nLABEL\n",
            "Dockerfile:2: LABEL requires at least one argument",
        ),
        (
            "FROM scratch\nARG\n",
            "Dockerfile:2: ARG requires at least one argument",
        ),
        (
            "FROM scratch\nARG a-b=1\n",
            "Dockerfile:2: invalid ARG name 'a-b'",
        ),
        (
            "FROM scratch\nWORKDIR\n",
            "Dockerfile:2: WORKDIR requires at least one argument",
        ),
        (
            "FROM scratch\nUSER a b\n",
            "Dockerfile:2: USER takes exactly one argument",
        ),
        (
            "FROM scratch\nSTOPSIGNAL\n",
            "Dockerfile:2: STOPSIGNAL requires at least one argument",
        ),
        (
            "FROM scratch\nSHELL /bin/sh -c\n",
            "Dockerfile:2: SHELL requires the JSON form",
        ),
        (
            "FROM scratch\nSHELL [\"/bin/sh\", \n",
            "Dockerfile:2: SHELL requires the JSON form",
        ),
        (
            "FROM scratch\nSHELL []\n",
            "Dockerfile:2: SHELL requires the JSON form",
        ),
        (
            "FROM scratch\nEXPOSE\n",
            "Dockerfile:2: EXPOSE requires at least one argument",
        ),
        (
            "FROM scratch\nEXPOSE 0\n",
            "Dockerfile:2: invalid port in EXPOSE",
        ),
        ("FROM scratch\nWORKDIR ${X\n", "Dockerfile:2: missing '}'"),
        (
            "FROM scratch\nWORKDIR ${X:?needed}\n",
            "Dockerfile:2: X: needed",
        ),
        (
            "FROM scratch\nENV A=\"open\n",
            "Dockerfile:2: unterminated double quote",
        ),
        (
            "FROM scratch\nLABEL a='open\n",
            "Dockerfile:2: unterminated single quote",
        ),
        (
            "FROM scratch\nRUN a \\\n b\nFROMM x\n",
            "Dockerfile:4: unknown instruction: FROMM",
        ),
        (
            "FROM scratch\nRUN <<EOF\nEOF\nRUN <<X\n",
            "Dockerfile:4: unterminated heredoc",
        ),
        (
            "FROM scratch\nCMD [\"a\", 1]\n",
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        (
            "FROM scratch\nRUN --network=none [true]\n",
            "Dockerfile:2: when using JSON array syntax",
        ),
        (
            "FROM scratch\nCOPY [\"a\", null]\n",
            "Dockerfile:2: when using JSON array syntax",
        ),
        (
            "FROM scratch\nHEALTHCHECK CMD [{}]\n",
            "Dockerfile:2: when using JSON array syntax",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(
            got.starts_with(want),
            "for {text:?}\n  got: {got}\n want: {want}..."
        );
    }
}

#[test]
fn error_message_is_one_line() {
    let m = err("FROM scratch\nRUN --mount=type=cache,target=/x,uid=abc true\n");
    assert_eq!(
        m,
        "Dockerfile:2: invalid --mount: 'uid=abc' is not a number"
    );
    assert!(!m.contains('\n'));
}

#[test]
fn unset_platform_arg_is_explained() {
    let m = err("FROM --platform=$BUILDPLATFORM golang\n");
    assert!(
        m.starts_with("Dockerfile:1: FROM --platform=$BUILDPLATFORM expands to nothing"),
        "{m}"
    );
}
