//! Shell patterns for `${VAR#pattern}` and friends, as BuildKit reads them:
//! `*` matches any string (including `/`), `?` any one character, `\x` is
//! a literal `x`; there are no bracket expressions (`[` is literal).

/// True when `pattern` matches all of `text`.
pub fn matches(pattern: &[char], text: &[char]) -> bool {
    let mut memo = vec![None; (pattern.len() + 1) * (text.len() + 1)];
    at(pattern, text, 0, 0, &mut memo)
}

fn at(p: &[char], t: &[char], pi: usize, ti: usize, memo: &mut Vec<Option<bool>>) -> bool {
    let key = pi * (t.len() + 1) + ti;
    if let Some(r) = memo[key] {
        return r;
    }
    let r = match p.get(pi) {
        None => ti == t.len(),
        Some('*') => (ti..=t.len()).any(|j| at(p, t, pi + 1, j, memo)),
        Some('?') => ti < t.len() && at(p, t, pi + 1, ti + 1, memo),
        Some('\\') if pi + 1 < p.len() => {
            ti < t.len() && t[ti] == p[pi + 1] && at(p, t, pi + 2, ti + 1, memo)
        }
        Some(c) => ti < t.len() && t[ti] == *c && at(p, t, pi + 1, ti + 1, memo),
    };
    memo[key] = Some(r);
    r
}
