//! Data loading, augmentation and batching. Fast, no network, no GPU. Small files in each
//! format are written by the tests themselves; tests on the real data in `../shared/data` skip
//! (printing `SKIPPED` and why) when it is absent, or fail with `TSC_REQUIRE_DATA=1`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use tsc_trainer::data::{
    self, augment_image, cifar, digits, download, folder, mnist, Dataset, DatasetKind, DatasetSpec,
    Loader, LoaderConfig, Normalization, Split,
};
use tsc_trainer::rng::Rng;

/// A fresh empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tsc-data-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

fn assert_err_mentions<T: std::fmt::Debug>(r: anyhow::Result<T>, words: &[&str]) {
    let e = err_text(r);
    for w in words {
        assert!(e.contains(w), "error {e:?} does not mention {w:?}");
    }
}

fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"));
    if p.is_dir() {
        Some(p)
    } else if std::env::var("TSC_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!("TSC_REQUIRE_DATA=1 but {} is not there", p.display());
    } else {
        // Visible in the test log (`cargo test` shows a passing test's output only with
        // --nocapture): TSC_REQUIRE_DATA=1 turns the skip into a failure.
        eprintln!(
            "SKIPPED: {} not found (TSC_REQUIRE_DATA=1 makes this fail)",
            p.display()
        );
        None
    }
}

/// A CIFAR-10 record: label, then planar R, G, B with pixel (y, x) of plane k = f(k, y, x).
fn cifar_record(header: &[u8], seed: u8) -> Vec<u8> {
    let mut r = header.to_vec();
    for k in 0..3u8 {
        for y in 0..32u8 {
            for x in 0..32u8 {
                r.push(k.wrapping_mul(85) ^ y.wrapping_mul(7) ^ x.wrapping_mul(3) ^ seed);
            }
        }
    }
    r
}

fn write_cifar10(dir: &Path, train_labels: &[u8], test_labels: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    let bin = |labels: &[u8]| -> Vec<u8> {
        labels
            .iter()
            .enumerate()
            .flat_map(|(i, &l)| cifar_record(&[l], i as u8))
            .collect()
    };
    fs::write(dir.join("data_batch_1.bin"), bin(train_labels)).unwrap();
    fs::write(dir.join("data_batch_2.bin"), bin(&train_labels[..1])).unwrap();
    fs::write(dir.join("test_batch.bin"), bin(test_labels)).unwrap();
    let names = cifar::CIFAR10_CLASSES.join("\n") + "\n\n";
    fs::write(dir.join("batches.meta.txt"), names).unwrap();
}

#[test]
fn cifar10_parses_and_converts_planar_to_hwc() {
    let d = temp_dir("cifar10");
    write_cifar10(&d, &[3, 0, 9], &[1, 2]);
    let mut spec = DatasetSpec::new(DatasetKind::Cifar10, Some(d.clone()));
    spec.cifar10_train_batches = vec![1];
    let (train, test) = data::load(&spec).unwrap();
    assert_eq!(train.len(), 3);
    assert_eq!(test.len(), 2);
    assert_eq!(train.labels, vec![3, 0, 9]);
    assert_eq!(test.labels, vec![1, 2]);
    assert_eq!(train.shape, (32, 32, 3));
    assert_eq!(train.classes, 10);
    assert_eq!(train.class_names[3], "cat");
    assert!((train.scale - 1.0 / 255.0).abs() < 1e-9);
    for i in 0..3 {
        let rec = cifar_record(&[0], i as u8);
        let img = train.image(i);
        for y in 0..32 {
            for x in 0..32 {
                for k in 0..3 {
                    assert_eq!(img[(y * 32 + x) * 3 + k], rec[1 + k * 1024 + y * 32 + x]);
                }
            }
        }
    }
    // All five batches requested, two given: the missing one is named.
    spec.cifar10_train_batches = vec![];
    assert_err_mentions(data::load(&spec), &["data_batch_3.bin", "not found"]);
    spec.cifar10_train_batches = vec![1, 2];
    assert_eq!(data::load(&spec).unwrap().0.len(), 4);
    spec.cifar10_train_batches = vec![6];
    assert!(data::load(&spec).is_err());
    // The archive's folder layout (parent of cifar-10-batches-bin) is accepted too.
    let p = temp_dir("cifar10-parent");
    write_cifar10(&p.join("cifar-10-batches-bin"), &[1], &[2]);
    let t = data::load_split(
        &DatasetSpec::new(DatasetKind::Cifar10, Some(p.clone())),
        Split::Test,
    )
    .unwrap();
    assert_eq!(t.labels, vec![2]);
    let _ = fs::remove_dir_all(&d);
    let _ = fs::remove_dir_all(&p);
}

