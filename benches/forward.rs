//! Micro-benchmark of the CPU stages of the scoring path (featurise and
//! the candle forward pass) with the demo model. `cargo bench --bench forward`.
//! The end-to-end HTTP + database figures come from `verdict bench`.

use std::path::Path;
use std::time::Instant;

use verdict::ml::LoadedModel;
use verdict::scoring::featurise;

fn per_call(label: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let each = started.elapsed().as_secs_f64() / f64::from(iterations);
    println!("{label:<40} {:>10.2} µs", each * 1e6);
}

fn main() {
    // The service sets this too (src/main.rs): one thread per forward pass.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = LoadedModel::load(&root.join("models/tumor-triage/v1")).expect("demo model");
    let example: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/case-0001.json")).unwrap(),
    )
    .unwrap();
    let input = example["input"].clone();
    let features = featurise(Some(&model), &input).unwrap();
    let row = model.normalise(&features.values);
    let batch: Vec<Vec<f32>> = vec![row.clone(); 100];

    println!(
        "RAYON_NUM_THREADS={}",
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
    );
    per_call("featurise (validate + canonical JSON)", 20_000, || {
        std::hint::black_box(featurise(Some(&model), &input).unwrap());
    });
    per_call("forward, batch 1", 20_000, || {
        std::hint::black_box(model.predict(std::slice::from_ref(&row)).unwrap());
    });
    per_call("forward, batch 100 (per call)", 2_000, || {
        std::hint::black_box(model.predict(&batch).unwrap());
    });
}
