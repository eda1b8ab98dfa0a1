//! Sandboxed JavaScript for workflows: `decide` conditions (and, later, functions) run in a
//! fresh QuickJS runtime per decision with a wall-clock deadline, a memory cap and a stack cap,
//! and see only the data they are given.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::{Context, Runtime};
use serde_json::Value;

/// Limits of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time.
    pub time: Duration,
    /// Heap.
    pub memory_bytes: usize,
    /// Stack.
    pub stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time: Duration::from_millis(100),
            memory_bytes: 16 * 1024 * 1024,
            stack_bytes: 256 * 1024,
        }
    }
}

/// Why an expression gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum JsError {
    /// The runtime could not be created.
    #[error("the JavaScript runtime could not start: {0}")]
    Runtime(String),
    /// The expression threw, did not parse, or broke a limit (time, memory, stack).
    #[error("{0}")]
    Evaluation(String),
}

/// The built-ins a condition sees: the base objects (Object, Array, String, Number, Math,
/// Boolean, Error, ...) plus Date, RegExp, JSON, Map/Set and `eval`. Promises, proxies,
/// typed arrays, weak references and timers have no use in a condition, and building
/// them is most of what creating a context costs.
type Builtins = (
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
);

/// Evaluates `expression` as a JavaScript boolean with the top-level names of `scope` (an
/// object: `vars`, `system`, `context`, ...) defined as constants.
pub fn condition(expression: &str, scope: &Value, limits: Limits) -> Result<bool, JsError> {
    first_true([expression], scope, limits)
        .map(|found| found.is_some())
        .map_err(|(_, e)| e)
}

/// Evaluates `expressions` in order, as [`condition`] does, and returns the index of the
/// first that is true. They share one runtime and one copy of the scope (one engine start
/// per decision instead of one per condition); each gets the full time limit. An error
/// names the index of the expression that caused it.
pub fn first_true<'e>(
    expressions: impl IntoIterator<Item = &'e str>,
    scope: &Value,
    limits: Limits,
) -> Result<Option<usize>, (usize, JsError)> {
    let start = |e: rquickjs::Error| (0, JsError::Runtime(e.to_string()));
    let runtime = Runtime::new().map_err(start)?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(limits.stack_bytes);
    let deadline = Rc::new(Cell::new(Instant::now() + limits.time));
    let watched = deadline.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() > watched.get())));
    let context = Context::custom::<Builtins>(&runtime).map_err(start)?;
    // The scope goes in as JSON text parsed by the engine itself: no code is built from data.
    let scope_json = match scope {
        Value::Object(_) => scope.to_string(),
        _ => "{}".to_owned(),
    };
    let declarations: String = scope
        .as_object()
        .map(|o| {
            o.keys()
                .filter(|k| is_identifier(k))
                .map(|n| format!("const {n} = __scope[{n:?}];"))
                .collect()
        })
        .unwrap_or_default();
    context.with(|ctx| {
        let failed = |i: usize, e: rquickjs::Error| {
            let detail = ctx
                .catch()
                .as_exception()
                .map(|ex| ex.message().unwrap_or_default())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| e.to_string());
            (i, JsError::Evaluation(detail))
        };
        ctx.globals()
            .set("__scope_json", scope_json)
            .map_err(|e| failed(0, e))?;
        // A global constant: no expression can swap the scope the next one parses.
        ctx.eval::<(), _>("const __scope_text = globalThis.__scope_json; delete globalThis.__scope_json;")
            .map_err(|e| failed(0, e))?;
        for (i, expression) in expressions.into_iter().enumerate() {
            deadline.set(Instant::now() + limits.time);
            // Each expression parses its own copy, so none sees another's changes to it.
            let source = format!(
                "(function() {{ const __scope = JSON.parse(__scope_text); {declarations} return !!(\n{expression}\n); }})()"
            );
            if ctx.eval::<bool, _>(source).map_err(|e| failed(i, e))? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    })
}

