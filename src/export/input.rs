//! The input fields of stored items, read as raw JSON text without a
//! parse per row: the service stores every input of a task as compact
//! JSON in one field order, so the order is learnt once and then checked.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// The input fields an export has columns for, and where each sits in the
/// inputs read so far.
pub struct InputColumns {
    /// Input fields in column order. `None` until known: then the first
    /// row's fields decide.
    pub names: Option<Vec<String>>,
    /// The field order of the last input read, and where each column sits
    /// in it: stored inputs share one order, so this is worked out once.
    layout: Vec<String>,
    column_at: Vec<Option<usize>>,
}

impl InputColumns {
    pub fn new(names: Option<Vec<String>>) -> Self {
        InputColumns {
            names,
            layout: Vec::new(),
            column_at: Vec::new(),
        }
    }

    /// The column names, from `first_input`'s fields unless known already.
    pub fn names_or_from(&mut self, first_input: Option<&str>) -> &[String] {
        if self.names.is_none() {
            let fields = first_input
                .and_then(|input| serde_json::from_str::<BTreeMap<String, &RawValue>>(input).ok())
                .map(|m| m.into_keys().collect())
                .unwrap_or_default();
            self.names = Some(fields);
        }
        self.names.as_deref().unwrap_or_default()
    }

    /// The raw JSON text of each column's value in `input`.
    pub fn cells<'a>(&mut self, input: &'a str) -> Vec<Option<&'a str>> {
        if let Some(values) = same_layout(input, &self.layout) {
            return self
                .column_at
                .iter()
                .map(|at| at.map(|i| values[i]))
                .collect();
        }
        let columns = self.names.as_deref().unwrap_or_default();
        let Some(fields) = flat_object(input) else {
            // Unusual JSON (escaped names, nesting): the general parser.
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(input).unwrap_or_default();
            return columns
                .iter()
                .map(|c| map.get(c.as_str()).map(|v| v.get()))
                .collect();
        };
        self.layout = fields.iter().map(|(k, _)| k.to_string()).collect();
        self.column_at = columns
            .iter()
            .map(|c| self.layout.iter().position(|k| k == c))
            .collect();
        self.column_at
            .iter()
            .map(|at| at.map(|i| fields[i].1))
            .collect()
    }
}

/// The raw values of `s` if it is a flat object with exactly the field
/// names of `layout`, in that order (the common case: the service stores
/// every input of a task the same way), checked without scanning names.
fn same_layout<'a>(s: &'a str, layout: &[String]) -> Option<Vec<&'a str>> {
    if layout.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut values = Vec::with_capacity(layout.len());
    let mut i = 1;
    for (n, name) in layout.iter().enumerate() {
        let end = i + name.len() + 3;
        if b.get(i) != Some(&b'"')
            || b.get(i + 1..end - 2) != Some(name.as_bytes())
            || b.get(end - 2..end) != Some(b"\":".as_slice())
        {
            return None;
        }
        let mut k = end;
        if *b.get(k)? == b'"' {
            return None; // strings: the general path decodes them
        }
        while !matches!(*b.get(k)?, b',' | b'}') {
            if matches!(b[k], b'{' | b'[' | b'"') {
                return None;
            }
            k += 1;
        }
        values.push(&s[end..k]);
        let last = n + 1 == layout.len();
        match (b[k], last) {
            (b',', false) => i = k + 1,
            (b'}', true) if k + 1 == b.len() => {}
            _ => return None,
        }
    }
    Some(values)
}

/// The fields of a flat JSON object as (name, raw value text), in order,
/// for the compact JSON the service stores (no whitespace, names without
/// escapes, scalar values). `None` for anything else.
fn flat_object(s: &str) -> Option<Vec<(&str, &str)>> {
    let b = s.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return None;
    }
    let mut fields = Vec::with_capacity(32);
    let mut i = 1;
    if b.len() == 2 {
        return Some(fields);
    }
    loop {
        // "name":
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let name_start = i + 1;
        let j = name_start + s[name_start..].find('"')?;
        let name = &s[name_start..j];
        if name.contains('\\') {
            return None;
        }
        if b.get(j + 1) != Some(&b':') {
            return None;
        }
        // value: a string (escapes allowed) or a bare scalar.
        let value_start = j + 2;
        let mut k = value_start;
        if *b.get(k)? == b'"' {
            k += 1;
            loop {
                match *b.get(k)? {
                    b'\\' => k += 2,
                    b'"' => break,
                    _ => k += 1,
                }
            }
            k += 1;
        } else {
            while !matches!(*b.get(k)?, b',' | b'}') {
                if matches!(b[k], b'{' | b'[' | b'"' | b' ') {
                    return None;
                }
                k += 1;
            }
        }
        fields.push((name, &s[value_start..k]));
        match *b.get(k)? {
            b',' => i = k + 1,
            b'}' if k == b.len() - 1 => return Some(fields),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects_split_into_raw_fields_and_odd_json_is_left_to_serde() {
        assert_eq!(
            flat_object(r#"{"a":1.5,"b":"x,\"y\"","c":null,"d":-2e-3}"#),
            Some(vec![
                ("a", "1.5"),
                ("b", r#""x,\"y\"""#),
                ("c", "null"),
                ("d", "-2e-3")
            ])
        );
        assert_eq!(flat_object("{}"), Some(vec![]));
        for odd in [
            r#"{"a":[1,2]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a\"b":1}"#,
            r#"{ "a": 1 }"#,
            r#"{"a":1"#,
            r#"{"a":1}}"#,
            "[]",
        ] {
            assert_eq!(flat_object(odd), None, "{odd}");
        }
    }

    #[test]
    fn the_layout_shortcut_agrees_with_the_full_scan() {
        let layout: Vec<String> = vec!["a".into(), "bb".into()];
        assert_eq!(
            same_layout(r#"{"a":1,"bb":-2.5e3}"#, &layout),
            Some(vec!["1", "-2.5e3"])
        );
        for other in [
            r#"{"a":1}"#,
            r#"{"a":1,"bb":2,"c":3}"#,
            r#"{"a":1,"bc":2}"#,
            r#"{"a":"x","bb":2}"#,
            r#"{"a":1,"bb":2}}"#,
            r#"{"a":[1],"bb":2}"#,
        ] {
            assert_eq!(same_layout(other, &layout), None, "{other}");
        }
    }
}
