//! `targets[].lambda` in gateway.yaml: the section's types and their validation (function
//! reference, region, endpoint, qualifier). Tool definitions are checked in [`super::tools`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::ConfigError;

/// `targets[].lambda`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaTargetConfig {
    /// Function name (`orders`), partial ARN (`123456789012:function:orders`) or ARN, each
    /// optionally with `:qualifier`.
    pub function: Spanned<String>,
    /// AWS region (default: the function ARN's, else the standard chain: `AWS_REGION`,
    /// profile...).
    #[serde(default)]
    pub region: Option<Spanned<String>>,
    /// Another Invoke API endpoint (a local emulator, a VPC endpoint).
    #[serde(default)]
    pub endpoint_url: Option<Spanned<String>>,
    /// Version or alias invoked (default: the one in `function`, else `$LATEST`).
    #[serde(default)]
    pub qualifier: Option<Spanned<String>>,
    /// AgentCore ToolDefinitions: a file (relative to gateway.yaml) or an inline list.
    pub tools: Spanned<ToolsSource>,
    /// Time for one call, retries included (default: `targets[].timeout`).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Keep only these tools.
    #[serde(default)]
    pub include: Option<ToolFilter>,
    /// Drop these tools.
    #[serde(default)]
    pub exclude: Option<ToolFilter>,
}

/// Where a Lambda target's tool definitions come from.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolsSource {
    /// A JSON or YAML file, relative to gateway.yaml.
    File(PathBuf),
    /// Definitions written in gateway.yaml.
    Inline(Vec<serde_json::Value>),
}

/// `include` / `exclude` of a Lambda target.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolFilter {
    /// Tool names, as in the definitions.
    pub tools: Vec<String>,
}

/// A validated function reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// What `FunctionName` carries: name, partial ARN or ARN, without a qualifier.
    pub function: String,
    /// The qualifier written in `function` or `qualifier`.
    pub qualifier: Option<String>,
    /// The region of a full ARN.
    pub region: Option<String>,
}

impl FunctionRef {
    /// Parses a name, partial ARN or ARN, with an optional `:qualifier`.
    pub fn parse(raw: &str) -> Result<FunctionRef, String> {
        let bad = |why: &str| {
            format!(
                "`{raw}` is not a Lambda function reference ({why}); use a name (orders), a partial ARN \
                 (123456789012:function:orders) or an ARN (arn:aws:lambda:us-east-1:123456789012:function:orders), \
                 optionally with :version or :alias"
            )
        };
        let parts: Vec<&str> = raw.split(':').collect();
        let (prefix_len, region) = match parts.as_slice() {
            ["arn", partition, "lambda", region, account, "function", ..] => {
                if !partition.starts_with("aws") {
                    return Err(bad("unknown partition"));
                }
                if !is_region(region) {
                    return Err(bad("invalid region"));
                }
                if !is_account(account) {
                    return Err(bad("the account must be 12 digits"));
                }
                (6, Some(region.to_string()))
            }
            ["arn", ..] => {
                return Err(bad(
                    "an ARN reads arn:aws:lambda:REGION:ACCOUNT:function:NAME",
                ));
            }
            [account, "function", ..] => {
                if !is_account(account) {
                    return Err(bad("the account must be 12 digits"));
                }
                (2, None)
            }
            _ => (0, None),
        };
        let rest = &parts[prefix_len..];
        let (name, qualifier) = match rest {
            [name] => (*name, None),
            [name, qualifier] => (*name, Some(*qualifier)),
            _ => return Err(bad("too many `:`")),
        };
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(
                "a function name has 1 to 64 letters, digits, hyphens or underscores",
            ));
        }
        if let Some(q) = qualifier {
            check_qualifier(q).map_err(|why| bad(&why))?;
        }
        let function = parts[..prefix_len + 1].join(":");
        Ok(FunctionRef {
            function,
            qualifier: qualifier.map(str::to_string),
            region,
        })
    }

    /// How the function is named in messages: `function` plus `:qualifier`.
    pub fn display(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.function),
            None => self.function.clone(),
        }
    }
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

fn check_qualifier(q: &str) -> Result<(), String> {
    if q == "$LATEST"
        || (!q.is_empty()
            && q.len() <= 128
            && q.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        Ok(())
    } else {
        Err(format!(
            "qualifier `{q}` must be $LATEST, a version number or an alias (letters, digits, - and _)"
        ))
    }
}

/// What a validated `lambda:` section resolves to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The function and qualifier.
    pub function: FunctionRef,
    /// The region, when the config or the ARN gives one.
    pub region: Option<String>,
}

