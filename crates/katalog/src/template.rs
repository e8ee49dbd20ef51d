//! Orkestra's template resolver on top of gotmpl (Go `text/template` semantics).
//!
//! Each string field is a template of its own: a string without `{{` is returned as is; otherwise
//! it is parsed with `missingkey=zero` and the notes, executed on the context map, trimmed, and
//! every `<no value>` is removed.
//!
//! **Reading through a missing key.** Go fails on `{{ .spec.missing.sub }}` (and on
//! `{{ .status.phase }}` when the CR has no status) with "nil pointer evaluating interface {}";
//! gotmpl yields `<no value>`, which step 3 turns into `""`. This runtime keeps the lenient
//! result on purpose: a missing intermediate map renders as `""` everywhere. Where Orkestra would
//! fail the reconcile (a resource field) or skip the field (a status field), this runtime renders
//! an empty value instead. Katalogs that want a default write `{{ .spec.x.y | default "d" }}`,
//! which behaves the same in both.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use gotmpl::{
    MissingKey, Template, TemplateError, Value,
    parse::{Expr, ListNode, Node, PipeNode, Pos},
};

use crate::{
    cluster::{Absent, ClusterView},
    notes,
};

/// A template that failed to parse or execute.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template does not parse (syntax, unknown function).
    #[error("failed to parse template: {message}")]
    Parse {
        /// Line within the template, 1-based.
        line: usize,
        /// Column within the template, 1-based.
        column: usize,
        message: String,
    },
    /// Executing the template failed.
    #[error("failed to execute template: {0}")]
    Execute(#[source] TemplateError),
}

impl Error {
    /// The position inside the template, when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::Parse { line, column, .. } => Some((*line, *column)),
            Self::Execute(_) => None,
        }
    }
}

/// Parses and executes Katalog templates; parsed templates are cached per source string because
/// the same strings are evaluated on every resync.
pub struct Engine {
    funcs: gotmpl::FuncMap,
    cache: Mutex<HashMap<String, Arc<Template>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("notes", &self.funcs.len())
            .finish_non_exhaustive()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self::new(Arc::new(Absent))
    }
}

