//! Description budgets: one tool's descriptions (its own and those in its schemas) are
//! bounded, so that a document with essay-length descriptions cannot flood a model's
//! context through `tools/list`.

use serde_json::Value;

use crate::catalog::ToolSpec;

/// How many characters of descriptions one tool may carry.
///
/// The tool's own description may take a quarter of the budget (at least 100 characters,
/// at most the whole budget); the descriptions in its input and output schemas share the
/// rest, plus whatever the tool description left unused. Schema descriptions are cut to a
/// common length, the largest that fits, so short ones stay whole and the cut falls on the
/// longest; when that length is under [`MIN_KEPT`] they are removed instead. Every cut
/// ends with `…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptionBudget {
    /// Characters per tool, all descriptions together.
    pub total: usize,
}

/// Shortest useful cut: below this, a schema description is dropped rather than cut.
const MIN_KEPT: usize = 8;

/// Schema keywords whose values are data, not schemas: a `description` member in them is
/// part of a value and must be left alone.
const DATA_KEYWORDS: [&str; 5] = ["default", "examples", "example", "const", "enum"];

impl DescriptionBudget {
    /// The default budget (characters): a tool description of up to 1,000 characters and
    /// 3,000 for its schemas.
    pub const DEFAULT: usize = 4_000;

    /// The share of the tool's own description.
    fn tool_share(self) -> usize {
        (self.total / 4).max(self.total.min(100))
    }

    /// Cuts `tool`'s descriptions to the budget.
    pub(crate) fn apply(self, tool: &mut ToolSpec) {
        self.apply_to(
            &mut tool.description,
            &mut tool.input_schema,
            tool.output_schema.as_mut(),
        );
    }

    fn apply_to(self, description: &mut String, input: &mut Value, output: Option<&mut Value>) {
        *description = truncate(description, self.tool_share());
        let left = self.total.saturating_sub(description.chars().count());
        let mut lengths = Vec::new();
        visit(input, &mut |d: &str| lengths.push(d.chars().count()));
        if let Some(output) = &output {
            visit(output, &mut |d: &str| lengths.push(d.chars().count()));
        }
        if lengths.iter().sum::<usize>() <= left {
            return;
        }
        let cap = common_cap(&mut lengths, left);
        cut(input, cap);
        if let Some(output) = output {
            cut(output, cap);
        }
    }
}

impl Default for DescriptionBudget {
    fn default() -> Self {
        Self {
            total: Self::DEFAULT,
        }
    }
}

/// The largest length `cap` such that the sum of `min(length, cap)` stays within `budget`.
fn common_cap(lengths: &mut [usize], budget: usize) -> usize {
    lengths.sort_unstable();
    let mut left = budget;
    let mut remaining = lengths.len();
    for &len in lengths.iter() {
        // Every description from here on is at least `len` long: can they all keep `len`?
        if len * remaining <= left {
            left -= len;
            remaining -= 1;
        } else {
            return left / remaining;
        }
    }
    usize::MAX
}

