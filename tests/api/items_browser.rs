//! The admin items browser (issue 12): sort by column both ways, page
//! forwards and back, a total under the filters, the label filter's
//! choices, and the confidence, reason and audit columns.

use std::cmp::Ordering;

use diesel::prelude::*;

use crate::helpers::{spawn_with, task, Backend, TestApp, TASK};
use crate::web::{add_user, Browser};
use verdict::db::schema::{items, predictions, verdicts};
use verdict::domain::{AutomationLevel, Role};

crate::on_both_backends!(
    items_sort_by_each_column_both_ways_and_page_back_to_the_same_rows,
    the_total_label_choices_and_columns_follow_the_stored_items,
    a_sort_on_no_index_orders_the_newest_window_and_the_count_stops_at_its_cap,
);

/// What the database holds of an item, read directly.
#[derive(Debug, Clone)]
struct Fact {
    id: String,
    created: chrono::NaiveDateTime,
    decided: Option<chrono::NaiveDateTime>,
    confidence: Option<f64>,
    status: String,
    reason: Option<String>,
    audit: bool,
    label: Option<String>,
}

fn facts(app: &TestApp) -> Vec<Fact> {
    let mut conn = app.db.connect();
    type ItemLine = (
        String,
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        Option<String>,
        String,
        Option<String>,
        bool,
    );
    let rows: Vec<ItemLine> = items::table
        .filter(items::task.eq(TASK))
        .select((
            items::id,
            items::created_at,
            items::decided_at,
            items::model_version,
            items::status,
            items::reason,
            items::audit,
        ))
        .load(&mut conn)
        .unwrap();
    let preds: Vec<(String, String, Option<f64>)> = predictions::table
        .filter(predictions::task.eq(TASK))
        .select((
            predictions::item_id,
            predictions::model_version,
            predictions::confidence,
        ))
        .load(&mut conn)
        .unwrap();
    let labels: Vec<(String, String)> = verdicts::table
        .filter(verdicts::task.eq(TASK))
        .select((verdicts::item_id, verdicts::label))
        .load(&mut conn)
        .unwrap();
    rows.into_iter()
        .map(
            |(id, created, decided, version, status, reason, audit)| Fact {
                // The prediction of the item's own model.
                confidence: preds
                    .iter()
                    .find(|(i, v, _)| *i == id && Some(v) == version.as_ref())
                    .and_then(|(_, _, c)| *c),
                label: labels
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, l)| l.clone()),
                id,
                created,
                decided,
                status,
                reason,
                audit,
            },
        )
        .collect()
}

/// The ids in `facts` in the order the browser promises: by `key` in the
/// direction asked, ties by id in the same direction, items without a
/// value last either way.
fn expected<K: PartialOrd>(
    facts: &[Fact],
    key: impl Fn(&Fact) -> Option<K>,
    descending: bool,
) -> Vec<String> {
    let mut sorted = facts.to_vec();
    sorted.sort_by(|a, b| match (key(a), key(b)) {
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (ka, kb) => {
            let o = ka
                .partial_cmp(&kb)
                .expect("comparable")
                .then_with(|| a.id.cmp(&b.id));
            if descending {
                o.reverse()
            } else {
                o
            }
        }
    });
    sorted.into_iter().map(|f| f.id).collect()
}