impl LambdaTargetConfig {
    /// Checks the section; `target` names it in messages.
    pub fn validate(&self, path: &Path, target: &str) -> Result<Resolved, ConfigError> {
        let at = |s: &serde_saphyr::Location, m: String| {
            ConfigError::at(path, s, format!("target `{target}`: lambda.{m}"))
        };
        let mut function = FunctionRef::parse(&self.function.value)
            .map_err(|m| at(&self.function.referenced, format!("function: {m}")))?;
        if let Some(q) = &self.qualifier {
            check_qualifier(&q.value).map_err(|m| at(&q.referenced, m))?;
            if let Some(inline) = &function.qualifier {
                return Err(at(
                    &q.referenced,
                    format!(
                        "qualifier: `function` already ends with the qualifier `{inline}`; keep one of them"
                    ),
                ));
            }
            function.qualifier = Some(q.value.clone());
        }
        let mut region = function.region.clone();
        if let Some(r) = &self.region {
            if !is_region(&r.value) {
                return Err(at(
                    &r.referenced,
                    format!(
                        "region: `{}` is not an AWS region (e.g. us-east-1)",
                        r.value
                    ),
                ));
            }
            if let Some(arn_region) = &function.region
                && *arn_region != r.value
            {
                return Err(at(
                    &r.referenced,
                    format!(
                        "region: `{}` differs from the function ARN's region `{arn_region}`; remove one",
                        r.value
                    ),
                ));
            }
            region = Some(r.value.clone());
        }
        if let Some(e) = &self.endpoint_url {
            match url::Url::parse(&e.value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => {
                    return Err(at(
                        &e.referenced,
                        format!(
                            "endpoint_url: `{}` is not an absolute http(s) URL (e.g. http://127.0.0.1:9000)",
                            e.value
                        ),
                    ));
                }
            }
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(at(
                &self.function.referenced,
                "timeout must be above zero".into(),
            ));
        }
        if let ToolsSource::Inline(list) = &self.tools.value
            && list.is_empty()
        {
            return Err(at(
                &self.tools.referenced,
                "tools: the list is empty; give at least one tool definition (name, description, inputSchema)"
                    .into(),
            ));
        }
        Ok(Resolved { function, region })
    }
}

/// Checks a target with a `lambda:` section: the section itself, and the target-level
/// settings that do not apply to Lambda (credentials, cache `methods`).
pub fn check_target(path: &Path, target: &crate::config::TargetConfig) -> Result<(), ConfigError> {
    let name = &target.name.value;
    if let Some(lambda) = &target.lambda {
        lambda.value.validate(path, name)?;
    }
    if let Some(creds) = &target.credentials {
        return Err(ConfigError::at(
            path,
            &creds.referenced,
            format!(
                "target `{name}`: Lambda targets take no `credentials`: the gateway signs with the standard AWS \
                 credential chain (environment, profile, SSO, web identity, ECS or EC2 metadata)"
            ),
        ));
    }
    let methods_at = target
        .cache
        .as_ref()
        .filter(|c| c.value.methods.is_some())
        .map(|c| c.referenced)
        .or_else(|| {
            target
                .operations
                .values()
                .any(|o| {
                    matches!(&o.cache, Some(crate::config::CacheOverride::Settings(s)) if s.methods.is_some())
                })
                .then_some(target.name.referenced)
        });
    if let Some(at) = methods_at {
        return Err(ConfigError::at(
            path,
            &at,
            format!(
                "target `{name}`: cache `methods` do not apply to Lambda tools (every tool of a cached Lambda \
                 target is cached; turn one off with operations.<tool>.cache: false)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_references() {
        let f = FunctionRef::parse("orders").unwrap();
        assert_eq!(
            (f.function.as_str(), f.qualifier, f.region),
            ("orders", None, None)
        );
        let f = FunctionRef::parse("orders:live").unwrap();
        assert_eq!(
            (f.function.as_str(), f.qualifier.as_deref()),
            ("orders", Some("live"))
        );
        let f = FunctionRef::parse("123456789012:function:orders:7").unwrap();
        assert_eq!(f.function, "123456789012:function:orders");
        assert_eq!(f.qualifier.as_deref(), Some("7"));
        let f = FunctionRef::parse("arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST")
            .unwrap();
        assert_eq!(
            f.function,
            "arn:aws:lambda:eu-west-1:123456789012:function:orders"
        );
        assert_eq!(f.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            f.display(),
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST"
        );
        for bad in [
            "",
            "a b",
            "x:y:z",
            "12345:function:orders",
            "arn:aws:s3:::bucket",
            "arn:aws:lambda:nowhere:123456789012:function:f",
            "orders:not/valid",
            &"x".repeat(65),
        ] {
            assert!(FunctionRef::parse(bad).is_err(), "{bad}");
        }
    }
}
