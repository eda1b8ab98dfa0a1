//! Sandboxed JavaScript for workflows: `decide` conditions (and, later, functions) run in a
//! fresh QuickJS runtime per call with a wall-clock deadline, a memory cap and a stack cap,
//! and see only the data they are given.

use std::time::{Duration, Instant};

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

/// Evaluates `expression` as a JavaScript boolean with the top-level names of `scope` (an
/// object: `vars`, `system`, `context`, ...) defined as constants.
pub fn condition(expression: &str, scope: &Value, limits: Limits) -> Result<bool, JsError> {
    let runtime = Runtime::new().map_err(|e| JsError::Runtime(e.to_string()))?;
    runtime.set_memory_limit(limits.memory_bytes);
    runtime.set_max_stack_size(limits.stack_bytes);
    let deadline = Instant::now() + limits.time;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() > deadline)));
    let context = Context::full(&runtime).map_err(|e| JsError::Runtime(e.to_string()))?;
    // The scope goes in as JSON text parsed by the engine itself: no code is built from data.
    let scope_json = match scope {
        Value::Object(_) => scope.to_string(),
        _ => "{}".to_owned(),
    };
    let names: Vec<String> = scope
        .as_object()
        .map(|o| o.keys().filter(|k| is_identifier(k)).cloned().collect())
        .unwrap_or_default();
    context.with(|ctx| {
        let globals = ctx.globals();
        globals
            .set("__scope_json", scope_json)
            .map_err(|e| JsError::Evaluation(e.to_string()))?;
        let declarations: String = names
            .iter()
            .map(|n| format!("const {n} = __scope[{n:?}];"))
            .collect();
        let source = format!(
            "(function() {{ const __scope = JSON.parse(__scope_json); {declarations} return !!(\n{expression}\n); }})()"
        );
        ctx.eval::<bool, _>(source).map_err(|e| {
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

/// Checks that `expression` parses as a JavaScript expression, without running it.
pub fn check_syntax(expression: &str) -> Result<(), JsError> {
    let runtime = Runtime::new().map_err(|e| JsError::Runtime(e.to_string()))?;
    runtime.set_memory_limit(Limits::default().memory_bytes);
    let deadline = Instant::now() + Limits::default().time;
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() > deadline)));
    let context = Context::full(&runtime).map_err(|e| JsError::Runtime(e.to_string()))?;
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