#[test]
fn cifar10_errors_name_file_and_problem() {
    let d = temp_dir("cifar10-bad");
    write_cifar10(&d, &[1, 2], &[3]);
    let f = d.join("test_batch.bin");
    let mut bytes = fs::read(&f).unwrap();
    bytes.truncate(3073 - 100);
    fs::write(&f, &bytes).unwrap();
    assert_err_mentions(
        cifar::load_cifar10_test(&d),
        &["test_batch.bin", "truncated"],
    );

    fs::write(&f, cifar_record(&[10], 0)).unwrap();
    assert_err_mentions(
        cifar::load_cifar10_test(&d),
        &["test_batch.bin", "label 10", "out of range"],
    );
    fs::write(&f, b"").unwrap();
    assert_err_mentions(cifar::load_cifar10_test(&d), &["test_batch.bin", "empty"]);
    fs::remove_file(&f).unwrap();
    assert_err_mentions(
        cifar::load_cifar10_test(&d),
        &["test_batch.bin", "not found"],
    );
    fs::write(d.join("batches.meta.txt"), "a\nb\n").unwrap();
    assert_err_mentions(
        cifar::load_cifar10_train(&d, &[1]),
        &["batches.meta.txt", "expected 10"],
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn cifar100_uses_fine_labels() {
    let d = temp_dir("cifar100");
    let recs: Vec<u8> = [(3u8, 42u8), (19, 99), (0, 0)]
        .iter()
        .enumerate()
        .flat_map(|(i, &(c, f))| cifar_record(&[c, f], i as u8))
        .collect();
    fs::write(d.join("train.bin"), &recs).unwrap();
    fs::write(d.join("test.bin"), &recs[..3074]).unwrap();
    let names: String = (0..100).map(|i| format!("class{i}\n")).collect();
    fs::write(d.join("fine_label_names.txt"), names).unwrap();
    let (train, test) =
        data::load(&DatasetSpec::new(DatasetKind::Cifar100, Some(d.clone()))).unwrap();
    assert_eq!(train.labels, vec![42, 99, 0]);
    assert_eq!(test.labels, vec![42]);
    assert_eq!(train.classes, 100);
    assert_eq!(train.class_names[99], "class99");
    let rec = cifar_record(&[0, 0], 1);
    assert_eq!(train.image(1)[0..3], [rec[2], rec[2 + 1024], rec[2 + 2048]]);
    // A fine label of 100 and a coarse label of 20 are both out of range.
    fs::write(d.join("test.bin"), cifar_record(&[1, 100], 0)).unwrap();
    assert_err_mentions(
        cifar::load_cifar100(&d, Split::Test),
        &["test.bin", "label 100", "out of range"],
    );
    fs::write(d.join("test.bin"), cifar_record(&[20, 1], 0)).unwrap();
    assert_err_mentions(cifar::load_cifar100(&d, Split::Test), &["label 20"]);
    let _ = fs::remove_dir_all(&d);
}

fn idx_images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [0x803, n, rows, cols] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
    b
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0x801u32.to_be_bytes());
    b.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    b.extend_from_slice(labels);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn mnist_idx_gz_and_plain() {
    let d = temp_dir("mnist");
    fs::write(
        d.join("train-images-idx3-ubyte.gz"),
        gz(&idx_images(3, 5, 4)),
    )
    .unwrap();
    fs::write(
        d.join("train-labels-idx1-ubyte.gz"),
        gz(&idx_labels(&[7, 0, 9])),
    )
    .unwrap();
    // Test files uncompressed.
    fs::write(d.join("t10k-images-idx3-ubyte"), idx_images(2, 5, 4)).unwrap();
    fs::write(d.join("t10k-labels-idx1-ubyte"), idx_labels(&[1, 2])).unwrap();
    let (train, test) = data::load(&DatasetSpec::new(DatasetKind::Mnist, Some(d.clone()))).unwrap();
    assert_eq!(train.shape, (5, 4, 1));
    assert_eq!(train.labels, vec![7, 0, 9]);
    assert_eq!(test.labels, vec![1, 2]);
    assert_eq!(train.image(1), &idx_images(3, 5, 4)[16 + 20..16 + 40]);
    assert_eq!(train.classes, 10);

    let img = d.join("t10k-images-idx3-ubyte");
    let lab = d.join("t10k-labels-idx1-ubyte");
    // Bad magic: labels where images are expected.
    fs::write(&img, idx_labels(&[1, 2])).unwrap();
    assert_err_mentions(
        mnist::load_split(&d, Split::Test),
        &["t10k-images-idx3-ubyte", "bad magic"],
    );
    // Truncated pixels.
    let mut b = idx_images(2, 5, 4);
    b.truncate(b.len() - 1);
    fs::write(&img, &b).unwrap();
    assert_err_mentions(
        mnist::load_split(&d, Split::Test),
        &["t10k-images", "truncated"],
    );
    // Counts differ.
    fs::write(&img, idx_images(3, 5, 4)).unwrap();
    assert_err_mentions(
        mnist::load_split(&d, Split::Test),
        &["3 images", "2 labels"],
    );
    // Label out of range.
    fs::write(&img, idx_images(2, 5, 4)).unwrap();
    fs::write(&lab, idx_labels(&[1, 10])).unwrap();
    assert_err_mentions(
        mnist::load_split(&d, Split::Test),
        &["t10k-labels-idx1-ubyte", "label 10", "out of range"],
    );
    // Truncated gzip stream.
    let g = gz(&idx_labels(&[1, 2, 3, 4, 5, 6, 7, 8]));
    fs::write(&lab, &g[..g.len() / 2]).unwrap();
    assert_err_mentions(mnist::load_split(&d, Split::Test), &["t10k-labels", "gzip"]);
    fs::remove_file(&lab).unwrap();
    assert_err_mentions(
        mnist::load_split(&d, Split::Test),
        &["t10k-labels", "not found"],
    );
    let _ = fs::remove_dir_all(&d);
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_resize_crop_and_errors() {
    let d = temp_dir("folder");
    // 8 wide x 4 high, column x has red = 10 * x: the center 4x4 crop keeps columns 2..6.
    let stripes = |x: u32, _y: u32| [10 * x as u8, 50, 200];
    write_png(&d.join("train/cat/a.png"), 8, 4, stripes);
    write_png(&d.join("train/cat/b.PNG"), 8, 4, stripes);
    write_png(&d.join("train/dog/c.png"), 4, 4, |_, _| [1, 2, 3]);
    fs::write(d.join("train/dog/notes.txt"), "not an image").unwrap();
    write_png(&d.join("test/dog/d.png"), 16, 16, |_, _| [9, 9, 9]);
    fs::create_dir_all(d.join("test/cat")).unwrap();
    image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 50]))
        .save(d.join("test/cat/e.jpg"))
        .unwrap();
    let mut spec = DatasetSpec::new(DatasetKind::Folder, Some(d.clone()));
    spec.image_size = (4, 4);
    let (train, test) = data::load(&spec).unwrap();
    assert_eq!(train.class_names, vec!["cat", "dog"]);
    assert_eq!(train.shape, (4, 4, 3));
    assert_eq!(train.labels, vec![0, 0, 1]);
    assert_eq!(test.labels, vec![0, 1]);
    for y in 0..4 {
        for x in 0..4 {
            let p = &train.image(0)[(y * 4 + x) * 3..(y * 4 + x) * 3 + 3];
            assert_eq!(p, [10 * (x as u8 + 2), 50, 200]);
        }
    }
    assert!(train.image(2).chunks(3).all(|p| p == [1, 2, 3]));
    // 16x16 -> 4x4 by resizing; a constant image stays constant (JPEG: nearly).
    assert!(test.image(1).iter().all(|&v| v == 9));
    for p in test.image(0).chunks(3) {
        for (v, want) in p.iter().zip([200, 100, 50]) {
            assert!((*v as i32 - want).abs() <= 4, "jpeg pixel {p:?}");
        }
    }
    // Grayscale.
    spec.grayscale = true;
    let (g, _) = data::load(&spec).unwrap();
    assert_eq!(g.shape, (4, 4, 1));
    // A file that will not decode is named.
    fs::write(d.join("train/dog/broken.png"), b"\x89PNG garbage").unwrap();
    spec.grayscale = false;
    assert_err_mentions(data::load(&spec), &["broken.png", "decode"]);
    // A test class unknown to the training set.
    fs::remove_file(d.join("train/dog/broken.png")).unwrap();
    write_png(&d.join("test/emu/f.png"), 4, 4, |_, _| [0, 0, 0]);
    assert_err_mentions(data::load(&spec), &["emu"]);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn image_folder_without_split_is_held_out_deterministically() {
    let d = temp_dir("folder-flat");
    for c in 0..3u8 {
        for i in 0..10u8 {
            write_png(&d.join(format!("k{c}/{i:02}.png")), 6, 6, |_, _| [c, i, 0]);
        }
    }
    let mut spec = DatasetSpec::new(DatasetKind::Folder, Some(d.clone()));
    spec.image_size = (3, 3);
    let (train, test) = data::load(&spec).unwrap();
    assert_eq!(train.class_counts(), vec![8, 8, 8]);
    assert_eq!(test.class_counts(), vec![2, 2, 2]);
    // Train and test are disjoint (pixel green channel = file index within class).
    let key = |ds: &Dataset, i: usize| (ds.labels[i], ds.image(i)[1]);
    let tr: Vec<_> = (0..train.len()).map(|i| key(&train, i)).collect();
    for i in 0..test.len() {
        assert!(!tr.contains(&key(&test, i)));
    }
    assert_eq!(data::load(&spec).unwrap(), (train, test));
    let empty = temp_dir("folder-empty");
    assert_err_mentions(
        data::load(&DatasetSpec::new(DatasetKind::Folder, Some(empty.clone()))),
        &["no class subfolders"],
    );
    fs::create_dir_all(empty.join("a")).unwrap();
    assert_err_mentions(
        folder::class_names(&empty).and_then(|n| folder::load_classes(&empty, &n, (2, 2), 3)),
        &["no PNG or JPEG"],
    );
    let _ = fs::remove_dir_all(&d);
    let _ = fs::remove_dir_all(&empty);
}

