//! A line diff of two configuration values (pretty-printed JSON), as HTML: removed lines in
//! `<del>`, added in `<ins>`, the rest plain; every line escaped.

use serde_json::Value;

use super::html::esc;

/// Past this many lines a side, the diff shows one whole value replaced by the other (the
/// table below is quadratic).
const MAX_LINES: usize = 2_000;

fn lines(v: &Value) -> Vec<String> {
    serde_json::to_string_pretty(v).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// `a` to `b` line by line (longest common subsequence).
pub fn diff(a: &Value, b: &Value) -> String {
    let (a, b) = (lines(a), lines(b));
    let mut out = String::from("<pre class=\"diff\">");
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        a.iter().for_each(|l| out.push_str(&format!("<del>- {}</del>\n", esc(l))));
        b.iter().for_each(|l| out.push_str(&format!("<ins>+ {}</ins>\n", esc(l))));
        out.push_str("</pre>");
        return out;
    }
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] { common[i + 1][j + 1] + 1 } else { common[i + 1][j].max(common[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", esc(&a[i])));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || common[i + 1][j] >= common[i][j + 1]) {
            out.push_str(&format!("<del>- {}</del>\n", esc(&a[i])));
            i += 1;
        } else {
            out.push_str(&format!("<ins>+ {}</ins>\n", esc(&b[j])));
            j += 1;
        }
    }
    out.push_str("</pre>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_removed_and_added_lines_escaped() {
        let d = diff(&json!({"a": 1, "b": "<x>"}), &json!({"a": 2, "b": "<x>"}));
        assert_eq!(
            d,
            "<pre class=\"diff\">  {\n<del>-   &quot;a&quot;: 1,</del>\n<ins>+   &quot;a&quot;: 2,</ins>\n  \
             \x20 &quot;b&quot;: &quot;&lt;x&gt;&quot;\n  }\n</pre>"
        );
        assert_eq!(diff(&json!(1), &json!(1)), "<pre class=\"diff\">  1\n</pre>");
    }
}
