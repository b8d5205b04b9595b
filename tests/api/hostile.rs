//! Hostile and malformed requests to the API, one table: each gets the exact
//! status and JSON `code` (and for a 405 the `Allow` header), including the
//! ones actix-http would answer before any handler; none writes anything.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{row, spawn, Backend, TestApp, TASK};
use verdict::domain::AutomationLevel;

crate::on_both_backends!(every_hostile_request_gets_its_status_and_json_code_and_writes_nothing,);

/// One request of the table.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    status: u16,
    code: &'static str,
    /// The error's `field`, when it names one.
    field: Option<&'static str>,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

fn case(what: &'static str, method: &'static str, path: impl Into<String>) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        status: 0,
        code: "",
        field: None,
        allow: None,
    }
}

impl Case {
    fn json(mut self, body: impl Into<String>) -> Case {
        self.headers
            .push(("content-type", "application/json".to_string()));
        self.body = Some(body.into());
        self
    }
    fn typed(mut self, content_type: Option<&str>, body: impl Into<String>) -> Case {
        if let Some(t) = content_type {
            self.headers.push(("content-type", t.to_string()));
        }
        self.body = Some(body.into());
        self
    }
    fn header(mut self, name: &'static str, value: String) -> Case {
        self.headers.push((name, value));
        self
    }
    fn expect(mut self, status: u16, code: &'static str) -> Case {
        self.status = status;
        self.code = code;
        self
    }
    fn field(mut self, field: &'static str) -> Case {
        self.field = Some(field);
        self
    }
    fn allow(mut self, allow: &'static str) -> Case {
        self.allow = Some(allow);
        self
    }
}

/// A response as read off the socket: status, headers (lower-case names)
/// and body.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `case` on a new connection of its own, written by hand so that
/// nothing between (a client's own limits or retries) changes it.
async fn send(app: &TestApp, case: &Case) -> Raw {
    let port = app.base.rsplit(':').next().unwrap();
    let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
        case.method, case.path
    );
    if !case
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        request.push_str(&format!("Authorization: Bearer {}\r\n", app.token));
    }
    for (name, value) in &case.headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = case.body.clone().unwrap_or_default();
    if case.body.is_some() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    // The server may answer and stop reading before the request is all
    // sent: write and read at once.
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(request.as_bytes()).await;
    };
    let mut response = Vec::new();
    let read = reader.read_to_end(&mut response);
    let (_, read) = tokio::join!(write, read);
    read.unwrap_or_else(|e| panic!("{}: reading the answer: {e}", case.what));
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{}: no response head in {text:?}", case.what));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Raw {
        status,
        headers,
        body: dechunk(&text, body),
    }
}