/// The item ids listed on a page, in order.
fn ids(page: &str) -> Vec<String> {
    let link = format!("href=\"/admin/items/{TASK}/");
    page.match_indices(&link)
        .map(|(at, m)| {
            let rest = &page[at + m.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

fn unescape(href: &str) -> String {
    href.replace("&amp;", "&").replace("&#38;", "&")
}

/// The href of the link with `class`, if the page has one.
fn link(page: &str, class: &str) -> Option<String> {
    let marker = format!("class=\"{class}\" href=\"");
    let at = page.find(&marker)? + marker.len();
    let rest = &page[at..];
    Some(unescape(&rest[..rest.find('"').unwrap()]))
}

/// The href of the sortable header `name`.
fn header(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("\">{name}"))
        .unwrap_or_else(|| panic!("a {name} header: {page}"));
    let start = page[..at].rfind("href=\"").unwrap() + 6;
    unescape(&page[start..at])
}

/// Scores `n` demo rows as `b000`… in batches of `batch` (a batch shares
/// one arrival time, so ties are broken by id).
async fn score(app: &TestApp, n: usize, batch: usize) {
    let data = crate::helpers::rows();
    for start in (0..n).step_by(batch) {
        let items: Vec<serde_json::Value> = (start..(start + batch).min(n))
            .map(|i| serde_json::json!({"id": format!("b{i:03}"), "input": data[i]}))
            .collect();
        let (status, body) = app.post(&serde_json::json!({ "items": items })).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn admin(app: &TestApp) -> Browser {
    add_user(app, "ana", Role::Admin, &[]);
    let mut ana = Browser::new(app);
    ana.sign_in("ana", "a long passphrase").await;
    ana
}

/// Walks from `url` to the last page by the `next` links and back by the
/// `prev` links: every page read backwards is the page read forwards,
/// the first page has no `prev` link and the last no `next`. Returns
/// the ids in order.
async fn walk(ana: &mut Browser, url: &str) -> Vec<String> {
    let (status, mut page, _) = ana.get(url).await;
    assert_eq!(status, 200, "{url}: {page}");
    assert!(link(&page, "prev").is_none(), "a first page has no newer");
    let mut pages = vec![ids(&page)];
    while let Some(next) = link(&page, "next") {
        let (status, body, _) = ana.get(&next).await;
        assert_eq!(status, 200, "{next}: {body}");
        page = body;
        pages.push(ids(&page));
        assert!(pages.len() < 100, "paging ends");
    }
    assert!(pages.iter().all(|p| p.len() <= 50));
    // Back to the first page.
    for back in (0..pages.len() - 1).rev() {
        let prev = link(&page, "prev").expect("a page after the first links back");
        let (status, body, _) = ana.get(&prev).await;
        assert_eq!(status, 200, "{prev}: {body}");
        page = body;
        assert_eq!(ids(&page), pages[back], "page {back} read backwards");
        assert!(link(&page, "next").is_some());
    }
    assert!(
        link(&page, "prev").is_none(),
        "back at the first page: {page}"
    );
    pages.concat()
}

async fn items_sort_by_each_column_both_ways_and_page_back_to_the_same_rows(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::Partial), None).await else {
        return;
    };
    // 120 items in batches of 40: three pages, times that tie within a
    // batch. The model decides most and queues the others, which have no
    // decision time and sort last: the second page by decision time ends
    // on one of them, so the third starts from a cursor without a value.
    score(&app, 120, 40).await;
    let facts = facts(&app);
    assert_eq!(facts.len(), 120);
    let undecided = facts.iter().filter(|f| f.decided.is_none()).count();
    assert!(
        (21..120).contains(&undecided),
        "row 100 of 120 by decision time has none: {undecided} undecided"
    );
    let mut ana = admin(&app).await;

    let base = format!("/admin/items?task={TASK}");
    // The default: received, newest first, on its index.
    let (_, page, _) = ana.get(&base).await;
    assert!(page.contains("aria-sort=\"descending\"><a class=\"sort\""));
    assert_eq!(
        page.matches("aria-sort=").count(),
        1,
        "one column is marked"
    );
    assert!(page.contains(">Older →<"), "{page}");
    assert_eq!(
        walk(&mut ana, &base).await,
        expected(&facts, |f| Some(f.created), true)
    );
    // A click on the sorted header flips it; on another, sorts by that.
    let flipped = header(&page, "Received");
    assert!(flipped.contains("sort=received") && flipped.contains("dir=asc"));
    let (_, asc, _) = ana.get(&flipped).await;
    assert!(asc.contains("aria-sort=\"ascending\"><a class=\"sort\" href=\"/admin/items?"));
    assert!(
        asc.contains(">Newer →<"),
        "oldest first reads towards newer"
    );
    assert_eq!(
        walk(&mut ana, &flipped).await,
        expected(&facts, |f| Some(f.created), false)
    );
    assert!(header(&asc, "Received").contains("dir=desc"));

    for (name, column) in [("Confidence", "confidence"), ("Decided", "decided")] {
        let first = header(&page, name);
        assert!(first.contains(&format!("sort={column}")), "{first}");
        let (_, sorted, _) = ana.get(&first).await;
        let flip = header(&sorted, name);
        for url in [first, flip] {
            let descending = url.contains("dir=desc");
            assert!(descending || url.contains("dir=asc"), "{url}");
            let (_, p, _) = ana.get(&url).await;
            let mark = if descending {
                "descending"
            } else {
                "ascending"
            };
            let th = &p[p.find("aria-sort=").expect("a sorted column")..];
            let th = &th[..th.find("</th>").unwrap()];
            assert!(
                th.starts_with(&format!("aria-sort=\"{mark}\""))
                    && th.contains(&format!(">{name}")),
                "{column} {mark} is marked: {th}"
            );
            let want = if column == "confidence" {
                expected(&facts, |f| f.confidence, descending)
            } else {
                expected(&facts, |f| f.decided, descending)
            };
            assert_eq!(walk(&mut ana, &url).await, want, "{url}");
        }
    }
    // Confidence is least sure first on the first click.
    let (_, by_confidence, _) = ana.get(&header(&page, "Confidence")).await;
    assert!(by_confidence.contains("aria-sort=\"ascending\""));

    // Sorting keeps the filters, and paging keeps both.
    let queued: Vec<Fact> = facts
        .iter()
        .filter(|f| f.status == "queued")
        .cloned()
        .collect();
    let url = format!("/admin/items?task={TASK}&status=queued&sort=confidence&dir=desc");
    assert_eq!(
        walk(&mut ana, &url).await,
        expected(&queued, |f| f.confidence, true)
    );
}

async fn the_total_label_choices_and_columns_follow_the_stored_items(backend: Backend) {
    // Every model-decided item is also queued for a blind audit.
    let config = verdict::config::TaskConfig {
        audit_rate: 1.0,
        ..task(AutomationLevel::Partial)
    };
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    score(&app, 50, 50).await;
    let facts = facts(&app);
    let mut ana = admin(&app).await;
    let base = format!("/admin/items?task={TASK}");

    let (_, page, _) = ana.get(&base).await;
    assert!(page.contains(">50 items match<"), "{page}");
    // The total counts every match, not the page.
    let queued = facts.iter().filter(|f| f.status == "queued").count();
    assert!(queued > 0);
    let (_, page, _) = ana.get(&format!("{base}&status=queued")).await;
    assert!(
        page.contains(&format!(
            ">{queued} item{} match",
            if queued == 1 { "" } else { "s" }
        )),
        "{queued}: {page}"
    );
    let benign = facts
        .iter()
        .filter(|f| f.label.as_deref() == Some("benign"))
        .count();
    assert!(benign > 0);
    let (status, page, _) = ana.get(&format!("{base}&label=benign")).await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!(">{benign} items match<")), "{page}");
    assert_eq!(ids(&page).len(), benign.min(50));
    let (_, page, _) = ana
        .get(&format!("{base}&from=2000-01-01&to=2000-01-02"))
        .await;
    assert!(page.contains("No items match."));

    // The label filter offers the live model's labels; another is a 400.
    let (_, page, _) = ana.get(&format!("{base}&label=benign")).await;
    assert!(page.contains("<select name=\"label\"><option value=\"\">any</option>"));
    assert!(page.contains("<option selected>benign</option>"), "{page}");
    assert!(page.contains("<option>malignant</option>"), "{page}");
    let (status, page, _) = ana.get(&format!("{base}&label=nope")).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("not a label of this task"), "{page}");
    // A bad sort, direction or cursor is a 400 too.
    for bad in [
        "sort=colour",
        "dir=up",
        "after=yesterday",
        "sort=confidence&before=x%7Cb001",
    ] {
        let (status, page, _) = ana.get(&format!("{base}&{bad}")).await;
        assert_eq!(status, 400, "{bad}: {page}");
    }

    // Each row shows its model's confidence, why it waits and whether it
    // is an audit.
    let (_, page, _) = ana.get(&base).await;
    let mut audits = 0;
    for fact in &facts {
        let at = page
            .find(&format!("href=\"/admin/items/{TASK}/{}\"", fact.id))
            .expect("every item on one page");
        let row = &page[at..at + page[at..].find("</tr>").unwrap()];
        let confidence = fact
            .confidence
            .map(|c| format!("{:.1} %", c * 100.0))
            .expect("a prediction");
        assert!(
            row.contains(&format!("<td class=\"num confidence\">{confidence}</td>")),
            "{confidence}: {row}"
        );
        let reason = fact.reason.clone().unwrap_or_default();
        assert!(
            row.contains(&format!("<td class=\"reason\">{reason}</td>")),
            "{reason}: {row}"
        );
        assert_eq!(row.contains("class=\"badge audit\""), fact.audit, "{row}");
        audits += usize::from(fact.audit);
    }
    assert!(audits > 0, "some items are audits");
    assert!(
        facts
            .iter()
            .any(|f| f.reason.as_deref() == Some("low_confidence")),
        "some items wait for low confidence"
    );
}

