//! Composite expressions: symbols combined with `&`, `|`, `!` and parentheses (`SPF_FAIL & !DKIM_ALLOW`,
//! `(A | B) & C`). `!` binds tightest, then `&`, then `|`.

use std::collections::HashSet;

/// Deepest nesting of parentheses and `!` accepted; deeper expressions are refused when the policy is
/// built, so evaluation (which recurses) stays within it.
pub const MAX_EXPR_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Symbol(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at character {at}")]
pub struct ExprError {
    pub at: usize,
    pub message: &'static str,
}

impl Expr {
    pub fn parse(s: &str) -> Result<Expr, ExprError> {
        let mut p = Parser { s: s.as_bytes(), pos: 0, depth: 0 };
        let e = p.or()?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(p.error("unexpected character"));
        }
        Ok(e)
    }

    /// Whether the expression holds for the symbols in `present`.
    pub fn eval(&self, present: &HashSet<&str>) -> bool {
        match self {
            Expr::Symbol(s) => present.contains(s.as_str()),
            Expr::Not(e) => !e.eval(present),
            Expr::And(v) => v.iter().all(|e| e.eval(present)),
            Expr::Or(v) => v.iter().any(|e| e.eval(present)),
        }
    }

    /// The symbols the expression needs present (not under `!`): what a composite consumes.
    pub fn positive_symbols(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![(self, false)];
        while let Some((e, negated)) = stack.pop() {
            match e {
                Expr::Symbol(s) if !negated => out.push(s.as_str()),
                Expr::Symbol(_) => {}
                Expr::Not(inner) => stack.push((inner, !negated)),
                Expr::And(v) | Expr::Or(v) => stack.extend(v.iter().map(|e| (e, negated))),
            }
        }
        out
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: &'static str) -> ExprError {
        ExprError { at: self.pos, message }
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.pos) == Some(&c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut v = vec![self.and()?];
        while self.eat(b'|') {
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Expr::Or(v) })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut v = vec![self.unary()?];
        while self.eat(b'&') {
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Expr::And(v) })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let e = if self.eat(b'!') {
            Expr::Not(Box::new(self.unary()?))
        } else if self.eat(b'(') {
            let e = self.or()?;
            if !self.eat(b')') {
                return Err(self.error("expected `)`"));
            }
            e
        } else {
            self.symbol()?
        };
        self.depth -= 1;
        Ok(e)
    }

    fn symbol(&mut self) -> Result<Expr, ExprError> {
        self.skip_ws();
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
        if !crate::valid_symbol(name) {
            return Err(self.error("expected a symbol name"));
        }
        Ok(Expr::Symbol(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set<'a>(s: &[&'a str]) -> HashSet<&'a str> {
        s.iter().copied().collect()
    }

    #[test]
    fn precedence_and_evaluation() {
        let e = Expr::parse("SPF_FAIL & !DKIM_ALLOW | GTUBE").unwrap();
        assert!(e.eval(&set(&["SPF_FAIL"])));
        assert!(!e.eval(&set(&["SPF_FAIL", "DKIM_ALLOW"])));
        assert!(e.eval(&set(&["GTUBE", "DKIM_ALLOW"])));
        let e = Expr::parse("(A | B) & C").unwrap();
        assert!(e.eval(&set(&["B", "C"])) && !e.eval(&set(&["A"])));
        let mut pos = e.positive_symbols();
        pos.sort();
        assert_eq!(pos, ["A", "B", "C"]);
        assert_eq!(Expr::parse("A & !B").unwrap().positive_symbols(), ["A"]);
    }

    #[test]
    fn errors_and_depth_bound() {
        for bad in ["", "A &", "(A", "A B", "A & & B", "a-b", "!"] {
            assert!(Expr::parse(bad).is_err(), "{bad}");
        }
        let deep = "(".repeat(10_000) + "A" + &")".repeat(10_000);
        assert_eq!(Expr::parse(&deep).unwrap_err().message, "expression nested too deeply");
        assert!(Expr::parse(&("!".repeat(31) + "A")).is_ok());
    }
}
