//! `.dockerignore`: Docker's exclusion patterns for the build context.
//!
//! Patterns follow Go's `filepath.Match` plus `**` (any number of
//! directories); `!` marks an exception; the last matching pattern wins; a
//! pattern that matches a directory excludes everything below it.

use containerization_error::{ContainerizationError, Result};

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// One pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern text (no `!`, no leading `/` or `./`).
    pub text: String,
    /// True for a `!` exception (re-includes what it matches).
    pub exception: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**` at the end: anything
    Deep,
    /// `**` elsewhere (a following `/` eaten): zero or more directories
    DeepDir,
    /// `[...]`
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl DockerIgnore {
    /// Parses the file text; `#` lines and blank lines are ignored.
    pub fn parse(text: &str) -> Result<Self> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            // Only a `#` in the first column starts a comment, as in moby.
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(b) => (true, b.trim()),
                None => (false, line),
            };
            let text = clean(body);
            if text.is_empty() {
                continue;
            }
            let tokens = tokenize(&text).map_err(|m| {
                ContainerizationError::invalid_argument(format!(
                    ".dockerignore:{}: {m} in pattern '{body}'",
                    i + 1
                ))
            })?;
            patterns.push(Pattern {
                text,
                exception,
                tokens,
            });
        }
        Ok(Self { patterns })
    }

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when any pattern is an exception (a directory that is excluded
    /// may then still hold included files, so walkers must descend).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// True when `path` (relative to the context, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path.is_empty() || path == "." {
            return false;
        }
        let mut excluded = false;
        for p in &self.patterns {
            if p.matches_or_parent(&path) {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

impl Pattern {
    /// Matches `path` or one of its parent directories.
    fn matches_or_parent(&self, path: &str) -> bool {
        if self.matches(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.matches(&path[..i]))
    }

    /// Matches exactly `path`.
    pub fn matches(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        let mut memo = vec![None; (self.tokens.len() + 1) * (s.len() + 1)];
        match_at(&self.tokens, &s, 0, 0, &mut memo)
    }
}

fn match_at(t: &[Token], s: &[char], ti: usize, si: usize, memo: &mut Vec<Option<bool>>) -> bool {
    let key = ti * (s.len() + 1) + si;
    if let Some(r) = memo[key] {
        return r;
    }
    let r = if ti == t.len() {
        si == s.len()
    } else {
        match &t[ti] {
            Token::Lit(c) => si < s.len() && s[si] == *c && match_at(t, s, ti + 1, si + 1, memo),
            Token::One => si < s.len() && s[si] != '/' && match_at(t, s, ti + 1, si + 1, memo),
            Token::Class { negated, ranges } => {
                si < s.len()
                    && s[si] != '/'
                    && (ranges.iter().any(|(a, b)| *a <= s[si] && s[si] <= *b) != *negated)
                    && match_at(t, s, ti + 1, si + 1, memo)
            }
            Token::Star => {
                let mut j = si;
                loop {
                    if match_at(t, s, ti + 1, j, memo) {
                        break true;
                    }
                    if j >= s.len() || s[j] == '/' {
                        break false;
                    }
                    j += 1;
                }
            }
            Token::Deep => (si..=s.len()).any(|j| match_at(t, s, ti + 1, j, memo)),
            Token::DeepDir => {
                match_at(t, s, ti + 1, si, memo)
                    || (si..s.len()).any(|j| s[j] == '/' && match_at(t, s, ti + 1, j + 1, memo))
            }
        }
    };
    memo[key] = Some(r);
    r
}

fn tokenize(p: &str) -> std::result::Result<Vec<Token>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                // `***` behaves like `**`.
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                // As moby's patternmatcher: `**` eats a following `/`; at the
                // end it matches anything, elsewhere any number of whole
                // directories (`(.*/)?`).
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                out.push(if i >= chars.len() {
                    Token::Deep
                } else {
                    Token::DeepDir
                });
            }
            '*' => {
                out.push(Token::Star);
                i += 1;
            }
            '?' => {
                out.push(Token::One);
                i += 1;
            }
            '\\' => {
                let c = *chars.get(i + 1).ok_or("trailing backslash")?;
                out.push(Token::Lit(c));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = matches!(chars.get(i), Some('^') | Some('!'));
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = *chars.get(i).ok_or("unterminated character class")?;
                    if c == ']' && !first {
                        i += 1;
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i).ok_or("unterminated character class")?
                    } else {
                        c
                    };
                    i += 1;
                    let hi = if chars.get(i) == Some(&'-')
                        && chars.get(i + 1).is_some_and(|c| *c != ']')
                    {
                        let h = chars[i + 1];
                        i += 2;
                        h
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err("bad character range".into());
                    }
                    ranges.push((lo, hi));
                }
                out.push(Token::Class { negated, ranges });
            }
            c => {
                out.push(Token::Lit(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `filepath.Clean` with the leading `/` removed: `./a//b/../c/` -> `a/c`.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}
