//! What may be invalidated: cache key patterns confined to one workspace.

use crate::query::WorkspaceId;

/// Characters a pattern may use after its workspace: key characters and the `*` wildcard. Redis
/// glob syntax beyond `*` (`?`, `[...]`, `\`) and hash-tag braces are refused.
fn allowed_tail_char(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || matches!(ch, ':' | '-' | '_' | '.' | '*')
}

/// The longest pattern accepted.
pub const MAX_PATTERN_LEN: usize = 300;

/// A validated invalidation pattern: a Redis `MATCH` glob inside one workspace's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub workspace: WorkspaceId,
    /// The glob in the stored keys' format (workspace in a hash tag).
    pub glob: String,
}

/// Why a pattern was refused (answered as 400 naming `pattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {0}")]
pub struct PatternError(&'static str);

impl KeyPattern {
    /// Parses `contacts:<workspace>…` or `counts:<workspace>…`, with the workspace written bare
    /// (the spec's form, `contacts:ws:open:*`) or in braces (the stored form). What follows the
    /// workspace must be empty, `*`, or start with `:`.
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        if raw.len() > MAX_PATTERN_LEN {
            return Err(PatternError("is too long"));
        }
        let (namespace, rest) = ["contacts:", "counts:"]
            .iter()
            .find_map(|ns| raw.strip_prefix(ns).map(|rest| (*ns, rest)))
            .ok_or(PatternError("must start with contacts: or counts:"))?;
        let (workspace, tail) = match rest.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').ok_or(PatternError("has an unclosed {"))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => rest.split_at(rest.len().min(36)),
        };
        let workspace = WorkspaceId::parse("pattern", workspace)
            .map_err(|_| PatternError("must name one workspace by its id, without wildcards"))?;
        if !(tail.is_empty() || tail == "*" || tail.starts_with(':')) {
            return Err(PatternError("must continue after the workspace with : or *"));
        }
        if !tail.chars().all(allowed_tail_char) {
            return Err(PatternError("may contain only letters, digits, : - _ . and *"));
        }
        Ok(Self { glob: format!("{namespace}{{{workspace}}}{tail}"), workspace })
    }

    /// The glob covering every key of a workspace in `namespace` (`contacts` or `counts`).
    pub fn whole_workspace(namespace: &str, workspace: &WorkspaceId) -> Self {
        Self { glob: format!("{namespace}:{{{workspace}}}*"), workspace: workspace.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";

    #[test]
    fn the_spec_patterns_map_to_stored_keys() {
        let cases = [
            (format!("contacts:{WS}:*"), format!("contacts:{{{WS}}}:*")),
            (format!("contacts:{WS}:open:*"), format!("contacts:{{{WS}}}:open:*")),
            (format!("contacts:{WS}:*:*"), format!("contacts:{{{WS}}}:*:*")),
            (format!("counts:{WS}*"), format!("counts:{{{WS}}}*")),
            (format!("contacts:{{{WS}}}:all:*"), format!("contacts:{{{WS}}}:all:*")),
        ];
        for (raw, glob) in cases {
            let pattern = KeyPattern::parse(&raw).unwrap();
            assert_eq!(pattern.glob, glob, "{raw}");
            assert_eq!(pattern.workspace.as_str(), WS);
        }
    }

    #[test]
    fn hostile_patterns_are_refused() {
        let long = format!("contacts:{WS}:{}", "a".repeat(400));
        let hostile = [
            "*",
            "contacts:*",
            "contacts:*:open:*",
            "counts:*",
            "sessions:668953d2-25f2-b4fd-7d72-1e8cf024a277:*",
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a27?:*",
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277x*",
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:[a-z]*",
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:\\*",
            "contacts:{668953d2-25f2-b4fd-7d72-1e8cf024a277:*",
            "contacts:668953d2-25f2-b4fd-7d72-1e8cf024a277:{other}:*",
            "contacts:{*}:*",
            long.as_str(),
        ];
        for raw in hostile {
            assert!(KeyPattern::parse(raw).is_err(), "{raw}");
        }
    }
}
