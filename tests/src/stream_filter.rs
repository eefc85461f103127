//! The event source mapping's `FilterCriteria` of template.yaml, read from the template and
//! matched as Lambda matches them, so tests deliver to the reconciler exactly the records Lambda
//! would, and can check the filter itself.

use serde_json::Value;

use crate::workspace_root;

/// The filter patterns of the `TableChanges` event source mapping.
pub fn patterns() -> Vec<Value> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).expect("template");
    let start = template.find("\n  TableChanges:").expect("TableChanges in template.yaml");
    let section = &template[start..];
    let section = &section[..section[1..].find("\n  ReconcileFailureQueue:").expect("section end")];
    let patterns: Vec<Value> = section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- Pattern: '"))
        .map(|p| serde_json::from_str(p.trim_end_matches('\'')).expect("pattern JSON"))
        .collect();
    assert!(!patterns.is_empty(), "no patterns found");
    patterns
}

/// Lambda's matching, for what the patterns use: lists of exact strings, `{"prefix": ...}` and
/// `{"exists": false}`, nested objects.
fn matches(pattern: &Value, event: Option<&Value>) -> bool {
    match pattern {
        // An absent object matches only patterns that ask for absence all the way down.
        Value::Object(fields) => fields.iter().all(|(key, want)| matches(want, event.and_then(|e| e.get(key)))),
        Value::Array(options) => options.iter().any(|option| match option {
            Value::Object(rule) if rule.get("exists") == Some(&Value::Bool(false)) => event.is_none(),
            Value::Object(rule) => rule
                .get("prefix")
                .and_then(Value::as_str)
                .is_some_and(|prefix| event.and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix))),
            exact => event == Some(exact),
        }),
        _ => false,
    }
}

/// Whether Lambda would hand `record` to the function.
pub fn passes(patterns: &[Value], record: &Value) -> bool {
    patterns.iter().any(|p| matches(p, Some(record)))
}
