//! Docker's word lexer: quotes, escapes and `$VAR` expansion.
//!
//! Mirrors BuildKit's `shell.Lex`: single quotes are literal, double quotes
//! allow `$` expansion and escape only `"`, `$` and the escape character,
//! an unquoted escape makes the next character literal. Expansion results
//! outside quotes are split on whitespace when words are requested.

use std::collections::HashMap;

/// Variables visible to an expansion; `None` inside means declared but unset.
pub trait Vars {
    /// The value of `name`, or `None` when it is unset.
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// Why a word could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError(pub String);

/// Processes words with quote removal and, when `vars` is set, expansion.
pub struct Lexer<'a> {
    escape: char,
    vars: Option<&'a dyn Vars>,
}

struct Out {
    split: bool,
    /// Keep escape characters (patterns of `${VAR#...}`, where `\*` is a literal star).
    raw_escapes: bool,
    words: Vec<String>,
    cur: String,
    has: bool,
}

impl Out {
    fn new(split: bool) -> Self {
        Self {
            split,
            raw_escapes: false,
            words: Vec::new(),
            cur: String::new(),
            has: false,
        }
    }
    fn lit(&mut self, c: char) {
        self.cur.push(c);
        self.has = true;
    }
    fn lit_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.has = true;
    }
    fn expanded(&mut self, s: &str, quoted: bool) {
        if !self.split || quoted {
            self.cur.push_str(s);
            self.has |= quoted || !s.is_empty();
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.end_word();
            } else {
                self.lit(c);
            }
        }
    }
    fn end_word(&mut self) {
        if self.has {
            self.words.push(std::mem::take(&mut self.cur));
            self.has = false;
        }
    }
}

struct Cursor<'s> {
    chars: &'s [char],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }
}

impl<'a> Lexer<'a> {
    /// A lexer; `vars: None` removes quotes but leaves `$...` as written.
    pub fn new(escape: char, vars: Option<&'a dyn Vars>) -> Self {
        Self { escape, vars }
    }

    /// Processes `s` as one word (no splitting on whitespace).
    pub fn word(&self, s: &str) -> Result<String, LexError> {
        let chars: Vec<char> = s.chars().collect();
        let mut cur = Cursor {
            chars: &chars,
            pos: 0,
        };
        let mut out = Out::new(false);
        self.run(&mut cur, &[], &mut out)?;
        Ok(out.cur)
    }

    /// Processes `s` into words split on unquoted whitespace.
    pub fn words(&self, s: &str) -> Result<Vec<String>, LexError> {
        let chars: Vec<char> = s.chars().collect();
        let mut cur = Cursor {
            chars: &chars,
            pos: 0,
        };
        let mut out = Out::new(true);
        self.run(&mut cur, &[], &mut out)?;
        out.end_word();
        Ok(out.words)
    }