/// Checks that `expression` parses as a JavaScript expression, without running it.
pub fn check_syntax(expression: &str) -> Result<(), JsError> {
    let runtime = Runtime::new().map_err(|e| JsError::Runtime(e.to_string()))?;
    runtime.set_memory_limit(Limits::default().memory_bytes);
    let deadline = Instant::now() + Limits::default().time;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() > deadline)));
    let context =
        Context::custom::<Builtins>(&runtime).map_err(|e| JsError::Runtime(e.to_string()))?;
    context.with(|ctx| {
        // Defining the function compiles the body; nothing in it runs.
        let source = format!("(function() {{ return !!(\n{expression}\n); }}); undefined");
        ctx.eval::<(), _>(source).map_err(|e| {
            let detail = ctx
                .catch()
                .as_exception()
                .map(|ex| ex.message().unwrap_or_default())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| e.to_string());
            JsError::Evaluation(detail)
        })
    })
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope() -> Value {
        json!({
            "vars": {"total": 120, "tier": "gold", "tags": ["vip"]},
            "system": {"last_resume": {"reason": "timeout"}},
            "context": {"phone_number": "+15550001111"}
        })
    }

    #[test]
    fn conditions_over_vars_system_and_context() {
        let l = Limits::default();
        assert!(condition("system.last_resume.reason === \"timeout\"", &scope(), l).expect("eval"));
        assert!(condition("vars.total > 100 && vars.tier === 'gold'", &scope(), l).expect("eval"));
        assert!(
            !condition(
                "vars.total > 100 && !vars.tags.includes('vip')",
                &scope(),
                l
            )
            .expect("eval")
        );
        assert!(condition("context.phone_number.startsWith('+1')", &scope(), l).expect("eval"));
        assert!(
            !condition("vars.missing", &scope(), l).expect("eval"),
            "undefined is false"
        );
    }

    #[test]
    fn first_true_shares_one_engine_per_decision() {
        let l = Limits::default();
        let found = first_true(
            ["vars.total > 500", "vars.tier === 'gold'", "true"],
            &scope(),
            l,
        )
        .expect("eval");
        assert_eq!(found, Some(1));
        assert_eq!(
            first_true(["false", "vars.missing"], &scope(), l).expect("eval"),
            None
        );
        // An error names the expression that caused it.
        let (at, err) = first_true(["false", "nope.at.all"], &scope(), l).expect_err("reference");
        assert_eq!(at, 1);
        assert!(err.to_string().contains("nope"), "{err}");
        // One expression cannot change what the next one sees.
        let found = first_true(
            [
                "(vars.total = 0, vars.tier = 'tin', false)",
                "vars.total === 120 && vars.tier === 'gold'",
            ],
            &scope(),
            l,
        );
        assert_eq!(found.expect("eval"), Some(1));
        let (_, err) =
            first_true(["(__scope_text = '{}', false)", "true"], &scope(), l).expect_err("const");
        assert!(err.to_string().contains("read-only"), "{err}");
        // Each expression gets the whole time limit.
        let l = Limits {
            time: Duration::from_millis(300),
            ..Limits::default()
        };
        let spin =
            "(() => { const t = Date.now(); while (Date.now() - t < 200) {} return false; })()";
        assert_eq!(
            first_true([spin, spin, "true"], &scope(), l).expect("each under its limit"),
            Some(2)
        );
    }

    #[test]
    fn errors_and_limits() {
        let l = Limits {
            time: Duration::from_millis(50),
            ..Limits::default()
        };
        let started = Instant::now();
        let err = condition("(() => { while (true) {} })()", &scope(), l).expect_err("interrupted");
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        let err = condition(
            "(() => { const a = []; while (true) a.push('xxxxxxxxxxxxxxxx'); })()",
            &scope(),
            Limits {
                time: Duration::from_secs(5),
                ..Limits::default()
            },
        )
        .expect_err("memory");
        assert!(!err.to_string().is_empty());
        let err = condition("vars.total >", &scope(), l).expect_err("syntax");
        assert!(
            err.to_string().to_lowercase().contains("unexpected")
                || err.to_string().to_lowercase().contains("syntax"),
            "{err}"
        );
        let err = condition("nope.at.all", &scope(), l).expect_err("reference");
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(check_syntax("vars.total > 100 && vars.tags.includes('x')").is_ok());
        assert!(
            check_syntax("while (true) {}").is_err(),
            "a statement is not an expression"
        );
        assert!(check_syntax("vars.total >").is_err());
        assert!(
            check_syntax("(() => { while (true) {} })()").is_ok(),
            "parsed, never run"
        );
        // Data cannot inject code: a string that looks like JS stays a string.
        let tricky = json!({"vars": {"x": "\"); while(true){} (\""}});
        assert!(condition("vars.x.length > 0", &tricky, l).expect("eval"));
    }
}