/// The page caps at 10,000 rows; the store's window and count take any
/// size, so a small one shows what they do.
async fn a_sort_on_no_index_orders_the_newest_window_and_the_count_stops_at_its_cap(
    backend: Backend,
) {
    use verdict::store::browse::{self, ItemFilter, PageStart, Sort, SortColumn};
    let Some(app) = spawn_with(backend, task(AutomationLevel::Partial), None).await else {
        return;
    };
    score(&app, 90, 30).await;
    let facts = facts(&app);
    let filter = ItemFilter {
        task: TASK.to_string(),
        ..Default::default()
    };
    let mut conn = app.db.connect();
    assert_eq!(browse::count(&mut conn, &filter, 1000).unwrap(), 90);
    assert_eq!(browse::count(&mut conn, &filter, 40).unwrap(), 41);
    let newest: Vec<String> = expected(&facts, |f| Some(f.created), true)
        .into_iter()
        .take(45)
        .collect();
    let edge = browse::window_edge(&mut conn, &filter, 45)
        .unwrap()
        .expect("90 items hold 45");
    assert_eq!(edge.1, newest[44]);
    assert_eq!(browse::window_edge(&mut conn, &filter, 91).unwrap(), None);
    let window: Vec<Fact> = facts
        .iter()
        .filter(|f| newest.contains(&f.id))
        .cloned()
        .collect();
    for descending in [false, true] {
        let sort = Sort {
            column: SortColumn::Confidence,
            descending,
        };
        let listed: Vec<String> = browse::items(
            &mut conn,
            &filter,
            sort,
            &PageStart::First,
            Some(&edge),
            100,
        )
        .unwrap()
        .into_iter()
        .map(|row| row.item.id)
        .collect();
        assert_eq!(listed, expected(&window, |f| f.confidence, descending));
    }
}