/// The body, undoing chunked transfer coding when the head says so.
fn dechunk(text: &str, body: &str) -> String {
    if !text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// Rows of every table a request could write.
fn written(app: &TestApp) -> Vec<(&'static str, i64)> {
    [
        "items",
        "predictions",
        "verdicts",
        "shadow_predictions",
        "audit_log",
        "dataset_snapshots",
        "deployments",
        "api_tokens",
    ]
    .into_iter()
    .map(|t| (t, app.count(t)))
    .collect()
}

fn table() -> Vec<Case> {
    let items = format!("/api/v1/tasks/{TASK}/items");
    let task = format!("/api/v1/tasks/{TASK}");
    let one = json!({"id": "x-1", "input": row(0)}).to_string();
    // The same key twice: the order that the last-wins parse accepted, and
    // the reverse.
    let input = row(0).to_string();
    let rest = input.trim_start_matches('{');
    let twice_bad_last = format!(r#"{{"id": "x-2", "input": {{"mean_radius": -5, {rest}}}"#);
    let twice_bad_first = format!(
        r#"{{"id": "x-3", "input": {}, "mean_radius": -5}}}}"#,
        input.trim_end_matches('}')
    );
    assert!(twice_bad_last.matches("\"mean_radius\"").count() == 2);
    assert!(twice_bad_first.matches("\"mean_radius\"").count() == 2);
    let batch =
        format!(r#"{{"items": [{one}, {{"id": "x-4", "input": {{"mean_radius": 1, {rest}}}]}}"#);
    let long = |n: usize| "a".repeat(n);
    vec![
        // Before actix-http could parse the request.
        case("a 1 MB Authorization header", "GET", "/api/v1/tasks")
            .header("authorization", format!("Bearer {}", long(1 << 20)))
            .expect(431, "header_too_large"),
        case(
            "a 100,000-character id in the path",
            "GET",
            format!("{items}/{}", long(100_000)),
        )
        .expect(414, "uri_too_long"),
        case(
            "a 100,000-character after in the labels query",
            "GET",
            format!("{task}/labels?after={}", long(100_000)),
        )
        .expect(414, "uri_too_long"),
        // Parsed, refused by the app.
        case(
            "a 5,000-character id in the path",
            "GET",
            format!("{items}/{}", long(5000)),
        )
        .expect(400, "invalid_id")
        .field("id"),
        case("wrong method on the items path", "GET", &items)
            .expect(405, "method_not_allowed")
            .allow("POST"),
        case("wrong method on an item", "DELETE", format!("{items}/x-1"))
            .expect(405, "method_not_allowed")
            .allow("GET"),
        case("wrong method on the task list", "POST", "/api/v1/tasks")
            .json("{}")
            .expect(405, "method_not_allowed")
            .allow("GET"),
        case(
            "wrong method on a deployment",
            "PATCH",
            format!("{task}/deployment"),
        )
        .json("{}")
        .expect(405, "method_not_allowed")
        .allow("GET, PUT"),
        case("an unknown API path", "GET", "/api/v1/nowhere").expect(404, "not_found"),
        case("an unknown API version", "POST", "/api/v2/tasks").expect(404, "not_found"),
        case(
            "a task name that is not UTF-8",
            "GET",
            "/api/v1/tasks/%FF/items/x",
        )
        .expect(404, "unknown_task"),
        case("a text/plain body", "POST", &items)
            .typed(Some("text/plain"), &one)
            .expect(415, "unsupported_media_type"),
        case("a form-encoded body (curl -d)", "POST", &items)
            .typed(Some("application/x-www-form-urlencoded"), &one)
            .expect(415, "unsupported_media_type"),
        case("a body with no Content-Type", "POST", &items)
            .typed(None, &one)
            .expect(415, "unsupported_media_type"),
        case(
            "a text/plain dataset request",
            "POST",
            format!("{task}/datasets"),
        )
        .typed(Some("text/plain"), r#"{"name": "s1"}"#)
        .expect(415, "unsupported_media_type"),
        case(
            "a form-encoded deployment change",
            "PUT",
            format!("{task}/deployment"),
        )
        .typed(
            Some("application/x-www-form-urlencoded"),
            "candidate=v1&mode=shadow&why=x",
        )
        .expect(415, "unsupported_media_type"),
        case("a key twice in the input, bad value first", "POST", &items)
            .json(twice_bad_last)
            .expect(400, "duplicate_field")
            .field("input.mean_radius"),
        case("a key twice in the input, bad value last", "POST", &items)
            .json(twice_bad_first)
            .expect(400, "duplicate_field")
            .field("input.mean_radius"),
        case("the id twice", "POST", &items)
            .json(format!(r#"{{"id": "x-5", "id": "x-6", "input": {input}}}"#))
            .expect(400, "duplicate_field")
            .field("id"),
        case("a key twice in a batch's second item", "POST", &items)
            .json(batch)
            .expect(400, "duplicate_field")
            .field("items[1].input.mean_radius"),
        case(
            "a key twice in a dataset request",
            "POST",
            format!("{task}/datasets"),
        )
        .json(r#"{"name": "s1", "name": "s2"}"#)
        .expect(400, "duplicate_field")
        .field("name"),
        case(
            "a key twice in a deployment change",
            "PUT",
            format!("{task}/deployment"),
        )
        .json(r#"{"candidate": "v1", "mode": "shadow", "why": "a", "why": "b"}"#)
        .expect(400, "duplicate_field")
        .field("why"),
        case(
            "a key twice in a rollback",
            "POST",
            format!("{task}/deployment/rollback"),
        )
        .json(r#"{"why": "a", "why": "b"}"#)
        .expect(400, "duplicate_field")
        .field("why"),
        case(
            "after twice",
            "GET",
            format!("{task}/labels?after=a&after=b"),
        )
        .expect(400, "repeated_parameter")
        .field("after"),
        case(
            "format twice",
            "GET",
            format!("{task}/labels?format=csv&format=jsonl"),
        )
        .expect(400, "repeated_parameter")
        .field("format"),
        case(
            "span twice",
            "GET",
            format!("{task}/monitoring?span=hour&span=day"),
        )
        .expect(400, "repeated_parameter")
        .field("span"),
        case(
            "delta twice",
            "GET",
            format!("{task}/advisor?delta=0.1&delta=0.2"),
        )
        .expect(400, "repeated_parameter")
        .field("delta"),
        case(
            "state twice",
            "GET",
            "/api/v1/alerts?state=open&state=resolved",
        )
        .expect(400, "repeated_parameter")
        .field("state"),
        case("malformed JSON", "POST", &items)
            .json(r#"{"id": "x-7", "input": {"#)
            .expect(400, "malformed_json"),
        case("no token", "POST", &items)
            .header("authorization", "Basic eDp5".into())
            .json(&one)
            .expect(401, "unauthorized"),
    ]
}

async fn every_hostile_request_gets_its_status_and_json_code_and_writes_nothing(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let before = written(&app);
    let cases = table();
    assert!(cases.len() >= 25);
    for case in &cases {
        let got = send(&app, case).await;
        let what = case.what;
        assert_eq!(got.status, case.status, "{what}: {}", got.body);
        assert!(
            got.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: {:?}",
            got.headers
        );
        let body: Value = serde_json::from_str(&got.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {:?}", got.body));
        assert_eq!(body["error"]["code"], case.code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{what}: {body}"
        );
        assert_eq!(
            body["error"]["field"].as_str(),
            case.field,
            "{what}: {body}"
        );
        assert_eq!(got.header("allow"), case.allow, "{what}");
        assert_eq!(
            got.header("x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(got.header("referrer-policy"), Some("same-origin"), "{what}");
    }
    assert_eq!(written(&app), before, "a refused request wrote something");

    // The same requests made right are accepted (so the refusals above are
    // about what each case changed, not the server refusing everything).
    let (status, _) = app.post(&json!({"id": "x-1", "input": row(0)})).await;
    assert_eq!(status, 201);
    let (status, _) = app.get(&format!("/api/v1/tasks/{TASK}/items/x-1")).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{TASK}/labels?after=a"))
        .await;
    assert_eq!(status, 200);
    let ok = send(
        &app,
        &case("a long but acceptable header", "GET", "/api/v1/tasks")
            .header("x-padding", "p".repeat(32 * 1024)),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(app.count("items"), 1);
}