impl Engine {
    /// An engine whose cluster-reading notes ask `cluster`.
    pub fn new(cluster: Arc<dyn ClusterView>) -> Self {
        Self {
            funcs: notes::notes(cluster),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn compile(&self, src: &str) -> Result<Arc<Template>, Error> {
        if let Ok(cache) = self.cache.lock()
            && let Some(t) = cache.get(src)
        {
            return Ok(Arc::clone(t));
        }
        let parsed = Template::new("t")
            .missing_key(MissingKey::ZeroValue)
            .funcs(self.funcs.clone())
            .parse(src)
            .map_err(|e| match e {
                TemplateError::Parse {
                    line, col, message, ..
                }
                | TemplateError::Lex {
                    line, col, message, ..
                } => Error::Parse {
                    line,
                    column: col,
                    message,
                },
                other => Error::Parse {
                    line: 1,
                    column: 1,
                    message: other.to_string(),
                },
            })?;
        // gotmpl accepts unbalanced `if`/`range`/`with`/`end`; Go refuses them at parse time.
        if let Err((offset, message)) = block_structure(src) {
            let line = src.get(..offset).unwrap_or("").matches('\n').count() + 1;
            let (line, column) = line_column(src, Pos::new(offset, line));
            return Err(Error::Parse {
                line,
                column,
                message,
            });
        }
        // gotmpl resolves functions only when executing; Go refuses an unknown one at parse time,
        // and `katalog check` must too.
        if let Some(tree) = parsed.lookup("t")
            && let Some((name, pos)) = unknown_function(tree, &self.funcs)
        {
            let (line, column) = line_column(src, pos);
            return Err(Error::Parse {
                line,
                column,
                message: format!("function {name:?} not defined"),
            });
        }
        let parsed = Arc::new(parsed);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(src.to_owned(), Arc::clone(&parsed));
        }
        Ok(parsed)
    }

    /// Parses `src` without executing it (what `katalog check` does).
    ///
    /// # Errors
    /// [`Error::Parse`] with the position inside the template.
    pub fn check(&self, src: &str) -> Result<(), Error> {
        if is_template(src) {
            self.compile(src).map(drop)
        } else {
            Ok(())
        }
    }

    /// Renders one string field against `ctx` (the CR as JSON, plus loop variables).
    ///
    /// # Errors
    /// A parse or execution failure of the template.
    pub fn render(&self, src: &str, ctx: &serde_json::Value) -> Result<String, Error> {
        if !is_template(src) {
            return Ok(src.to_owned());
        }
        self.render_value(src, &to_value(ctx))
    }

    /// As [`Self::render`], with the context already converted.
    ///
    /// # Errors
    /// A parse or execution failure of the template.
    pub fn render_value(&self, src: &str, ctx: &Value) -> Result<String, Error> {
        if !is_template(src) {
            return Ok(src.to_owned());
        }
        let out = self
            .compile(src)?
            .execute_to_string(ctx)
            .map_err(Error::Execute)?;
        Ok(out.trim().replace("<no value>", ""))
    }
}

/// Go's builtin functions (gotmpl provides them; Orkestra's `len` shadows the builtin).
const BUILTINS: &[&str] = &[
    "and", "or", "not", "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "slice", "print", "printf",
    "println", "html", "js", "urlquery", "call",
];

fn unknown_function(list: &ListNode, funcs: &gotmpl::FuncMap) -> Option<(String, Pos)> {
    fn in_pipe(pipe: &PipeNode, funcs: &gotmpl::FuncMap) -> Option<(String, Pos)> {
        pipe.commands
            .iter()
            .flat_map(|c| c.args.iter())
            .find_map(|e| in_expr(e, funcs))
    }
    fn in_expr(e: &Expr, funcs: &gotmpl::FuncMap) -> Option<(String, Pos)> {
        match e {
            Expr::Identifier(pos, name)
                if !funcs.contains_key(name.as_str()) && !BUILTINS.contains(&name.as_str()) =>
            {
                Some((name.to_string(), *pos))
            }
            Expr::Pipe(_, pipe) => in_pipe(pipe, funcs),
            Expr::Chain(_, inner, _) => in_expr(inner, funcs),
            _ => None,
        }
    }
    list.nodes.iter().find_map(|node| match node {
        Node::List(l) => unknown_function(l, funcs),
        Node::Action(a) => in_pipe(&a.pipe, funcs),
        Node::If(b) | Node::Range(b) | Node::With(b) => in_pipe(&b.pipe, funcs)
            .or_else(|| unknown_function(&b.body, funcs))
            .or_else(|| b.else_body.as_ref().and_then(|e| unknown_function(e, funcs))),
        Node::Template(t) => t.pipe.as_ref().and_then(|p| in_pipe(p, funcs)),
        Node::Define(d) => unknown_function(&d.body, funcs),
        _ => None,
    })
}

/// Checks that every `if`, `range`, `with`, `define` and `block` has its `end` and that `else`
/// and `end` appear only inside one. Returns the byte offset and message of the first fault.
fn block_structure(src: &str) -> Result<(), (usize, String)> {
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut at = 0;
    while let Some(start) = src[at..].find("{{").map(|i| i + at) {
        let Some(end) = src[start..].find("}}").map(|i| i + start) else {
            break;
        };
        let body = src[start + 2..end]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let word = body
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        match word {
            "if" | "range" | "with" | "define" | "block" => open.push((start, word)),
            "else" if open.is_empty() => return Err((start, "unexpected {{else}}".to_owned())),
            "end" if open.pop().is_none() => return Err((start, "unexpected {{end}}".to_owned())),
            _ => {}
        }
        at = end + 2;
    }
    match open.last() {
        Some((offset, word)) => Err((
            *offset,
            format!("unexpected EOF: {{{{{word}}}}} has no {{{{end}}}}"),
        )),
        None => Ok(()),
    }
}

/// 1-based line and column of a parse position.
fn line_column(src: &str, pos: Pos) -> (usize, usize) {
    let offset = pos.offset.min(src.len());
    let before = src.get(..offset).unwrap_or("");
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |nl| before[nl + 1..].chars().count())
        + 1;
    (pos.line.max(1), column)
}

