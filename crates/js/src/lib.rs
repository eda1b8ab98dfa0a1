//! Sandboxed JavaScript for workflows: `decide` conditions (and, later, functions) run in
//! QuickJS with a wall-clock deadline, a memory cap and a stack cap, and see only the data
//! they are given.
//!
//! Starting an engine (a runtime and a context with its built-ins) costs far more than a
//! condition, so each thread keeps a few engines, one per **tenant** (a project): tenants
//! never share one. An engine's built-ins and global object are frozen when it starts,
//! and every expression runs in its own `eval` inside a function, over its own copy of
//! the scope, so nothing one decision does is seen by the next. An engine that reported
//! an error (a throw, a syntax error, a broken limit) is discarded.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::context::intrinsic;
use rquickjs::{Context, Ctx, Function, Persistent, Runtime};
use serde_json::Value;

/// Limits of one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// Boolean, Error, ...) plus Date, RegExp, JSON, Map/Set, promises and `eval`. Proxies,
/// typed arrays, weak references and timers have no use in a condition. Promises must be
/// there: without them QuickJS leaks the objects of a failed `async` function (and of
/// `Array.fromAsync`), and freeing a runtime with leaked objects aborts the process.
type Builtins = (
    intrinsic::Promise,
    intrinsic::Date,
    intrinsic::Eval,
    intrinsic::RegExpCompiler,
    intrinsic::RegExp,
    intrinsic::Json,
    intrinsic::MapSet,
);

/// Engines a thread keeps (the tenants it ran last).
const ENGINES_PER_THREAD: usize = 4;

/// Compiled wrappers an engine keeps (one per set of scope names; the engine's scope has one).
const WRAPPERS_PER_ENGINE: usize = 16;

/// Freezes every object reachable from the global object (and the intrinsics that are not:
/// generator, iterator and `%ThrowTypeError%` objects), then the global object itself:
/// no expression can change what a later one finds there.
const LOCKDOWN: &str = r#"(function () {
  const roots = [globalThis];
  const more = [
    () => Object.getPrototypeOf(function* () {}),
    () => Object.getPrototypeOf(async function () {}),
    () => Object.getPrototypeOf(async function* () {}),
    () => Object.getPrototypeOf([][Symbol.iterator]()),
    () => Object.getPrototypeOf(""[Symbol.iterator]()),
    () => Object.getPrototypeOf(new Map().entries()),
    () => Object.getPrototypeOf(new Set().values()),
    () => Object.getPrototypeOf("a".matchAll(/a/g)),
    () => Object.getOwnPropertyDescriptor(Function.prototype, "caller").get,
    () => Object.getPrototypeOf((function* () {})()),
  ];
  for (const root of more) {
    try { roots.push(root()); } catch (_) {}
  }
  const seen = new Set();
  while (roots.length > 0) {
    const o = roots.pop();
    if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) {
      continue;
    }
    seen.add(o);
    for (const key of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, key);
      if (d === undefined) continue;
      if ("value" in d) roots.push(d.value); else roots.push(d.get, d.set);
    }
    roots.push(Reflect.getPrototypeOf(o));
    Object.freeze(o);
  }
})();"#;

thread_local! {
    /// This thread's engines, the most recently used last.
    static ENGINES: RefCell<Vec<Engine>> = const { RefCell::new(Vec::new()) };
    /// Engines this thread started (tests count them).
    static STARTED: Cell<u64> = const { Cell::new(0) };
}

/// A runtime and a locked-down context serving one tenant on one thread.
struct Engine {
    tenant: String,
    limits: Limits,
    deadline: Rc<Cell<Instant>>,
    // Fields drop in order: the wrappers reference the context, which needs the runtime.
    /// Compiled wrappers by their scope declarations.
    wrappers: HashMap<String, Persistent<Function<'static>>>,
    context: Context,
    runtime: Runtime,
}

