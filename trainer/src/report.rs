//! Machine-readable output of `predict` and `eval` (`--format json|csv`), written by hand to
//! avoid a JSON dependency for a handful of flat records.
//!
//! Numbers use Rust's shortest round-trip formatting (`{}` on f32/f64): parsing the printed
//! text gives back the exact value, which is what an outside check or a notebook needs. JSON
//! has no NaN or infinity, so those print as `null`.

use std::fmt::Write;

/// Output format of `predict` and `eval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The aligned, human-readable lines (the default).
    #[default]
    Text,
    /// One JSON document.
    Json,
    /// A header line and one row per record.
    Csv,
}

/// `s` as a JSON string literal (quotes included). Control characters are escaped; other
/// characters pass through as UTF-8, which JSON allows.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number at full precision, `null` when not finite.
pub fn json_num<T: Into<f64> + std::fmt::Display + Copy>(v: T) -> String {
    if v.into().is_finite() {
        v.to_string()
    } else {
        "null".into()
    }
}

/// A JSON array of numbers.
pub fn json_nums<T: Into<f64> + std::fmt::Display + Copy>(v: &[T]) -> String {
    let items: Vec<String> = v.iter().map(|&x| json_num(x)).collect();
    format!("[{}]", items.join(", "))
}

/// One CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, a quote or a
/// line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Softmax of f32 logits computed in f64 (max subtracted first), so the probabilities printed
/// at full precision carry no more rounding than the logits themselves.
pub fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let m = logits
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_str("x\ny\t\u{1}é"), "\"x\\ny\\t\\u0001é\"");
    }

    #[test]
    fn numbers_round_trip_and_non_finite_is_null() {
        for v in [0.1f32, 1.0e-7, 3.4028235e38, -2.5e-42, 1.0 / 3.0] {
            assert_eq!(json_num(v).parse::<f32>().unwrap().to_bits(), v.to_bits());
        }
        assert_eq!(json_num(f32::NAN), "null");
        assert_eq!(json_num(f64::INFINITY), "null");
        assert_eq!(json_nums(&[1.0f32, 0.5]), "[1, 0.5]");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain.png"), "plain.png");
        assert_eq!(csv_field("a,b \"c\".png"), "\"a,b \"\"c\"\".png\"");
    }

    #[test]
    fn softmax_f64_matches_hand_values() {
        // logits 0 and ln 3: probabilities 1/4 and 3/4.
        let p = softmax_f64(&[0.0, 3f32.ln()]);
        assert!(
            (p[0] - 0.25).abs() < 1e-7 && (p[1] - 0.75).abs() < 1e-7,
            "{p:?}"
        );
        // A huge logit does not overflow.
        let p = softmax_f64(&[1000.0, 0.0]);
        assert_eq!(p[0], 1.0);
    }
}
