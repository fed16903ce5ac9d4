//! `trainer predict --logits / --format json|csv` (issue 21, item 3) on the committed firmware
//! model, CPU only: every printed logit parses back to exactly the logit core's inference
//! computes on the same pixels, the probabilities are its softmax, and file names that need
//! escaping come out escaped.
//! Random pixels: seed from $TSC_TEST_SEED (default 21), printed.

use std::path::PathBuf;
use tsc_trainer::report::Format;
use tsc_trainer::rng::Rng;
use tsc_trainer::tools::{classify_logits, Predictions};

fn model_bytes() -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware-demo/models/default.tscm");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn seed() -> u64 {
    let s = std::env::var("TSC_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    println!("seed {s} (set TSC_TEST_SEED to change)");
    s
}

/// Two random images at the model's input size (no resize, so the pixels core sees are
/// exactly these), one under a name with a comma, quotes and a backslash. Returns the paths
/// and core's logits for each, computed here from the raw pixels.
fn images(bytes: &[u8]) -> (Vec<PathBuf>, Vec<Vec<f32>>) {
    let m = tsc_core::Model::parse(bytes).unwrap();
    let a = *m.arch();
    assert_eq!(a.input.c, 1, "the firmware model is grayscale");
    let dir = std::env::temp_dir().join(format!("tsc-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(seed());
    let (mut paths, mut logits) = (Vec::new(), Vec::new());
    for name in ["plain.png", "a, \"b\" \\c.png"] {
        let px: Vec<u8> = (0..a.input.h * a.input.w)
            .map(|_| rng.below_usize(256) as u8)
            .collect();
        let p = dir.join(name);
        image::GrayImage::from_raw(a.input.w as u32, a.input.h as u32, px.clone())
            .unwrap()
            .save(&p)
            .unwrap();
        let x: Vec<f32> = px.iter().map(|&v| v as f32 / 255.0).collect();
        let mut scratch = vec![0.0f32; m.scratch_len()];
        let mut z = vec![0.0f32; a.classes];
        tsc_core::infer(&m, &x, &mut scratch, &mut z).unwrap();
        paths.push(p);
        logits.push(z);
    }
    (paths, logits)
}

fn predictions(bytes: &[u8], paths: &[PathBuf]) -> Predictions {
    let m = tsc_core::Model::parse(bytes).unwrap();
    Predictions {
        model: "model.tscm".into(),
        classes: (0..m.arch().classes).map(|c| format!("c{c}")).collect(),
        images: paths
            .iter()
            .cloned()
            .zip(classify_logits(bytes, paths).unwrap())
            .collect(),
    }
}

/// The numbers of the JSON array that follows `key` in `s` after byte `from`.
fn json_array(s: &str, key: &str, from: usize) -> (Vec<f64>, usize) {
    let start = from + s[from..].find(key).expect(key) + key.len();
    let open = start + s[start..].find('[').unwrap() + 1;
    let close = open + s[open..].find(']').unwrap();
    let v = s[open..close]
        .split(',')
        .map(|t| t.trim().parse::<f64>().unwrap())
        .collect();
    (v, close)
}

/// Softmax in f64 of f32 logits, written out independently of the code under test.
fn softmax(z: &[f32]) -> Vec<f64> {
    let lse = z.iter().map(|&v| (v as f64).exp()).sum::<f64>().ln();
    z.iter().map(|&v| (v as f64 - lse).exp()).collect()
}

#[test]
fn json_carries_every_logit_exactly() {
    let bytes = model_bytes();
    let (paths, want) = images(&bytes);
    let json = predictions(&bytes, &paths).render(Format::Json, false);
    println!("{json}");
    let mut at = 0;
    for z in &want {
        let (got, end) = json_array(&json, "\"logits\"", at);
        let got32: Vec<u32> = got.iter().map(|&v| (v as f32).to_bits()).collect();
        let want32: Vec<u32> = z.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got32, want32, "printed logits differ from core's");
        let (p, end) = json_array(&json, "\"probabilities\"", end);
        for (a, b) in p.iter().zip(softmax(z)) {
            assert!((a - b).abs() <= 1e-15, "probability {a} vs {b}");
        }
        at = end;
    }
    // The awkward file name, escaped as JSON wants it.
    assert!(json.contains(r#"a, \"b\" \\c.png""#), "{json}");
    assert_eq!(json.matches('{').count(), json.matches('}').count());
}

#[test]
fn csv_has_one_row_per_class_with_exact_logits() {
    let bytes = model_bytes();
    let (paths, want) = images(&bytes);
    let csv = predictions(&bytes, &paths).render(Format::Csv, false);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("file,predicted,class,name,logit,probability")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), want.len() * want[0].len());
    for (i, z) in want.iter().enumerate() {
        for (c, &zc) in z.iter().enumerate() {
            let row = rows[i * z.len() + c];
            // The quoted name holds a comma: take the numeric fields from the right.
            let f: Vec<&str> = row.rsplitn(6, ',').collect();
            let prob: f64 = f[0].parse().unwrap();
            assert!((prob - softmax(z)[c]).abs() <= 1e-15, "{row}");
            assert_eq!(
                f[1].parse::<f32>().unwrap().to_bits(),
                zc.to_bits(),
                "{row}"
            );
            assert_eq!(
                (f[2], f[3]),
                (format!("c{c}").as_str(), c.to_string().as_str())
            );
            if i == 1 {
                assert!(f[5].starts_with('"') && f[5].contains("\"\"b\"\""), "{row}");
            }
        }
    }
}

#[test]
fn text_stays_as_before_unless_logits_are_asked_for() {
    let bytes = model_bytes();
    let (paths, want) = images(&bytes);
    let p = predictions(&bytes, &paths);
    let plain = p.render(Format::Text, false);
    assert_eq!(plain.lines().count(), paths.len(), "{plain}");
    let long = p.render(Format::Text, true);
    assert_eq!(long.lines().count(), paths.len() * (1 + want[0].len()));
    let first = long.lines().nth(1).unwrap();
    let rest = first.strip_prefix("  c0: logit ").expect(first);
    let (z, prob) = rest.split_once(" probability ").expect(first);
    assert_eq!(z.parse::<f32>().unwrap().to_bits(), want[0][0].to_bits());
    assert!((prob.parse::<f64>().unwrap() - softmax(&want[0])[0]).abs() <= 1e-15);
}

#[test]
fn eval_json_and_csv_carry_full_precision() {
    let s = tsc_trainer::train::EvalStats {
        loss: 0.1 + 0.2,
        err: 1.0 / 3.0,
        samples: 7,
    };
    let model = std::path::Path::new("runs/x \"y\"/checkpoint.tscm");
    let json = s.render(model, "digits", Format::Json);
    println!("{json}");
    let num = |key: &str| -> f64 {
        let at = json.find(key).expect(key) + key.len();
        let rest = json[at..].trim_start_matches([':', ' ']);
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    assert_eq!(num("\"loss\"").to_bits(), (0.1f64 + 0.2).to_bits());
    assert_eq!(num("\"error\"").to_bits(), (1.0f64 / 3.0).to_bits());
    assert_eq!(num("\"samples\""), 7.0);
    assert!(json.contains(r#""runs/x \"y\"/checkpoint.tscm""#), "{json}");
    let csv = s.render(model, "digits", Format::Csv);
    let row = csv.lines().nth(1).unwrap();
    let loss: f64 = row.split(',').nth(4).unwrap().parse().unwrap();
    assert_eq!(loss.to_bits(), (0.1f64 + 0.2).to_bits(), "{csv}");
    // The terminal line keeps its 4 decimals.
    assert!(s
        .render(model, "digits", Format::Text)
        .contains("loss 0.3000,"));
}
