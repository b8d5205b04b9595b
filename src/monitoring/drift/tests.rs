//! The evaluation on the demo model and data: windows resampled from the
//! demo rows do not drift; a one-standard-deviation shift of one feature
//! does, and only that feature.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::ml::card::ModelCard;

fn demo() -> (ModelCard, crate::ml::train::Dataset) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let card: ModelCard =
        serde_json::from_str(include_str!("../../../models/tumor-triage/v1/card.json")).unwrap();
    let data = crate::ml::train::read_dataset(
        &root.join("data/breast_cancer.csv"),
        Some(&root.join("data/breast_cancer.features.txt")),
        "label",
    )
    .unwrap();
    (card, data)
}

fn settings() -> ReferenceSettings {
    ReferenceSettings {
        window: 500,
        draws: 200,
        psi_bins: 10,
        margin: 0.1,
        threshold: Some(0.95),
    }
}

fn levels() -> Levels {
    Levels {
        family_alpha: 1e-6,
        sds: 3.0,
        threshold: Some(0.95),
    }
}

/// A window of 500 demo rows drawn with replacement, each value jittered
/// by up to 1% of its feature's spread, `shift` standard deviations added
/// to feature `shifted`.
fn window(
    card: &ModelCard,
    data: &crate::ml::train::Dataset,
    seed: u64,
    shifted: Option<(usize, f64)>,
) -> VecDeque<WindowItem> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..500)
        .map(|_| {
            let row = &data.x[rng.random_range(0..data.x.len())];
            let values = row
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let sd = card.features[j].std;
                    let jitter = rng.random_range(-0.01..0.01) * sd;
                    let shift = match shifted {
                        Some((k, s)) if k == j => s * sd,
                        _ => 0.0,
                    };
                    (v + jitter + shift).max(0.0)
                })
                .collect();
            WindowItem {
                values,
                label: Some(rng.random_range(0..2)),
                confidence: Some(0.99),
                failed: false,
                automated: true,
                input_sha256: format!("{}", rng.random::<u64>()),
            }
        })
        .collect()
}

/// The index of `mean_radius` in the card.
fn radius(card: &ModelCard) -> usize {
    card.features
        .iter()
        .position(|f| f.name == "mean_radius")
        .unwrap()
}

/// Evaluates a window of `seed` (with `mean_radius` shifted by `sigmas`).
fn evaluated(
    card: &ModelCard,
    data: &crate::ml::train::Dataset,
    reference: &Reference,
    seed: u64,
    sigmas: Option<f64>,
) -> Evaluation {
    let shift = sigmas.map(|s| (radius(card), s));
    evaluate(&window(card, data, seed, shift), reference, &levels())
}

#[test]
fn undrifted_windows_raise_no_feature_and_a_shifted_feature_is_found() {
    let (card, data) = demo();
    let reference = Reference::build(&card, settings());
    assert_eq!(reference.method, Method::Sample);
    for seed in 0..20 {
        let e = evaluated(&card, &data, &reference, seed, None);
        let drifted: Vec<&str> = e.drifted().map(|f| f.feature.as_str()).collect();
        assert!(drifted.is_empty(), "seed {seed}: {drifted:?}");
    }
    let e = evaluated(&card, &data, &reference, 99, Some(1.0));
    let drifted: Vec<&str> = e.drifted().map(|f| f.feature.as_str()).collect();
    assert!(drifted.contains(&"mean_radius"), "{:#?}", &e.features[..3]);
    assert_eq!(e.features[0].feature, "mean_radius", "worst first");
    // Correlated features may follow; unrelated ones do not.
    assert!(!drifted.contains(&"fractal_dimension_error"), "{drifted:?}");
}

#[test]
fn a_card_without_a_reference_sample_is_judged_on_its_histograms() {
    let (mut card, data) = demo();
    card.reference_sample = None;
    let reference = Reference::build(&card, settings());
    assert_eq!(reference.method, Method::Histogram);
    let e = evaluated(&card, &data, &reference, 3, None);
    assert_eq!(e.drifted().count(), 0, "{:#?}", &e.features[..3]);
    let e = evaluated(&card, &data, &reference, 4, Some(1.5));
    assert!(
        e.drifted().any(|f| f.feature == "mean_radius"),
        "{:#?}",
        &e.features[..3]
    );
}
