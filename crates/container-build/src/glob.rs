//! Shell patterns for `${VAR#pattern}` and friends: `*` and `?` match any
//! character (including `/`), `[...]` is a class, `\x` is a literal `x`.

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
        Some('[') => match class(p, pi) {
            Some((end, negated, ranges)) => {
                ti < t.len()
                    && (ranges.iter().any(|(a, b)| *a <= t[ti] && t[ti] <= *b) != negated)
                    && at(p, t, end, ti + 1, memo)
            }
            // An unterminated `[` is a literal.
            None => ti < t.len() && t[ti] == '[' && at(p, t, pi + 1, ti + 1, memo),
        },
        Some('\\') if pi + 1 < p.len() => {
            ti < t.len() && t[ti] == p[pi + 1] && at(p, t, pi + 2, ti + 1, memo)
        }
        Some(c) => ti < t.len() && t[ti] == *c && at(p, t, pi + 1, ti + 1, memo),
    };
    memo[key] = Some(r);
    r
}

/// A parsed `[...]`: index after `]`, negated, inclusive ranges.
type Class = (usize, bool, Vec<(char, char)>);

/// Parses `[...]` at `start`.
fn class(p: &[char], start: usize) -> Option<Class> {
    let mut i = start + 1;
    let negated = matches!(p.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some((i + 1, negated, ranges));
        }
        first = false;
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            ranges.push((c, p[i + 1]));
            i += 2;
        } else {
            ranges.push((c, c));
        }
    }
}