#[test]
fn digits_embedded_shipped_and_split() {
    let all = digits::embedded().unwrap();
    assert_eq!(all.len(), 1797);
    assert_eq!(all.shape, (8, 8, 1));
    assert_eq!(
        all.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert!((all.scale - 1.0 / 16.0).abs() < 1e-9);
    assert!(all.images.iter().all(|&v| v <= 16));
    // The repository's file is the embedded one.
    let shipped = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits"));
    assert_eq!(digits::load_file(&digits::resolve(&shipped)).unwrap(), all);

    let spec = DatasetSpec::new(DatasetKind::Digits, None);
    let (train, test) = data::load(&spec).unwrap();
    assert_eq!(train.len() + test.len(), 1797);
    assert_eq!(test.len(), 359);
    let want: Vec<usize> = all
        .class_counts()
        .iter()
        .map(|&n| (n as f64 * 0.2).round() as usize)
        .collect();
    assert_eq!(test.class_counts(), want);
    // Same split every time, and from the file path too.
    assert_eq!(data::load(&spec).unwrap(), (train.clone(), test.clone()));
    let from_file = DatasetSpec::new(DatasetKind::Digits, Some(shipped));
    assert_eq!(data::load(&from_file).unwrap(), (train, test));
}

#[test]
fn digits_errors() {
    let d = temp_dir("digits-bad");
    let f = d.join("digits.bin");
    let mut rec = vec![3u8];
    rec.extend([0u8; 64]);
    fs::write(&f, &rec[..60]).unwrap();
    assert_err_mentions(digits::load_file(&f), &["digits.bin", "truncated"]);
    rec[0] = 10;
    fs::write(&f, &rec).unwrap();
    assert_err_mentions(
        digits::load_file(&f),
        &["digits.bin", "label 10", "out of range"],
    );
    rec[0] = 1;
    rec[5] = 17;
    fs::write(&f, &rec).unwrap();
    assert_err_mentions(digits::load_file(&f), &["pixel value 17"]);
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn augmentation_flip_is_mirror_and_centered_crop_is_identity() {
    let shape = (5, 7, 3);
    let mut rng = Rng::new(3);
    let img: Vec<u8> = (0..5 * 7 * 3).map(|_| rng.below(256) as u8).collect();
    assert_eq!(augment_image(&img, shape, 4, 4, 4, false), img);
    let flipped = augment_image(&img, shape, 4, 4, 4, true);
    for y in 0..5 {
        for x in 0..7 {
            for c in 0..3 {
                assert_eq!(flipped[(y * 7 + x) * 3 + c], img[(y * 7 + (6 - x)) * 3 + c]);
            }
        }
    }
    assert_eq!(augment_image(&flipped, shape, 4, 4, 4, true), img);
    // Offset (0, 0): the image moves 4 down and 4 right, zeros enter at the top and left.
    let shifted = augment_image(&img, shape, 4, 0, 0, false);
    for y in 0..5 {
        for x in 0..7 {
            for c in 0..3 {
                let want = if y < 4 || x < 4 {
                    0
                } else {
                    img[((y - 4) * 7 + (x - 4)) * 3 + c]
                };
                assert_eq!(shifted[(y * 7 + x) * 3 + c], want);
            }
        }
    }
    // Offset (8, 8): moves up-left.
    let up = augment_image(&img, shape, 4, 8, 5, false);
    assert_eq!(up[..3], img[(4 * 7 + 1) * 3..(4 * 7 + 1) * 3 + 3]);
}

fn toy_dataset(n: usize, shape: (usize, usize, usize), classes: usize) -> Dataset {
    let mut rng = Rng::new(11);
    let images = (0..n * shape.0 * shape.1 * shape.2)
        .map(|_| rng.below(256) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    let names = (0..classes).map(|i| i.to_string()).collect();
    Dataset::new(images, labels, shape, names, 1.0 / 255.0).unwrap()
}

#[test]
fn normalization_matches_direct_computation() {
    let ds = toy_dataset(50, (6, 6, 3), 4);
    let norm = Normalization::from_dataset(&ds);
    for c in 0..3 {
        let v: Vec<f64> = ds
            .images
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&p| p as f64 / 255.0)
            .collect();
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((norm.mean[c] as f64 - m).abs() < 1e-6);
        assert!((norm.std[c] as f64 - s).abs() < 1e-6);
    }
    // An evaluation pass over the set is normalised: mean 0, variance 1 per channel.
    let loader = Loader::new(Arc::new(ds), norm, LoaderConfig::eval(16)).unwrap();
    let (mut s, mut s2, mut n) = ([0f64; 3], [0f64; 3], 0f64);
    for b in loader.epoch(0) {
        for px in b.images.chunks(3) {
            for c in 0..3 {
                s[c] += px[c] as f64;
                s2[c] += (px[c] * px[c]) as f64;
            }
            n += 1.0;
        }
    }
    for c in 0..3 {
        assert!((s[c] / n).abs() < 1e-4);
        assert!((s2[c] / n - 1.0).abs() < 1e-3);
    }
}

#[test]
fn batches_are_deterministic_across_thread_counts() {
    let ds = Arc::new(toy_dataset(103, (8, 8, 3), 10));
    let norm = Normalization::from_dataset(&ds);
    let run = |threads: usize, queue: usize, seed: u64| -> Vec<Vec<data::Batch>> {
        let mut cfg = LoaderConfig::train(10, seed, true);
        cfg.threads = threads;
        cfg.queue = queue;
        let l = Loader::new(ds.clone(), norm.clone(), cfg).unwrap();
        (0..3).map(|e| l.epoch(e).collect()).collect()
    };
    let base = run(0, 1, 42);
    assert_eq!(base[0].len(), 10); // 103 / 10, last partial batch dropped
    assert!(base[0].iter().all(|b| b.len() == 10));
    for (t, q) in [(1, 1), (2, 2), (3, 1), (8, 4)] {
        assert!(run(t, q, 42) == base, "threads {t} queue {q} differ");
    }
    // Epochs differ in order and augmentation; other seeds differ too.
    assert_ne!(base[0][0].indices, base[1][0].indices);
    assert_ne!(run(0, 1, 43)[0][0].indices, base[0][0].indices);
    // Each epoch visits distinct samples; batch labels match the dataset.
    for epoch in &base {
        let mut seen: Vec<usize> = epoch.iter().flat_map(|b| b.indices.clone()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 100);
        for b in epoch {
            for (k, &i) in b.indices.iter().enumerate() {
                assert_eq!(b.labels[k], ds.labels[i]);
            }
        }
    }
    // Augmentation actually did something for some images, never for all pixels.
    let plain = {
        let mut cfg = LoaderConfig::train(10, 42, false);
        cfg.threads = 0;
        Loader::new(ds.clone(), norm.clone(), cfg)
            .unwrap()
            .batch(0, 0)
    };
    assert_eq!(plain.indices, base[0][0].indices);
    assert_ne!(plain.images, base[0][0].images);
}

#[test]
fn eval_keeps_final_partial_batch_in_order() {
    let ds = Arc::new(toy_dataset(23, (4, 4, 1), 3));
    let norm = Normalization::identity(1);
    let mut cfg = LoaderConfig::eval(10);
    cfg.threads = 2;
    let l = Loader::new(ds.clone(), norm, cfg).unwrap();
    assert_eq!(l.batches_per_epoch(), 3);
    let batches: Vec<_> = l.epoch(5).collect();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![10, 10, 3]
    );
    let idx: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(idx, (0..23).collect::<Vec<_>>());
    // Identity normalisation: values are the intensities.
    assert_eq!(
        batches[2].images,
        ds.image_f32(20)
            .into_iter()
            .chain(ds.image_f32(21))
            .chain(ds.image_f32(22))
            .collect::<Vec<_>>()
    );
    // Dropping an iterator early does not hang; a new epoch starts afresh.
    let mut it = l.epoch(0);
    assert_eq!(it.len(), 3);
    it.next();
    drop(it);
    assert_eq!(l.epoch(0).count(), 3);
    // Bad configurations are errors, not panics.
    assert!(Loader::new(
        ds.clone(),
        Normalization::identity(3),
        LoaderConfig::eval(4)
    )
    .is_err());
    assert!(Loader::new(
        ds.clone(),
        Normalization::identity(1),
        LoaderConfig::eval(0)
    )
    .is_err());
    assert!(Loader::new(
        ds,
        Normalization::identity(1),
        LoaderConfig::train(24, 0, false)
    )
    .is_err());
}

fn tar_gz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn download_verify_and_unpack_small_archive() {
    let d = temp_dir("download");
    let rec: Vec<u8> = cifar_record(&[4], 0);
    let archive = tar_gz(&[
        ("cifar-10-batches-bin/data_batch_1.bin", rec.clone()),
        ("cifar-10-batches-bin/test_batch.bin", rec.clone()),
        (
            "cifar-10-batches-bin/batches.meta.txt",
            cifar::CIFAR10_CLASSES.join("\n").into_bytes(),
        ),
    ]);
    let path = d.join("cifar-10-binary.tar.gz");
    fs::write(&path, &archive).unwrap();
    let md5 = format!("{:x}", md5::compute(&archive));
    assert_eq!(download::md5_file(&path).unwrap(), md5);

    let cache = d.join("cache");
    // Wrong checksum: error, nothing unpacked.
    assert_err_mentions(
        download::verify_and_unpack(&path, "c32a1d4ab5d03f1284b67883e8d87530", &cache),
        &["cifar-10-binary.tar.gz", "checksum mismatch"],
    );
    assert!(!cache.join("cifar-10-batches-bin").exists());

    let names = download::verify_and_unpack(&path, &md5, &cache).unwrap();
    assert_eq!(names, vec!["cifar-10-batches-bin"]);
    // No temporary folders are left behind.
    assert_eq!(fs::read_dir(&cache).unwrap().count(), 1);
    let mut spec = DatasetSpec::new(DatasetKind::Cifar10, Some(cache.clone()));
    spec.cifar10_train_batches = vec![1];
    let (train, test) = data::load(&spec).unwrap();
    assert_eq!(
        (train.labels.clone(), test.labels.clone()),
        (vec![4], vec![4])
    );
    // Unpacking again replaces the folder.
    download::verify_and_unpack(&path, &md5.to_uppercase(), &cache).unwrap();
    // `ensure` uses an already unpacked folder without any network.
    assert_eq!(
        download::ensure(DatasetKind::Cifar10, &cache).unwrap(),
        cache.join("cifar-10-batches-bin")
    );
    assert!(download::archive_for(DatasetKind::Mnist).is_err());
    assert_eq!(download::CIFAR100.md5, "03b5dce01913d631647c71ecec9e9cb8");

    // A corrupt archive whose checksum matches still fails cleanly.
    let bad = d.join("bad.tar.gz");
    fs::write(&bad, &archive[..archive.len() / 2]).unwrap();
    let bad_md5 = download::md5_file(&bad).unwrap();
    assert_err_mentions(
        download::verify_and_unpack(&bad, &bad_md5, &d.join("cache2")),
        &["bad.tar.gz", "unpack"],
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn dataset_kind_names() {
    for k in DatasetKind::ALL {
        assert_eq!(k.name().parse::<DatasetKind>().unwrap(), k);
    }
    assert_err_mentions("imagenet".parse::<DatasetKind>(), &["imagenet", "cifar10"]);
    assert!(!DatasetKind::Digits.default_augment());
    assert!(!DatasetKind::Mnist.default_augment());
    assert!(DatasetKind::Cifar10.default_augment());
    assert_err_mentions(
        data::load(&DatasetSpec::new(DatasetKind::Cifar10, None)),
        &["--download"],
    );
}

#[test]
fn real_cifar10_batch1_counts() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("cifar10");
    if !dir.join("data_batch_1.bin").is_file() {
        eprintln!("skipped: {} has no data_batch_1.bin", dir.display());
        return;
    }
    let ds = cifar::load_cifar10_train(&dir, &[1]).unwrap();
    assert_eq!(
        ds.class_counts(),
        vec![1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]
    );
    assert_eq!(ds.class_names[0], "airplane");
    assert_eq!(ds.class_names[9], "truck");
    let test = cifar::load_cifar10_test(&dir).unwrap();
    assert_eq!(test.class_counts(), vec![1000; 10]);
    // The first test images are the well-known cat, ship, ship, airplane, frog.
    assert_eq!(test.labels[..5], [3, 8, 8, 0, 6]);
    let norm = Normalization::from_dataset(&ds);
    // CIFAR-10's familiar statistics (red channel mean about 0.49, std about 0.25).
    assert!((norm.mean[0] - 0.49).abs() < 0.02, "{norm:?}");
    assert!((norm.std[0] - 0.25).abs() < 0.02, "{norm:?}");
}

#[test]
fn real_mnist_test_counts() {
    let Some(root) = shared_data() else { return };
    let dir = root.join("mnist");
    if !dir.is_dir() {
        eprintln!("skipped: {} not found", dir.display());
        return;
    }
    let t = mnist::load_split(&dir, Split::Test).unwrap();
    assert_eq!(t.shape, (28, 28, 1));
    assert_eq!(
        t.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn real_shared_digits_match_shipped_copy() {
    let Some(root) = shared_data() else { return };
    let f = root.join("digits/digits.bin");
    if !f.is_file() {
        eprintln!("skipped: {} not found", f.display());
        return;
    }
    let ds = digits::load_file(&f).unwrap();
    assert_eq!(
        ds.class_counts(),
        vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
    assert_eq!(ds, digits::embedded().unwrap());
}

/// A long thin image is cropped before it is resized (the old resize-then-crop made a
/// 4-gigapixel intermediate for 1×4000 at 1024), and the result keeps the image's middle.
#[test]
fn fit_image_crops_before_resizing() {
    use tsc_trainer::data::folder::fit_image;
    // 3 wide, 4000 tall: rows 1990..2010 are white, the rest black.
    let img = image::GrayImage::from_fn(3, 4000, |_, y| {
        image::Luma([if (1990..2010).contains(&y) { 255 } else { 0 }])
    });
    let t = std::time::Instant::now();
    let px = fit_image(image::DynamicImage::ImageLuma8(img), (64, 64), 1).unwrap();
    assert_eq!(px.len(), 64 * 64);
    // The middle 3 source rows map to the 64 target rows: all white.
    assert!(
        px.iter().all(|&v| v == 255),
        "the crop is not the image's middle"
    );
    println!("1x... 3x4000 -> 64x64 in {:?}", t.elapsed());
    // A square image is resized only.
    let sq = image::GrayImage::from_fn(16, 16, |x, _| image::Luma([(x * 16) as u8]));
    let px = fit_image(image::DynamicImage::ImageLuma8(sq), (8, 8), 1).unwrap();
    assert!(px[0] < px[7], "left-to-right gradient kept");
}
