//! Stage selection and dependency edges.

mod common;
use common::*;

const MULTI: &str = "\
FROM alpine AS base
RUN true
FROM base AS deps
RUN true
FROM golang AS tools
RUN true
FROM scratch AS unused
COPY --from=busybox:latest /bin/sh /sh
FROM deps AS build
COPY --from=tools /go /go
RUN --mount=type=bind,from=unused-not-a-stage,target=/x true
FROM scratch AS final
COPY --from=build /out /
COPY --from=0 /etc/os-release /
RUN --mount=type=cache,from=tools,target=/c true
";

#[test]
fn dependency_edges() {
    let d = ok(MULTI);
    assert_eq!(
        d.dependency_edges(),
        vec![vec![], vec![0], vec![], vec![], vec![1, 2], vec![0, 2, 4]]
    );
    assert_eq!(d.stage_index("BUILD"), Some(4));
    assert_eq!(d.stage_index("2"), Some(2));
    assert_eq!(d.stage_index("nope"), None);
}

#[test]
fn target_selection() {
    let d = ok(MULTI);
    assert_eq!(
        d.target_stages(None).unwrap(),
        vec![0, 1, 2, 4, 5],
        "the unused stage is skipped"
    );
    assert_eq!(d.target_stages(Some("deps")).unwrap(), vec![0, 1]);
    assert_eq!(d.target_stages(Some("Tools")).unwrap(), vec![2]);
    assert_eq!(
        d.target_stages(Some("unused")).unwrap(),
        vec![3],
        "an image --from is no stage dependency"
    );
    let e = d.target_stages(Some("missing")).unwrap_err();
    assert!(e.is_code(containerization_error::Code::InvalidArgument));
    assert!(
        e.message
            .starts_with("--target missing: no stage with that name"),
        "{}",
        e.message
    );
    assert!(
        e.message
            .contains("base, deps, tools, unused, build, final")
    );
}

#[test]
fn later_stage_names_are_images() {
    // A reference to a stage defined later is an image reference, as in BuildKit.
    let d = ok("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n");
    assert_eq!(d.dependency_edges(), vec![Vec::<usize>::new(), vec![]]);
    let d = ok("FROM b\nFROM scratch AS b\n");
    assert_eq!(d.stages[0].base_stage, None);
}