/// Whether a string is a template at all (the resolver's fast path).
pub fn is_template(src: &str) -> bool {
    src.contains("{{")
}

/// Converts JSON to template data. Integral numbers stay integers so that `{{ .spec.replicas }}`
/// prints `2`, not `2.0`.
pub fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::Uint(u),
            (_, _, Some(f)) => Value::Float(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(to_value).collect()),
        serde_json::Value::Object(map) => Value::Map(Arc::new(
            map.iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_value(v)))
                .collect(),
        )),
    }
}

/// Converts template data back to JSON (for notes such as `toJSON`).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Uint(u) => serde_json::Value::from(*u),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(map) => {
            serde_json::Value::Object(map.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cr() -> serde_json::Value {
        json!({
            "apiVersion": "data.demo.orkestra.io/v1alpha1",
            "kind": "DataJob",
            "metadata": {"name": "backfill-job", "namespace": "demo-05"},
            "spec": {
                "replicas": 2, "ratio": 0.5, "flag": false,
                "steps": [{"name": "build", "command": "echo hi"}],
                "targetNamespaces": ["team-alpha", "team-beta"]
            }
        })
    }

    fn render(src: &str) -> String {
        Engine::default().render(src, &cr()).unwrap()
    }

    #[test]
    fn static_strings_are_returned_unchanged() {
        assert_eq!(render("  plain  "), "  plain  ");
    }

    #[test]
    fn output_matches_go_on_the_spec_cases() {
        assert_eq!(render("{{ .spec.missing }}"), "");
        assert_eq!(render("{{ .spec.replicas }}"), "2");
        assert_eq!(render("{{ .spec.ratio }}"), "0.5");
        assert_eq!(render("{{ .spec.flag }}"), "false");
        assert_eq!(render("{{ .spec.steps }}"), "[map[command:echo hi name:build]]");
        assert_eq!(
            render(r#"{{ index (index .spec.steps 0) "command" }}"#),
            "echo hi"
        );
        assert_eq!(render("{{ .spec.targetNamespaces }}"), "[team-alpha team-beta]");
        assert_eq!(render("  {{ .metadata.name }}  \n"), "backfill-job");
        assert_eq!(
            render(r#"{{ if eq .spec.tier "premium" }}Premium{{ else }}Basic{{ end }}"#),
            "Basic"
        );
    }

    #[test]
    fn reading_through_a_missing_key_renders_empty_instead_of_failing() {
        // The documented divergence from Go, which errors here.
        assert_eq!(render("{{ .spec.missing.sub }}"), "");
        assert_eq!(render("{{ .status.phase }}"), "");
        assert_eq!(render(r#"{{ .status.phase | default "Pending" }}"#), "Pending");
    }

    #[test]
    fn results_are_strings_even_for_numbers() {
        // §3.3: builders parse what they need; the resolver always gives text.
        let out: String = render("{{ add .spec.replicas 1 }}");
        assert_eq!(out, "3");
    }

    #[test]
    fn parse_errors_carry_a_position_inside_the_template() {
        let err = Engine::default().check("ok\n{{ .spec.x ").unwrap_err();
        assert_eq!(err.position().map(|p| p.0), Some(2));
        let err = Engine::default().check("{{ nosuchnote .spec }}").unwrap_err();
        assert!(err.to_string().contains("nosuchnote"), "{err}");
        assert_eq!(err.position(), Some((1, 4)));
        let err = Engine::default().check("a\n {{ if .x }}b").unwrap_err();
        assert_eq!(err.position(), Some((2, 2)));
        assert!(err.to_string().contains("{{if}} has no {{end}}"), "{err}");
        assert!(Engine::default().check("{{ if .x }}{{ end }}{{ end }}").is_err());
        assert!(Engine::default().check("{{ else }}").is_err());
        assert!(
            Engine::default()
                .check("{{- range $i, $v := .x }}{{ if $v }}{{ else }}{{ end }}{{ end -}}")
                .is_ok()
        );
    }

    #[test]
    fn parsed_templates_are_cached() {
        let e = Engine::default();
        e.render("{{ .kind }}", &cr()).unwrap();
        e.render("{{ .kind }}", &cr()).unwrap();
        assert_eq!(e.cache.lock().unwrap().len(), 1);
    }
}