/// Calls `f` with every description annotation in `schema`, iteratively.
fn visit(schema: &Value, f: &mut impl FnMut(&str)) {
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    match child {
                        Value::String(text) if key == "description" => f(text),
                        Value::Object(_) | Value::Array(_)
                            if !DATA_KEYWORDS.contains(&key.as_str()) =>
                        {
                            stack.push(child);
                        }
                        _ => {}
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
}

/// Cuts every description annotation in `schema` to `cap` characters, or removes it when
/// `cap` is below [`MIN_KEPT`] and the description is longer.
fn cut(schema: &mut Value, cap: usize) {
    let mut stack = vec![schema];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                let drop = match map.get_mut("description") {
                    Some(Value::String(text)) if text.chars().count() > cap => {
                        if cap < MIN_KEPT {
                            true
                        } else {
                            *text = truncate(text, cap);
                            false
                        }
                    }
                    _ => false,
                };
                if drop {
                    map.remove("description");
                }
                for (key, child) in map.iter_mut() {
                    if (child.is_object() || child.is_array())
                        && !DATA_KEYWORDS.contains(&key.as_str())
                    {
                        stack.push(child);
                    }
                }
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// `text` cut to `max` characters, the cut marked with `…`.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text[end..].chars().nth(1).is_some() => {
            format!("{}…", text[..end].trim_end())
        }
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Tool {
        description: String,
        input_schema: Value,
        output_schema: Option<Value>,
    }

    fn tool(description: &str, input: Value, output: Option<Value>) -> Tool {
        Tool {
            description: description.into(),
            input_schema: input,
            output_schema: output,
        }
    }

    impl DescriptionBudget {
        fn run(self, t: &mut Tool) {
            self.apply_to(
                &mut t.description,
                &mut t.input_schema,
                t.output_schema.as_mut(),
            );
        }
    }

    fn descriptions(schema: &Value) -> Vec<String> {
        let mut out = Vec::new();
        visit(schema, &mut |d: &str| out.push(d.to_string()));
        out.sort();
        out
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
    }

    #[test]
    fn common_cap_keeps_short_descriptions_whole() {
        assert_eq!(common_cap(&mut [10, 20, 30], 60), usize::MAX);
        // 10 fits; the other two share 40.
        assert_eq!(common_cap(&mut [10, 100, 30], 50), 20);
        assert_eq!(common_cap(&mut [100, 100], 10), 5);
        assert_eq!(common_cap(&mut [5], 0), 0);
    }

    #[test]
    fn a_small_budget_cuts_the_longest_descriptions_and_leaves_data_alone() {
        let long = "x".repeat(500);
        let input = json!({
            "type": "object",
            "description": "short",
            "properties": {
                "a": {"type": "string", "description": long, "default": {"description": long}},
                "description": {"type": "string", "description": long,
                                "examples": [{"description": long}]},
            },
        });
        let output = json!({"type": "object", "description": long});
        let mut spec = tool(&long, input, Some(output));
        DescriptionBudget { total: 1_000 }.run(&mut spec);
        assert_eq!(spec.description.chars().count(), 250);
        assert!(spec.description.ends_with('…'));
        // 750 left: "short" keeps its 5, the three long ones share 745 (248 each).
        let mut kept = descriptions(&spec.input_schema);
        kept.extend(descriptions(spec.output_schema.as_ref().unwrap()));
        let lengths: Vec<usize> = kept.iter().map(|d| d.chars().count()).collect();
        assert!(lengths.contains(&5), "{lengths:?}");
        assert_eq!(
            lengths.iter().filter(|l| **l == 248).count(),
            3,
            "{lengths:?}"
        );
        assert!(lengths.iter().sum::<usize>() + 250 <= 1_000);
        // Values under default/examples are data: untouched.
        assert_eq!(
            spec.input_schema["properties"]["a"]["default"]["description"],
            json!(long)
        );
        assert_eq!(
            spec.input_schema["properties"]["description"]["examples"][0]["description"],
            json!(long)
        );
    }

    #[test]
    fn a_tiny_budget_removes_schema_descriptions() {
        let input = json!({"type": "object", "properties": {
            "a": {"type": "string", "description": "a fairly long description"},
            "b": {"type": "string", "description": "another fairly long one"},
        }});
        let mut spec = tool("Lists things.", input, None);
        DescriptionBudget { total: 20 }.run(&mut spec);
        assert_eq!(spec.description, "Lists things.");
        assert!(descriptions(&spec.input_schema).is_empty());
    }

    #[test]
    fn within_budget_nothing_changes() {
        let input = json!({"type": "object", "properties": {"a": {"description": "A."}}});
        let mut spec = tool("Does it.", input.clone(), None);
        DescriptionBudget::default().run(&mut spec);
        assert_eq!(spec.input_schema, input);
        assert_eq!(spec.description, "Does it.");
    }
}