    /// Processes until one of `stops` (returned) or the end of input (an
    /// error when `stops` is not empty).
    fn run(
        &self,
        cur: &mut Cursor<'_>,
        stops: &[char],
        out: &mut Out,
    ) -> Result<Option<char>, LexError> {
        while let Some(c) = cur.peek() {
            if stops.contains(&c) {
                cur.next();
                return Ok(Some(c));
            }
            match c {
                '\'' => {
                    cur.next();
                    out.has = true;
                    loop {
                        match cur.next() {
                            Some('\'') => break,
                            Some(ch) => out.lit(ch),
                            None => return Err(LexError("unterminated single quote".into())),
                        }
                    }
                }
                '"' => {
                    cur.next();
                    out.has = true;
                    loop {
                        match cur.next() {
                            Some('"') => break,
                            Some('$') => self.dollar(cur, out, true)?,
                            Some(ch) if ch == self.escape => match cur.next() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    if out.raw_escapes {
                                        out.lit(ch);
                                    }
                                    out.lit(n)
                                }
                                Some(n) => {
                                    out.lit(ch);
                                    out.lit(n);
                                }
                                None => return Err(LexError("unterminated double quote".into())),
                            },
                            Some(ch) => out.lit(ch),
                            None => return Err(LexError("unterminated double quote".into())),
                        }
                    }
                }
                '$' => {
                    cur.next();
                    self.dollar(cur, out, false)?;
                }
                ch if ch == self.escape => {
                    cur.next();
                    // A trailing escape is dropped, as BuildKit does.
                    if let Some(n) = cur.next() {
                        if out.raw_escapes {
                            out.lit(ch);
                        }
                        out.lit(n);
                    }
                }
                ch if out.split && ch.is_whitespace() => {
                    cur.next();
                    out.end_word();
                }
                ch => {
                    cur.next();
                    out.lit(ch);
                }
            }
        }
        if stops.is_empty() {
            Ok(None)
        } else {
            Err(LexError("missing '}' in variable substitution".into()))
        }
    }

    /// Handles what follows a `$` (already consumed).
    fn dollar(&self, cur: &mut Cursor<'_>, out: &mut Out, quoted: bool) -> Result<(), LexError> {
        let start = cur.pos - 1;
        match cur.peek() {
            Some('{') => {
                cur.next();
                let name = read_name(cur);
                if name.is_empty() {
                    return Err(LexError(
                        "bad substitution: missing variable name after '${'".into(),
                    ));
                }
                if matches!(cur.peek(), Some('#' | '%' | '/')) {
                    return self.pattern_op(cur, out, quoted, &name, start);
                }
                let (colon, op) = match cur.next() {
                    Some('}') => (false, None),
                    Some(':') => match cur.next() {
                        Some(o @ ('-' | '+' | '?')) => (true, Some(o)),
                        Some(o) => {
                            return Err(LexError(format!(
                                "unsupported modifier ':{o}' in ${{{name}}}"
                            )));
                        }
                        None => {
                            return Err(LexError("missing '}' in variable substitution".into()));
                        }
                    },
                    Some(o @ ('-' | '+' | '?')) => (false, Some(o)),
                    Some(o) => {
                        return Err(LexError(format!(
                            "unsupported modifier '{o}' in ${{{name}}}"
                        )));
                    }
                    None => return Err(LexError("missing '}' in variable substitution".into())),
                };
                let word = match op {
                    Some(_) => {
                        let mut inner = Out::new(false);
                        self.run(cur, &['}'], &mut inner)?;
                        Some(inner.cur)
                    }
                    None => None,
                };
                let Some(vars) = self.vars else {
                    let raw: String = cur.chars[start..cur.pos].iter().collect();
                    out.lit_str(&raw);
                    return Ok(());
                };
                let value = vars.get(&name);
                let set = match &value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                let result = match op {
                    None => value.unwrap_or_default(),
                    Some('-') => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            word.unwrap_or_default()
                        }
                    }
                    Some('+') => {
                        if set {
                            word.unwrap_or_default()
                        } else {
                            String::new()
                        }
                    }
                    _ => {
                        if !set {
                            let msg = word.unwrap_or_default();
                            let msg = match (msg.is_empty(), value.is_some()) {
                                (false, _) => msg,
                                (true, true) => "is not allowed to be empty".to_string(),
                                (true, false) => "is not allowed to be unset".to_string(),
                            };
                            return Err(LexError(format!("{name}: {msg}")));
                        }
                        value.unwrap_or_default()
                    }
                };
                out.expanded(&result, quoted);
            }
            Some(c) if c.is_alphanumeric() || c == '_' || is_special_param(c) => {
                let name = read_name(cur);
                match self.vars {
                    Some(vars) => out.expanded(&vars.get(&name).unwrap_or_default(), quoted),
                    None => {
                        out.lit('$');
                        out.lit_str(&name);
                    }
                }
            }
            _ => out.lit('$'),
        }
        Ok(())
    }
}

