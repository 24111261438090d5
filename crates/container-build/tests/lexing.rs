//! Heredocs, continuations, comments, directives and the escape character.

mod common;
use common::*;
use container_build::*;

fn run(d: &Dockerfile, i: usize) -> Run {
    match &last_instrs(d)[i].kind {
        InstructionKind::Run(r) => r.clone(),
        k => panic!("{k:?}"),
    }
}

#[test]
fn heredoc_run_script() {
    let d = ok("FROM scratch\nRUN <<EOF\necho $HOME\n  indented\nEOF\nUSER x\n");
    let r = run(&d, 0);
    assert_eq!(r.command, Command::Shell("<<EOF".into()));
    assert_eq!(
        r.heredocs,
        vec![Heredoc {
            delimiter: "EOF".into(),
            content: "echo $HOME\n  indented\n".into(),
            expand: true,
            strip_tabs: false
        }]
    );
    assert_eq!(last_instrs(&d)[1].line, 6);
}

#[test]
fn heredoc_strip_tabs_and_quoted() {
    let d = ok("FROM scratch\nRUN <<-'END' sh\n\tone\n\t\ttwo\n\tEND\n");
    let r = run(&d, 0);
    assert_eq!(r.command, Command::Shell("<<-'END' sh".into()));
    assert_eq!(r.heredocs[0].content, "one\ntwo\n");
    assert!(!r.heredocs[0].expand);
    assert!(r.heredocs[0].strip_tabs);
    let d = ok("FROM scratch\nRUN cat <<\"X\"\n$A\nX\n");
    assert!(!run(&d, 0).heredocs[0].expand);
}

#[test]
fn several_heredocs_on_one_line() {
    let d = ok("FROM scratch\nRUN cat <<A > /a && cat <<B > /b\nalpha\nA\nbeta\nB\nRUN true\n");
    let r = run(&d, 0);
    assert_eq!(r.heredocs.len(), 2);
    assert_eq!(r.heredocs[0].content, "alpha\n");
    assert_eq!(r.heredocs[1].content, "beta\n");
    assert_eq!(last_instrs(&d)[1].line, 7);
}

#[test]
fn heredoc_body_keeps_comments_and_blank_lines() {
    let d = ok("FROM scratch\nRUN <<EOF\n# not a comment\n\nls \\\nEOF\n");
    assert_eq!(run(&d, 0).heredocs[0].content, "# not a comment\n\nls \\\n");
}

#[test]
fn heredoc_in_quotes_is_not_a_heredoc() {
    let d = ok("FROM scratch\nRUN echo '<<EOF'\nUSER x\n");
    assert!(run(&d, 0).heredocs.is_empty());
    let d = ok("FROM scratch\nRUN cat <<< word\n");
    assert!(run(&d, 0).heredocs.is_empty());
}

#[test]
fn copy_heredoc() {
    let d = ok(
        "FROM scratch\nARG NAME=world\nCOPY <<EOF <<'RAW' /dest/\nhello $NAME \"q\"\nEOF\nkeep $NAME\nRAW\n",
    );
    let InstructionKind::Copy(c) = &last_instrs(&d)[1].kind else {
        panic!()
    };
    assert_eq!(c.dest, "/dest/");
    let CopySource::Heredoc(h) = &c.sources[0] else {
        panic!()
    };
    assert_eq!(h.content, "hello world \"q\"\n");
    let CopySource::Heredoc(h) = &c.sources[1] else {
        panic!()
    };
    assert_eq!(h.content, "keep $NAME\n");
    assert!(
        err("FROM scratch\nCOPY a <<EOF\nx\nEOF\n").contains("destination can not be a heredoc")
    );
}

#[test]
fn unterminated_heredoc() {
    let m = err("FROM scratch\nRUN true\nRUN <<EOF\necho\nEO\n");
    assert_eq!(
        m,
        "Dockerfile:3: unterminated heredoc: no line 'EOF' closes it"
    );
}

#[test]
fn continuation_skips_comments_and_blank_lines() {
    let d = ok(
        "FROM scratch\nRUN apt-get update && \\\n# a comment\n\n    apt-get install -y \\\n      curl\nUSER x\n",
    );
    assert_eq!(
        run(&d, 0).command,
        Command::Shell("apt-get update &&     apt-get install -y       curl".into())
    );
    assert_eq!(last_instrs(&d)[1].line, 7);
}

#[test]
fn continuation_with_trailing_whitespace_and_at_eof() {
    let d = ok("FROM scratch\nRUN a \\  \n b\nRUN c \\");
    assert_eq!(run(&d, 0).command, Command::Shell("a  b".into()));
    assert_eq!(run(&d, 1).command, Command::Shell("c".into()));
}

#[test]
fn escape_directive_backtick() {
    let d = ok("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo done\nCOPY a` b c:\\dest\\\n");
    assert_eq!(d.directives.escape, '`');
    assert_eq!(
        run(&d, 0).command,
        Command::Shell("dir c:\\   && echo done".into())
    );
    let InstructionKind::Copy(c) = &last_instrs(&d)[1].kind else {
        panic!()
    };
    assert_eq!(c.sources, vec![CopySource::Path("a b".into())]);
    assert_eq!(c.dest, "c:\\dest\\");
}