impl Engine {
    fn start(tenant: &str, limits: Limits) -> Result<Self, JsError> {
        let start = |e: rquickjs::Error| JsError::Runtime(e.to_string());
        let runtime = Runtime::new().map_err(start)?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(limits.stack_bytes);
        let deadline = Rc::new(Cell::new(Instant::now() + limits.time));
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() > watched.get())));
        let context = Context::custom::<Builtins>(&runtime).map_err(start)?;
        context
            .with(|ctx| ctx.eval::<(), _>(LOCKDOWN).map_err(|e| describe(&ctx, e)))
            .map_err(|e| JsError::Runtime(format!("locking the engine down: {e}")))?;
        STARTED.with(|n| n.set(n.get() + 1));
        Ok(Self {
            tenant: tenant.to_owned(),
            limits,
            deadline,
            wrappers: HashMap::new(),
            context,
            runtime,
        })
    }

    fn first_true<'e>(
        &mut self,
        expressions: impl IntoIterator<Item = &'e str>,
        scope: &Value,
    ) -> Result<Option<usize>, (usize, JsError)> {
        // The scope goes in as JSON text parsed by the engine itself: no code is built
        // from data.
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
        let Self {
            limits,
            deadline,
            wrappers,
            context,
            ..
        } = self;
        context.with(|ctx| {
            let failed = |i: usize, e: rquickjs::Error| (i, describe(&ctx, e));
            // The deadline left by the engine's last decision may be past.
            deadline.set(Instant::now() + limits.time);
            let wrapper = match wrappers.get(&declarations) {
                Some(saved) => saved.clone().restore(&ctx).map_err(|e| failed(0, e))?,
                None => {
                    // A direct `eval` parses the expression as a script of its own: it
                    // cannot close the function around it, and its declarations stay in it.
                    let source = format!(
                        "(function (__scope, __source) {{ {declarations} \
                         return !!eval(__source); }})"
                    );
                    let compiled: Function = ctx.eval(source).map_err(|e| failed(0, e))?;
                    if wrappers.len() >= WRAPPERS_PER_ENGINE {
                        wrappers.clear();
                    }
                    wrappers.insert(declarations, Persistent::save(&ctx, compiled.clone()));
                    compiled
                }
            };
            for (i, expression) in expressions.into_iter().enumerate() {
                deadline.set(Instant::now() + limits.time);
                // Each expression parses its own copy, so none sees another's changes to it.
                let scope = ctx
                    .json_parse(scope_json.as_str())
                    .map_err(|e| failed(i, e))?;
                let source = format!("(\n{expression}\n)");
                if wrapper
                    .call::<_, bool>((scope, source))
                    .map_err(|e| failed(i, e))?
                {
                    return Ok(Some(i));
                }
            }
            Ok(None)
        })
    }
}

/// The message of the exception `e` stands for, or `e` itself.
fn describe(ctx: &Ctx<'_>, e: rquickjs::Error) -> JsError {
    let detail = ctx
        .catch()
        .as_exception()
        .map(|ex| ex.message().unwrap_or_default())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| e.to_string());
    JsError::Evaluation(detail)
}

/// Evaluates `expression` as a JavaScript boolean with the top-level names of `scope` (an
/// object: `vars`, `system`, `context`, ...) defined as constants, in `tenant`'s engine.
pub fn condition(
    tenant: &str,
    expression: &str,
    scope: &Value,
    limits: Limits,
) -> Result<bool, JsError> {
    first_true(tenant, [expression], scope, limits)
        .map(|found| found.is_some())
        .map_err(|(_, e)| e)
}

/// Evaluates `expressions` in order, as [`condition`] does, and returns the index of the
/// first that is true. Each gets the full time limit and its own copy of the scope. An error
/// names the index of the expression that caused it.
pub fn first_true<'e>(
    tenant: &str,
    expressions: impl IntoIterator<Item = &'e str>,
    scope: &Value,
    limits: Limits,
) -> Result<Option<usize>, (usize, JsError)> {
    // The engine leaves the thread's list while it runs, so nothing can reach it twice.
    let kept = ENGINES.with_borrow_mut(|engines| {
        let at = engines
            .iter()
            .position(|e| e.tenant == tenant && e.limits == limits)?;
        Some(engines.remove(at))
    });
    let mut engine = match kept {
        Some(engine) => engine,
        None => Engine::start(tenant, limits).map_err(|e| (0, e))?,
    };
    let found = engine.first_true(expressions, scope)?;
    if engine.runtime.is_job_pending() {
        // An `async` function left work queued: it never runs; the engine goes with it.
        return Ok(found);
    }
    ENGINES.with_borrow_mut(|engines| {
        if engines.len() >= ENGINES_PER_THREAD {
            engines.remove(0);
        }
        engines.push(engine);
    });
    Ok(found)
}

