//! Property tests over request parsing and validation (issue 14 part 10):
//! arbitrary bytes, arbitrary JSON, JSON with a key given twice, bare
//! non-finite numbers, and scoring bodies through to `featurise` against
//! the demo model. Every case ends in a value or a refusal with a 4xx and
//! a code: never a panic, never a 5xx. `PROPTEST_CASES` sets the number of
//! cases per property (default here 10,000: seconds in all).

use actix_web::ResponseError;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use verdict::http::api::body::{parse_json, submissions};
use verdict::http::error::AppError;
use verdict::ml::LoadedModel;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn demo_model() -> &'static LoadedModel {
    static MODEL: std::sync::OnceLock<LoadedModel> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tumor-triage/v1");
        LoadedModel::load(&dir).expect("the demo model")
    })
}

fn assert_refused(e: &AppError) {
    let status = e.status_code();
    assert!(status.is_client_error(), "{status} for {e:?}");
    assert!(!e.code().is_empty());
}

/// Numbers that print and parse back exactly (quarters), so a round trip
/// compares equal.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| json!(i)),
        (-(1i64 << 40)..(1i64 << 40)).prop_map(|q| json!(q as f64 / 4.0)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A scoring body: mostly the demo model's features with numbers (some
/// out of range, some missing, some of another type), an id of any text,
/// single or batch.
fn scoring_body() -> impl Strategy<Value = Value> {
    let names: Vec<String> = demo_model()
        .card
        .features
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let value = prop_oneof![
        8 => (-1e4f64..1e4).prop_map(|f| json!(f)),
        1 => json_value(),
    ];
    let input = prop::collection::vec((any::<bool>(), value), names.len()).prop_map(move |vals| {
        let mut m = Map::new();
        for (name, (keep, v)) in names.iter().zip(vals) {
            if keep || name.len() % 7 != 0 {
                m.insert(name.clone(), v);
            }
        }
        Value::Object(m)
    });
    let item = ("\\PC{0,40}", input).prop_map(|(id, input)| json!({"id": id, "input": input}));
    prop_oneof![
        3 => item.clone(),
        1 => prop::collection::vec(item, 0..4).prop_map(|items| json!({"items": items})),
        1 => json_value(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_parse_or_are_refused_with_a_4xx(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse_json(&bytes) {
            assert_refused(&e);
        }
    }

    #[test]
    fn arbitrary_text_around_json_tokens_never_panics(parts in prop::collection::vec(
        prop_oneof![
            Just("{".to_string()), Just("}".to_string()), Just("[".to_string()),
            Just("]".to_string()), Just(",".to_string()), Just(":".to_string()),
            Just("\"k\"".to_string()), Just("NaN".to_string()), Just("-Infinity".to_string()),
            Just("\"\\\"".to_string()), Just("1e999".to_string()), "\\PC{0,4}",
        ],
        0..40,
    )) {
        if let Err(e) = parse_json(parts.concat().as_bytes()) {
            assert_refused(&e);
        }
    }

    #[test]
    fn json_without_a_repeated_key_parses_to_itself(v in json_value()) {
        let text = serde_json::to_vec(&v).unwrap();
        prop_assert_eq!(parse_json(&text).unwrap(), v);
    }

    #[test]
    fn a_key_given_twice_anywhere_is_duplicate_field(
        v in json_value(),
        first in json_value(),
        second in json_value(),
        depth in 0usize..4,
    ) {
        // {"a": {"a": … {"twice": first, "x": v, "twice": second} … }}
        let mut text = format!(
            "{{\"twice\": {}, \"x\": {}, \"twice\": {}}}",
            serde_json::to_string(&first).unwrap(),
            serde_json::to_string(&v).unwrap(),
            serde_json::to_string(&second).unwrap(),
        );
        for _ in 0..depth {
            text = format!("{{\"a\": [{text}]}}");
        }
        let e = parse_json(text.as_bytes()).expect_err("a repeated key is refused");
        prop_assert_eq!(e.code(), "duplicate_field");
        assert_refused(&e);
    }

    #[test]
    fn a_bare_non_finite_feature_is_named(
        which in 0usize..30,
        word in prop_oneof![Just("NaN"), Just("Infinity"), Just("-Infinity")],
    ) {
        let model = demo_model();
        let features = &model.card.features;
        let name = &features[which % features.len()].name;
        let fields: Vec<String> = features
            .iter()
            .map(|f| {
                let value = if &f.name == name { word.to_string() } else { "1.0".into() };
                format!("\"{}\": {value}", f.name)
            })
            .collect();
        let text = format!("{{\"id\": \"n\", \"input\": {{{}}}}}", fields.join(", "));
        let body = parse_json(text.as_bytes()).expect("bare words are read as strings");
        let (items, batch) = submissions(body, 100).expect("one item");
        prop_assert!(!batch);
        let e = verdict::scoring::featurise(Some(model), &items[0].input)
            .expect_err("a non-finite value is refused");
        let e = AppError::from(e);
        prop_assert_eq!(e.code(), "not_finite");
        assert_refused(&e);
        let said = format!("{e:?}");
        prop_assert!(said.contains(name.as_str()), "{} does not name {}", said, name);
    }

    #[test]
    fn scoring_bodies_end_in_checked_features_or_a_4xx(body in scoring_body()) {
        let text = serde_json::to_vec(&body).unwrap();
        let parsed = match parse_json(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                assert_refused(&e);
                return Ok(());
            }
        };
        let items = match submissions(parsed, 100) {
            Ok((items, _)) => items,
            Err(e) => {
                assert_refused(&e);
                return Ok(());
            }
        };
        let model = demo_model();
        for item in items {
            match verdict::scoring::featurise(Some(model), &item.input) {
                Ok(features) => {
                    prop_assert_eq!(features.values.len(), model.card.features.len());
                    for (spec, v) in model.card.features.iter().zip(&features.values) {
                        prop_assert!(v.is_finite());
                        prop_assert!(spec.valid_min.is_none_or(|min| *v >= min));
                        prop_assert!(spec.valid_max.is_none_or(|max| *v <= max));
                    }
                }
                Err(e) => assert_refused(&AppError::from(e)),
            }
        }
    }
}
