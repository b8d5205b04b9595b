//! `verdict bench --queue`: the review queue under load, in-process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict::config::{DatabaseSettings, Synchronous};

use super::scenario::percentile;
use super::BenchOptions;

/// The review queue under load: `queued` items waiting, `reviewers`
/// concurrent claim → label loops; times each call as the web handlers make
/// it (through the writer, on SQLite).
pub(super) fn run_queue(
    opts: &BenchOptions,
    queued: usize,
    url: &str,
    synchronous: Synchronous,
) -> anyhow::Result<()> {
    use verdict::domain::{ItemStatus, QueueReason, ReviewState};
    use verdict::review::{self, Label, Rules};
    use verdict::store::items::ItemRow;
    let settings = DatabaseSettings {
        url: url.to_string(),
        synchronous,
        pool_size: (opts.reviewers as u32).max(2),
        ..DatabaseSettings::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = verdict::db::Db::open(&settings).map_err(anyhow::Error::msg)?;
        let task = "bench-queue";
        let started = Instant::now();
        let at = verdict::domain::now();
        for chunk in (0..queued).collect::<Vec<_>>().chunks(1000) {
            let rows: Vec<ItemRow> = chunk
                .iter()
                .map(|&i| ItemRow {
                    task: task.into(),
                    id: format!("item-{i:08}"),
                    input: "{}".into(),
                    input_sha256: String::new(),
                    status: ItemStatus::Queued,
                    reason: Some(QueueReason::LowConfidence),
                    review_state: ReviewState::Pending,
                    blind: false,
                    audit: false,
                    model_version: None,
                    margin: Some((i % 1000) as f64 / 1000.0),
                    sla_deadline: Some(at + chrono::Duration::seconds((i % 3600) as i64)),
                    created_at: at,
                    decided_at: None,
                    out_of_range: None,
                })
                .collect();
            db.write(move |conn| Ok::<_, verdict::db::DbError>(verdict::store::items::insert_rows(conn, &rows, &[], &[])?)).await?;
        }
        println!(
            "verdict bench --queue: {queued} items queued in {:.1} s on {url}; {} reviewers, {} claim + label rounds\n",
            started.elapsed().as_secs_f64(),
            opts.reviewers,
            opts.rounds
        );
        let db = Arc::new(db);
        let per_reviewer = opts.rounds / opts.reviewers.max(1);
        // Paced: each reviewer starts a round every `interval`, staggered.
        let interval = opts
            .pace
            .filter(|p| *p > 0.0)
            .map(|p| Duration::from_secs_f64(opts.reviewers.max(1) as f64 / p));
        if let Some(p) = opts.pace {
            println!("paced at {p:.0} rounds per second in all\n");
        }
        let start = Instant::now();
        let mut loops = Vec::new();
        for r in 0..opts.reviewers {
            let db = db.clone();
            let mut next = start
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(r as f64 / opts.reviewers.max(1) as f64)
                });
            loops.push(tokio::spawn(async move {
                let who = format!("reviewer-{r}");
                let rules = Rules {
                    labels: vec!["yes".into(), "no".into()],
                    reviews_required: 1,
                    callback_url: None,
                };
                let (mut claims, mut labels) = (Vec::new(), Vec::new());
                for _ in 0..per_reviewer {
                    let (w, t) = (who.clone(), task);
                    let sent = match interval {
                        Some(interval) => {
                            tokio::time::sleep_until(next.into()).await;
                            let scheduled = next;
                            next += interval;
                            scheduled
                        }
                        None => Instant::now(),
                    };
                    let claim = db
                        .write(move |conn| review::claim_next(conn, t, &w, review::DEFAULT_LEASE))
                        .await?;
                    claims.push(sent.elapsed().as_micros() as u64);
                    let Some(claim) = claim else { break };
                    let (w, rules, id) = (who.clone(), rules.clone(), claim.item.id);
                    let sent = Instant::now();
                    db.write(move |conn| {
                        let label = Label {
                            label: "yes".into(),
                            comment: None,
                            seconds_spent: Some(3.0),
                        };
                        review::submit(conn, t, &rules, &id, &w, &label)
                    })
                    .await?;
                    labels.push(sent.elapsed().as_micros() as u64);
                }
                Ok::<_, verdict::review::ReviewError>((claims, labels))
            }));
        }
        let (mut claims, mut labels) = (Vec::new(), Vec::new());
        let timed = Instant::now();
        for l in loops {
            let (c, s) = l.await??;
            claims.extend(c);
            labels.extend(s);
        }
        let secs = timed.elapsed().as_secs_f64();
        claims.sort_unstable();
        labels.sort_unstable();
        for (name, times) in [("claim next", &claims), ("submit label", &labels)] {
            println!(
                "{name:<14} {:>7} calls   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms",
                times.len(),
                percentile(times, 0.5),
                percentile(times, 0.99),
                percentile(times, 1.0)
            );
        }
        println!("\n{:.0} items labelled per second", labels.len() as f64 / secs);
        Ok(())
    })
}