/// Engines this thread has started so far.
pub fn engines_started() -> u64 {
    STARTED.with(Cell::get)
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
        ctx.eval::<(), _>(source).map_err(|e| describe(&ctx, e))
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
        assert!(
            condition(
                "t",
                "system.last_resume.reason === \"timeout\"",
                &scope(),
                l
            )
            .expect("eval")
        );
        assert!(
            condition("t", "vars.total > 100 && vars.tier === 'gold'", &scope(), l).expect("eval")
        );
        assert!(
            !condition(
                "t",
                "vars.total > 100 && !vars.tags.includes('vip')",
                &scope(),
                l
            )
            .expect("eval")
        );
        assert!(
            condition("t", "context.phone_number.startsWith('+1')", &scope(), l).expect("eval")
        );
        assert!(
            !condition("t", "vars.missing", &scope(), l).expect("eval"),
            "undefined is false"
        );
    }

    #[test]
    fn first_true_shares_one_engine_per_decision() {
        let l = Limits::default();
        let found = first_true(
            "t",
            ["vars.total > 500", "vars.tier === 'gold'", "true"],
            &scope(),
            l,
        )
        .expect("eval");
        assert_eq!(found, Some(1));
        assert_eq!(
            first_true("t", ["false", "vars.missing"], &scope(), l).expect("eval"),
            None
        );
        // An error names the expression that caused it.
        let (at, err) =
            first_true("t", ["false", "nope.at.all"], &scope(), l).expect_err("reference");
        assert_eq!(at, 1);
        assert!(err.to_string().contains("nope"), "{err}");
        // One expression cannot change what the next one sees.
        let found = first_true(
            "t",
            [
                "(vars.total = 0, vars.tier = 'tin', false)",
                "vars.total === 120 && vars.tier === 'gold'",
            ],
            &scope(),
            l,
        );
        assert_eq!(found.expect("eval"), Some(1));
        let found = first_true(
            "t",
            ["(__scope = {}, vars = null, false)", "vars.total === 120"],
            &scope(),
            l,
        );
        assert!(found.is_err(), "vars is a constant");
        let found = first_true(
            "t",
            ["(__scope = {}, false)", "vars.total === 120"],
            &scope(),
            l,
        );
        assert_eq!(found.expect("eval"), Some(1));
        // Each expression gets the whole time limit.
        let l = Limits {
            time: Duration::from_millis(300),
            ..Limits::default()
        };
        let spin =
            "(() => { const t = Date.now(); while (Date.now() - t < 200) {} return false; })()";
        assert_eq!(
            first_true("t", [spin, spin, "true"], &scope(), l).expect("each under its limit"),
            Some(2)
        );
    }

    #[test]
    fn a_tenant_keeps_its_engine_and_shares_it_with_no_one() {
        let l = Limits::default();
        let before = engines_started();
        assert!(condition("keep-a", "true", &scope(), l).expect("eval"));
        assert!(condition("keep-a", "vars.total === 120", &scope(), l).expect("eval"));
        assert_eq!(engines_started(), before + 1, "one engine for tenant a");
        assert!(condition("keep-b", "true", &scope(), l).expect("eval"));
        assert_eq!(engines_started(), before + 2, "tenant b gets its own");
        // An engine that reported an error is not used again.
        condition("keep-a", "nope.at.all", &scope(), l).expect_err("reference");
        assert!(condition("keep-a", "true", &scope(), l).expect("eval"));
        assert_eq!(engines_started(), before + 3);
        // Other limits, another engine.
        let tight = Limits {
            time: Duration::from_millis(20),
            ..l
        };
        assert!(condition("keep-a", "true", &scope(), tight).expect("eval"));
        assert_eq!(engines_started(), before + 4);
    }

    #[test]
    fn a_kept_engine_gives_each_decision_its_own_deadline() {
        let l = Limits {
            time: Duration::from_millis(20),
            ..Limits::default()
        };
        assert!(condition("deadline", "true", &scope(), l).expect("eval"));
        std::thread::sleep(Duration::from_millis(60));
        // Another set of scope names compiles another wrapper, after the last deadline.
        let other = json!({"vars": {"a": 1}, "extra": true});
        let busy =
            "(() => { const t = Date.now(); while (Date.now() - t < 5) {} return extra; })()";
        assert!(condition("deadline", busy, &other, l).expect("eval"));
    }

    #[test]
    fn async_code_neither_leaks_nor_lingers() {
        // Without the Promise built-in these leaked objects, and the runtime's end then
        // aborted the whole process.
        let l = Limits::default();
        assert!(
            condition(
                "async",
                "typeof Array.fromAsync === 'function'",
                &scope(),
                l
            )
            .expect("eval")
        );
        let before = engines_started();
        assert!(
            condition(
                "async",
                "(async () => { await null; })() instanceof Promise",
                &scope(),
                l
            )
            .expect("eval")
        );
        assert!(condition("async", "true", &scope(), l).expect("eval"));
        assert_eq!(
            engines_started(),
            before + 1,
            "the engine with queued async work was not kept"
        );
    }

    #[test]
    fn nothing_one_decision_does_reaches_the_next() {
        let l = Limits::default();
        // Each attempt catches its own error: a failed evaluation's engine is not kept,
        // and this test is about the engine that is.
        let attempts = [
            "globalThis.leak = 1",
            "(function () { leaked = 1; })()",
            "Array.prototype.includes = () => true",
            "Object.prototype.polluted = 1",
            "JSON.parse = () => ({})",
            "Math.max = () => 0",
            "Object.getPrototypeOf(function* () {}).x = 1",
            "Object.getPrototypeOf([][Symbol.iterator]()).next = null",
            "Object.defineProperty(globalThis, 'defined', { value: 1 })",
            "delete globalThis.Math",
            "vars.total = 0; vars.tags.push('x')",
        ]
        .map(|a| format!("(() => {{ try {{ {a}; }} catch (_) {{}} return false; }})()"));
        let escapes = ["1); let JSON = 0; var declared = 1; (false"];
        let before = engines_started();
        for attempt in attempts.iter().map(String::as_str).chain(escapes) {
            assert!(
                !condition("hermetic", attempt, &scope(), l).expect(attempt),
                "{attempt}"
            );
        }
        let unchanged = "typeof leak === 'undefined' && typeof leaked === 'undefined' \
            && ![1].includes(2) && ({}).polluted === undefined \
            && JSON.parse('{\"a\":1}').a === 1 && Math.max(1, 2) === 2 \
            && Object.getPrototypeOf(function* () {}).x === undefined \
            && [...[1, 2]].length === 2 && typeof declared === 'undefined' \
            && typeof defined === 'undefined' && typeof Math === 'object' \
            && vars.total === 120 && vars.tags.length === 1";
        assert!(condition("hermetic", unchanged, &scope(), l).expect("eval"));
        assert_eq!(
            engines_started(),
            before + 1,
            "all ran in one engine (none failed and was replaced)"
        );
    }

    #[test]
    fn errors_and_limits() {
        let l = Limits {
            time: Duration::from_millis(50),
            ..Limits::default()
        };
        let started = Instant::now();
        let err =
            condition("t", "(() => { while (true) {} })()", &scope(), l).expect_err("interrupted");
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
        let err = condition(
            "t",
            "(() => { const a = []; while (true) a.push('xxxxxxxxxxxxxxxx'); })()",
            &scope(),
            Limits {
                time: Duration::from_secs(5),
                ..Limits::default()
            },
        )
        .expect_err("memory");
        assert!(!err.to_string().is_empty());
        let err = condition("t", "vars.total >", &scope(), l).expect_err("syntax");
        assert!(
            err.to_string().to_lowercase().contains("unexpected")
                || err.to_string().to_lowercase().contains("syntax"),
            "{err}"
        );
        let err = condition("t", "nope.at.all", &scope(), l).expect_err("reference");
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
        assert!(condition("t", "vars.x.length > 0", &tricky, l).expect("eval"));
    }
}