impl Lexer<'_> {
    /// `${name#pat}`, `##`, `%`, `%%`, `${name/pat/rep}` and `//`; the
    /// cursor is on the operator.
    fn pattern_op(
        &self,
        cur: &mut Cursor<'_>,
        out: &mut Out,
        quoted: bool,
        name: &str,
        start: usize,
    ) -> Result<(), LexError> {
        let op = cur.next().unwrap_or('#');
        let greedy = cur.peek() == Some(op);
        if greedy {
            cur.next();
        }
        let mut pattern = Out::new(false);
        pattern.raw_escapes = true;
        let mut replacement = None;
        if op == '/' {
            if self.run(cur, &['/', '}'], &mut pattern)? == Some('/') {
                let mut rep = Out::new(false);
                rep.raw_escapes = true;
                self.run(cur, &['}'], &mut rep)?;
                replacement = Some(rep.cur);
            }
        } else {
            self.run(cur, &['}'], &mut pattern)?;
        }
        let Some(vars) = self.vars else {
            let raw: String = cur.chars[start..cur.pos].iter().collect();
            out.lit_str(&raw);
            return Ok(());
        };
        let value: Vec<char> = vars.get(name).unwrap_or_default().chars().collect();
        let pat: Vec<char> = pattern.cur.chars().collect();
        let n = value.len();
        let result: String = match op {
            '#' => {
                let mut lens: Vec<usize> = (0..=n).collect();
                if greedy {
                    lens.reverse();
                }
                match lens
                    .into_iter()
                    .find(|l| crate::glob::matches(&pat, &value[..*l]))
                {
                    Some(l) => value[l..].iter().collect(),
                    None => value.iter().collect(),
                }
            }
            '%' => {
                let mut starts: Vec<usize> = (0..=n).rev().collect();
                if greedy {
                    starts.reverse();
                }
                match starts
                    .into_iter()
                    .find(|s| crate::glob::matches(&pat, &value[*s..]))
                {
                    Some(s) => value[..s].iter().collect(),
                    None => value.iter().collect(),
                }
            }
            _ => {
                let rep = replacement.unwrap_or_default();
                let mut res = String::new();
                let mut i = 0;
                let mut replaced = false;
                while i < n {
                    // The longest match starting at i, as shells do.
                    let m = if pat.is_empty() || (replaced && !greedy) {
                        None
                    } else {
                        (i + 1..=n)
                            .rev()
                            .find(|e| crate::glob::matches(&pat, &value[i..*e]))
                    };
                    match m {
                        Some(e) => {
                            res.push_str(&rep);
                            replaced = true;
                            i = e;
                        }
                        None => {
                            res.push(value[i]);
                            i += 1;
                        }
                    }
                }
                res
            }
        };
        out.expanded(&result, quoted);
        Ok(())
    }
}

/// POSIX special parameters (`$@`, `$?`, ...): one-character names that
/// BuildKit looks up like any other (so they are usually empty).
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// BuildKit's `processName`: digits alone, one special parameter, or a
/// run of letters, digits and `_`.
fn read_name(cur: &mut Cursor<'_>) -> String {
    let mut name = String::new();
    match cur.peek() {
        Some(c) if c.is_ascii_digit() => {
            while let Some(d) = cur.peek().filter(char::is_ascii_digit) {
                name.push(d);
                cur.next();
            }
            return name;
        }
        Some(c) if is_special_param(c) => {
            cur.next();
            return c.to_string();
        }
        _ => {}
    }
    while let Some(c) = cur.peek() {
        if c.is_alphanumeric() || c == '_' {
            name.push(c);
            cur.next();
        } else {
            break;
        }
    }
    name
}

/// Splits `s` on unquoted whitespace keeping quotes and escapes as written
/// (BuildKit's `parseWords`, used before `key=value` splitting).
pub fn raw_words(s: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            continue;
        }
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                cur.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                cur.push(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}
