//! Markdown from the configuration (task descriptions, guidelines, label
//! definitions) as HTML. Raw HTML in it is shown as text, and links go
//! only to http(s), mailto or this site: an admin's typo cannot become a
//! script in a reviewer's page.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A scheme (before any `/`, `?` or `#`) must be a plain one.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// `markdown` rendered as HTML, safe to put in a page as is.
pub fn to_html(markdown: &str) -> String {
    let events = Parser::new_ext(
        markdown,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    )
    .map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed(""),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_html_in_it_does_not() {
        assert_eq!(
            to_html("**worst** radius"),
            "<p><strong>worst</strong> radius</p>\n"
        );
        let html = to_html("<script>alert(1)</script> and <b onclick=x>b</b>");
        assert!(!html.contains("<script") && !html.contains("<b "), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn links_go_only_to_plain_schemes() {
        assert!(to_html("[a](https://example.org/x)").contains(r#"href="https://example.org/x""#));
        assert!(to_html("[a](/admin/items)").contains(r#"href="/admin/items""#));
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            " vbscript:x",
        ] {
            let html = to_html(&format!("[a]({bad})"));
            assert!(html.contains(r##"href="#""##), "{bad}: {html}");
        }
    }
}
