//! The drift statistics at the size: 30 features, a reference
//! sample of 10,000 rows and a window of 10,000 items (target: every
//! statistic of one window in under 50 ms), and at the defaults (the demo
//! card's 365 training rows, a window of 500). `cargo bench --bench drift`.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use verdict::ml::card::{ModelCard, ReferenceSample};
use verdict::monitoring::drift::{evaluate, Levels, Reference, ReferenceSettings, WindowItem};

fn normal(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// The demo card with a synthetic reference of `rows` rows per feature.
fn card(rows: usize, rng: &mut StdRng) -> ModelCard {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut card: ModelCard = serde_json::from_str(
        &std::fs::read_to_string(root.join("models/tumor-triage/v1/card.json")).unwrap(),
    )
    .unwrap();
    let features = card
        .features
        .iter()
        .map(|f| (0..rows).map(|_| f.mean + f.std * normal(rng)).collect())
        .collect();
    let held_out = card.reference_sample.as_ref().unwrap().held_out.clone();
    card.reference_sample = Some(ReferenceSample { features, held_out });
    card
}

fn window(card: &ModelCard, n: usize, shift: f64, rng: &mut StdRng) -> VecDeque<WindowItem> {
    (0..n)
        .map(|i| WindowItem {
            values: card
                .features
                .iter()
                .enumerate()
                .map(|(j, f)| f.mean + f.std * (normal(rng) + if j == 0 { shift } else { 0.0 }))
                .collect(),
            label: Some(i % 2),
            confidence: Some(rng.random_range(0.5..1.0)),
            failed: false,
            automated: true,
            input_sha256: format!("{i}"),
        })
        .collect()
}

fn run(label: &str, rows: usize, items: usize, shift: f64) {
    let mut rng = StdRng::seed_from_u64(1);
    let card = card(rows, &mut rng);
    let started = Instant::now();
    let reference = Reference::build(
        &card,
        ReferenceSettings {
            window: items,
            draws: 200,
            psi_bins: 10,
            margin: 0.1,
            threshold: Some(0.95),
        },
    );
    let build = started.elapsed();
    let levels = Levels {
        family_alpha: 1e-6,
        sds: 3.0,
        threshold: Some(0.95),
    };
    let windows: Vec<_> = (0..5)
        .map(|_| window(&card, items, shift, &mut rng))
        .collect();
    let mut times = Vec::new();
    let mut drifted = 0;
    for w in &windows {
        let started = Instant::now();
        let e = evaluate(w, &reference, &levels);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        drifted = e.drifted().count();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{label:<52} evaluate median {:>7.1} ms (min {:.1}, max {:.1}); reference built once in {:>6.0} ms; {drifted} drifted",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        build.as_secs_f64() * 1000.0
    );
}

fn main() {
    run(
        "30 features, reference 10,000, window 10,000",
        10_000,
        10_000,
        0.0,
    );
    run(
        "30 features, reference 10,000, window 10,000, 1 sd",
        10_000,
        10_000,
        1.0,
    );
    run(
        "30 features, reference 365, window 500 (defaults)",
        365,
        500,
        0.0,
    );
    run(
        "30 features, reference 365, window 500, 1 sd",
        365,
        500,
        1.0,
    );
}