#[test]
fn syntax_and_check_directives() {
    let d = ok("# syntax=docker/dockerfile:1.7\n#check=skip=all\nFROM scratch\n");
    assert_eq!(
        d.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(d.directives.escape, '\\');
}

#[test]
fn directives_only_at_the_top() {
    // After a comment, an instruction or a blank line, `# escape=` is a comment.
    let d = ok("# hello\n# escape=`\nFROM scratch\n");
    assert_eq!(d.directives.escape, '\\');
    let d = ok("FROM scratch\n# escape=`\nRUN a \\\n b\n");
    assert_eq!(d.directives.escape, '\\');
    assert_eq!(run(&d, 0).command, Command::Shell("a  b".into()));
    assert!(err("# escape=x\nFROM scratch\n").starts_with("Dockerfile:1: invalid escape token"));
    assert!(
        err("# syntax=a\n# syntax=b\nFROM scratch\n").starts_with("Dockerfile:2: only one syntax")
    );
}

#[test]
fn crlf_and_bom() {
    let d = ok("\u{feff}FROM scratch\r\nRUN a \\\r\n b\r\n");
    assert_eq!(run(&d, 0).command, Command::Shell("a  b".into()));
}

/// BuildKit's own heredoc cases (parser_heredoc_test.go), as (line, name, content, expand).
#[test]
fn buildkit_heredoc_cases() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("RUN <<EMPTY\nEMPTY", "EMPTY", "", true),
        ("RUN 3<<EMPTY2\nEMPTY2", "EMPTY2", "", true),
        (
            "RUN <<INDENT\n\tfoo\n\tbar\nINDENT",
            "INDENT",
            "\tfoo\n\tbar\n",
            true,
        ),
        (
            "RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2",
            "UNINDENT2",
            "baz\nquux\n",
            true,
        ),
        (
            "RUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND",
            "NOEXPAND",
            "don't expand $NAME\n",
            false,
        ),
        (
            "RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT",
            "MOUNT",
            "echo hello\n",
            true,
        ),
        (
            "RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX",
            "COMPLEX",
            "print('hello world')\n",
            true,
        ),
        ("RUN <<eo'f'\necho foo\neof", "eof", "echo foo\n", false),
        ("RUN <<eo\\'f\necho foo\neo'f", "eo'f", "echo foo\n", true),
        (
            "RUN <<'e'o\\'f\necho foo\neo'f",
            "eo'f",
            "echo foo\n",
            false,
        ),
        (
            "RUN <<'one two'\necho bar\none two",
            "one two",
            "echo bar\n",
            false,
        ),
        ("RUN <<$EOF\n$EOF", "$EOF", "", true),
        ("RUN <<  EOF\nEOF", "EOF", "", true),
        ("RUN <<  EOF  > foo\nEOF", "EOF", "", true),
        ("RUN <<- EOF\nEOF", "EOF", "", true),
        ("RUN << -EOF\n-EOF", "-EOF", "", true),
    ];
    for (text, name, content, expand) in cases {
        let d = ok(&format!("FROM scratch\n{text}\nUSER x\n"));
        let r = run(&d, 0);
        assert_eq!(r.heredocs.len(), 1, "{text:?}");
        let h = &r.heredocs[0];
        assert_eq!(
            (h.delimiter.as_str(), h.content.as_str(), h.expand),
            (*name, *content, *expand),
            "{text:?}"
        );
        assert_eq!(last_instrs(&d).len(), 2, "{text:?}");
    }
}

#[test]
fn buildkit_non_heredocs() {
    for text in [
        "RUN \"<<NOHEREDOC\"",
        "RUN '<<EOF'",
        "RUN [\"<<EOF\"]",
        "RUN [\"<<'EOF'\"]",
        "RUN cat <<<EOF",
        "RUN echo <<",
    ] {
        let d = ok(&format!("FROM scratch\n{text}\n"));
        assert!(run(&d, 0).heredocs.is_empty(), "{text:?}");
    }
    // USER takes no heredoc: the next line is an instruction of its own.
    assert!(
        err("FROM scratch\nUSER <<INVALID\nINVALID\n")
            .starts_with("Dockerfile:3: unknown instruction: INVALID")
    );
}

#[test]
fn copy_heredocs_in_buildkit_order() {
    let d = ok("FROM scratch\nCOPY <<X <<Y /dest\nY\nX\nX\nY\nCOPY << F /f\nbody\nF\n");
    let InstructionKind::Copy(c) = &last_instrs(&d)[0].kind else {
        panic!()
    };
    let bodies: Vec<&str> = c
        .sources
        .iter()
        .map(|s| match s {
            CopySource::Heredoc(h) => h.content.as_str(),
            CopySource::Path(p) => p.as_str(),
        })
        .collect();
    assert_eq!(bodies, vec!["Y\n", "X\n"]);
    let InstructionKind::Copy(c) = &last_instrs(&d)[1].kind else {
        panic!()
    };
    assert!(
        matches!(&c.sources[..], [CopySource::Heredoc(h)] if h.content == "body\n" && h.delimiter == "F")
    );
    assert_eq!(c.dest, "/f");
}
