//! Batch scoring of files: `verdict score` and the jobs API, on both
//! backends, through the same policy and store as the scoring API.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    repo, rows, spawn_configured, spawn_without_jobs, task, Backend, TestApp, TASK,
};
use verdict::domain::AutomationLevel;

crate::on_both_backends!(
    cli_scores_a_csv_and_a_jsonl_as_the_api_would,
    cli_refuses_a_bad_row_by_line_without_its_chunk_and_a_rerun_resumes,
    a_job_scores_an_uploaded_file_and_serves_its_results,
    a_bad_file_fails_its_job_with_the_line_and_keeps_the_chunks_before,
    jobs_refuse_unknown_tasks_strangers_other_types_and_large_files,
    a_job_whose_instance_died_is_resumed_after_its_stored_chunks,
);

/// `verdict score <args>` against the app's database.
fn score(app: &TestApp, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(repo())
        .env_remove("VERDICT_CONFIG")
        .env("VERDICT_DATABASE_URL", &app.db.url)
        .env("VERDICT_DATASETS_DIR", app.db.dir().join("datasets"))
        .env("VERDICT_MODELS_DIR", repo().join("models"))
        .args(["score", "--task", TASK, "--quiet"])
        .args(args)
        .output()
        .expect("run verdict score")
}

fn feature_names() -> Vec<String> {
    rows()[0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>()
}

/// The demo rows `range` as CSV with ids `{prefix}-{i}`; `bad` replaces
/// one row's first feature.
fn csv(prefix: &str, range: std::ops::Range<usize>, bad: Option<(usize, &str)>) -> String {
    let names = feature_names();
    let rows = rows();
    let mut out = format!("id,{}\n", names.join(","));
    for i in range {
        let mut cells: Vec<String> = names.iter().map(|n| rows[i][n].to_string()).collect();
        if let Some((at, value)) = bad {
            if at == i {
                cells[0] = value.to_string();
            }
        }
        out.push_str(&format!("{prefix}-{i},{}\n", cells.join(",")));
    }
    out
}

fn jsonl(prefix: &str, range: std::ops::Range<usize>) -> String {
    let rows = rows();
    range
        .map(|i| json!({"id": format!("{prefix}-{i}"), "input": rows[i]}).to_string() + "\n")
        .collect()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

async fn app(backend: Backend, chunk_rows: usize) -> Option<TestApp> {
    spawn_configured(backend, task(AutomationLevel::Partial), None, |s| {
        s.jobs.chunk_rows = chunk_rows;
        s.jobs.poll_ms = 50;
    })
    .await
}

async fn cli_scores_a_csv_and_a_jsonl_as_the_api_would(backend: Backend) {
    let Some(app) = app(backend, 30).await else {
        return;
    };
    let dir = app.db.dir();
    std::fs::write(dir.join("items.csv"), csv("c", 0..100, None)).unwrap();
    std::fs::write(dir.join("items.jsonl"), jsonl("j", 100..150)).unwrap();
    for (file, out) in [("items.csv", "c.jsonl"), ("items.jsonl", "j.jsonl")] {
        let run = score(
            &app,
            &[
                "--in",
                dir.join(file).to_str().unwrap(),
                "--out",
                dir.join(out).to_str().unwrap(),
                "--chunk",
                "30",
            ],
        );
        assert!(run.status.success(), "{file}: {}", stderr(&run));
    }
    let docs: Vec<Value> = [lines(&dir.join("c.jsonl")), lines(&dir.join("j.jsonl"))].concat();
    assert_eq!(docs.len(), 150);
    assert_eq!(app.count("items"), 150);
    let ids: Vec<String> = (0..100)
        .map(|i| format!("c-{i}"))
        .chain((100..150).map(|i| format!("j-{i}")))
        .collect();
    let queued = docs.iter().filter(|d| d["status"] == "queued").count();
    assert!(queued > 0 && queued < 150, "both kinds: {queued} queued");
    let mut pending = 0;
    for (doc, id) in docs.iter().zip(&ids) {
        assert_eq!(doc["id"], *id, "input order");
        // The document the API gives for the stored item.
        let (status, stored) = app.get(&format!("/api/v1/tasks/{TASK}/items/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(*doc, stored);
        pending += usize::from(doc["status"] == "queued" || doc["audit"] == true);
    }
    let (_, depth) = app.get("/api/v1/tasks").await;
    assert_eq!(
        depth["tasks"][0]["queue_depth"], pending,
        "uncertain ones are queued"
    );
    // The API finds the same input (same hash): the stored result, no conflict.
    let (status, again) = app.submit("c-7", rows()[7].clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, docs[7]);
}

async fn cli_refuses_a_bad_row_by_line_without_its_chunk_and_a_rerun_resumes(backend: Backend) {
    let Some(app) = app(backend, 30).await else {
        return;
    };
    let dir = app.db.dir();
    let file = dir.join("items.csv");
    let out = dir.join("out.jsonl");
    let args = [
        "--in",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--chunk",
        "30",
    ];
    // Item 70 is on line 72 (the header is line 1), in the third chunk.
    for (bad, code) in [
        ("abc", "wrong_type"),
        ("NaN", "not_finite"),
        ("", "missing_field"),
    ] {
        std::fs::write(&file, csv("r", 0..100, Some((70, bad)))).unwrap();
        let run = score(&app, &args);
        assert!(!run.status.success());
        let err = stderr(&run);
        assert!(
            err.contains("items.csv:72:") && err.contains(code),
            "{bad:?}: {err}"
        );
        assert_eq!(app.count("items"), 60, "the bad row's chunk is not written");
        let written = lines(&out);
        assert_eq!(written.len(), 60);
    }
    let first = lines(&out);
    std::fs::write(&file, csv("r", 0..100, None)).unwrap();
    let run = score(&app, &args);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("40 new"), "{}", stderr(&run));
    let all = lines(&out);
    assert_eq!(all.len(), 100);
    assert_eq!(app.count("items"), 100, "no duplicates");
    assert_eq!(
        all[..60],
        first[..],
        "the same results for the rows stored before"
    );
    // A second full run changes nothing.
    let run = score(&app, &args);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(lines(&out), all);
    assert_eq!(app.count("items"), 100);
    assert_eq!(app.count("predictions"), 100);
}

async fn post_file(
    app: &TestApp,
    task: &str,
    content_type: &str,
    body: String,
) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/tasks/{task}/jobs", app.base))
        .bearer_auth(&app.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Polls a job until it is done or failed.
async fn finished(app: &TestApp, location: &str) -> Value {
    for _ in 0..400 {
        let (status, job) = app.get(location).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" || job["state"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job did not finish");
}

async fn results(app: &TestApp, location: &str) -> (u16, String) {
    let r = app
        .client
        .get(format!("{}{location}/results", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn a_job_scores_an_uploaded_file_and_serves_its_results(backend: Backend) {
    let Some(app) = app(backend, 30).await else {
        return;
    };
    for (prefix, content_type, body) in [
        ("c", "text/csv", csv("c", 0..100, None)),
        ("j", "application/x-ndjson", jsonl("j", 100..150)),
    ] {
        let r = post_file(&app, TASK, content_type, body).await;
        assert_eq!(r.status().as_u16(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let job: Value = r.json().await.unwrap();
        assert_eq!(job["state"], "queued");
        assert_eq!(
            location,
            format!("/api/v1/tasks/{TASK}/jobs/{}", job["id"].as_str().unwrap())
        );

        let job = finished(&app, &location).await;
        assert_eq!(job["state"], "done", "{job}");
        let n = if prefix == "c" { 100 } else { 50 };
        let counts = &job["counts"];
        assert_eq!(counts["rows_read"], n);
        assert_eq!(counts["scored"], n);
        assert_eq!(counts["created"], n);
        assert_eq!(counts["refused"], 0);
        assert_eq!(
            counts["automated"].as_i64().unwrap() + counts["queued_for_review"].as_i64().unwrap(),
            n
        );
        assert!(job["error"].is_null());

        let (status, text) = results(&app, &location).await;
        assert_eq!(status, 200);
        let docs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(docs.len() as i64, n);
        for doc in docs.iter().step_by(7) {
            let id = doc["id"].as_str().unwrap();
            assert!(id.starts_with(prefix));
            let (_, stored) = app.get(&format!("/api/v1/tasks/{TASK}/items/{id}")).await;
            assert_eq!(*doc, stored);
        }
    }
    assert_eq!(app.count("items"), 150);
}

async fn a_bad_file_fails_its_job_with_the_line_and_keeps_the_chunks_before(backend: Backend) {
    let Some(app) = app(backend, 30).await else {
        return;
    };
    let r = post_file(&app, TASK, "text/csv", csv("b", 0..100, Some((70, "oops")))).await;
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let job = finished(&app, &location).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["line"], 72);
    assert_eq!(job["error"]["code"], "wrong_type");
    assert_eq!(
        job["error"]["field"],
        format!("input.{}", feature_names()[0])
    );
    assert_eq!(job["counts"]["scored"], 60);
    assert_eq!(
        job["counts"]["refused"].as_i64().unwrap(),
        job["counts"]["rows_read"].as_i64().unwrap() - 60
    );
    assert_eq!(app.count("items"), 60);
    let (status, body) = results(&app, &location).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("job_not_done"), "{body}");

    // A header without the features fails at line 1; JSONL with a key
    // given twice fails at its line.
    let r = post_file(&app, TASK, "text/csv", "id,colour\na,red\n".into()).await;
    let job = finished(&app, r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(
        (job["state"].clone(), job["error"]["line"].clone()),
        (json!("failed"), json!(1))
    );
    let dup = jsonl("d", 0..3).replacen("{\"id\":\"d-2\"", "{\"id\":\"d-2\",\"id\":\"x\"", 1);
    let r = post_file(&app, TASK, "application/x-ndjson", dup).await;
    let job = finished(&app, r.headers()["location"].to_str().unwrap()).await;
    assert_eq!(job["error"]["line"], 3, "{job}");
    assert_eq!(job["error"]["code"], "duplicate_field");
}

async fn jobs_refuse_unknown_tasks_strangers_other_types_and_large_files(backend: Backend) {
    let Some(app) = spawn_configured(backend, task(AutomationLevel::Partial), None, |s| {
        s.jobs.max_upload_bytes = 4096;
    })
    .await
    else {
        return;
    };
    let r = post_file(&app, "no-such-task", "text/csv", csv("u", 0..2, None)).await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app
        .client
        .post(format!("{}/api/v1/tasks/{TASK}/jobs", app.base))
        .header("content-type", "text/csv")
        .body(csv("u", 0..2, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, _) = app
        .get(&format!("/api/v1/tasks/{TASK}/jobs/job-none"))
        .await;
    assert_eq!(status, 404);
    let r = post_file(&app, TASK, "application/json", jsonl("u", 0..2)).await;
    assert_eq!(r.status().as_u16(), 415);
    let r = post_file(&app, TASK, "text/csv", csv("u", 0..100, None)).await;
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    let r = post_file(&app, TASK, "text/csv", "\n".into()).await;
    assert_eq!(r.status().as_u16(), 400);
    let r = app
        .client
        .get(format!("{}/api/v1/tasks/{TASK}/jobs/job-none", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(app.count("score_jobs"), 0);
}

async fn a_job_whose_instance_died_is_resumed_after_its_stored_chunks(backend: Backend) {
    let Some(app) = spawn_without_jobs(backend, task(AutomationLevel::Partial), None, |s| {
        s.jobs.chunk_rows = 30;
    })
    .await
    else {
        return;
    };
    let r = post_file(&app, TASK, "text/csv", csv("d", 0..100, None)).await;
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let id = location.rsplit('/').next().unwrap().to_string();
    // Another instance claimed it, stored its first chunk and died: its
    // lease has run out.
    let dead_id = id.clone();
    app.store
        .write(move |conn| {
            use verdict::store::jobs as store;
            let past = verdict::domain::now() - chrono::Duration::seconds(120);
            let job = store::claim(conn, "dead", past, chrono::Duration::seconds(60))?.unwrap();
            assert_eq!(job.id, dead_id);
            let counts = store::Counts {
                chunks_done: 1,
                rows_read: 30,
                scored: 30,
                ..Default::default()
            };
            store::record_chunk(
                conn,
                &dead_id,
                "dead",
                0,
                b"{\"from\":\"dead\"}\n",
                &counts,
                past,
            )?;
            Ok::<_, verdict::db::DbError>(())
        })
        .await
        .unwrap();
    let (_, job) = app.get(&location).await;
    assert_eq!(job["state"], "running");
    let runner = verdict::batch::jobs::JobRunner::new(
        app.state.db.clone(),
        app.state.recorder.clone(),
        app.state.tasks.clone(),
        app.state.settings.jobs.clone(),
    );
    let pass = runner.run_once().await.unwrap();
    assert_eq!(pass.job.as_deref(), Some(id.as_str()));
    assert_eq!(pass.chunks, 3, "chunks 1 to 3 of 0 to 3");
    let job = finished(&app, &location).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["counts"]["scored"], 100);
    assert_eq!(job["counts"]["rows_read"], 100);
    let (_, text) = results(&app, &location).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 71);
    assert_eq!(lines[0], "{\"from\":\"dead\"}");
    assert!(lines[1].contains("\"id\":\"d-30\""), "{}", lines[1]);
    // Only the rows after the stored chunk were scored here.
    assert_eq!(app.count("items"), 70);
    assert_eq!(runner.run_once().await.unwrap().job, None, "nothing left");
}
