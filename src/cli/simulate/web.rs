//! A small browser for the web UI: cookies, forms, no redirects followed
//! (the simulator reads each `Location` itself), and what it reads from the
//! server's HTML: hidden inputs, label buttons, form actions, table cells.

use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

/// One answer of the web UI.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// A redirect to `path` (with or without a query string).
    pub fn redirects_to(&self, path: &str) -> bool {
        (300..400).contains(&self.status)
            && self
                .location
                .as_deref()
                .is_some_and(|l| l.split('?').next() == Some(path))
    }
}

/// One person's browser: a cookie jar and a client that does not follow
/// redirects.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(base: &str) -> anyhow::Result<Browser> {
        Ok(Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            cookies: Vec::new(),
        })
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Result<Page> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post_form(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Result<Page> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Result<Page> {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header(COOKIE, self.cookie_header())
        };
        let response = request.send().await?;
        for header in response.headers().get_all(SET_COOKIE) {
            if let Ok(text) = header.to_str() {
                self.remember(text);
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(String::from);
        let body = response.text().await?;
        Ok(Page {
            status,
            location,
            body,
        })
    }

    /// Keeps a `Set-Cookie`; an empty value (a removal) forgets it.
    fn remember(&mut self, set_cookie: &str) {
        let pair = set_cookie.split(';').next().unwrap_or("");
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        self.cookies.retain(|(n, _)| n != name);
        if !value.is_empty() {
            self.cookies.push((name.to_string(), value.to_string()));
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Signs in through the sign-in form (its CSRF token and cookie), as
    /// a person would.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> anyhow::Result<()> {
        let form = self.get("/sign-in").await.context("cannot open /sign-in")?;
        if form.status != 200 {
            bail!("GET /sign-in answered {}", form.status);
        }
        let csrf = input_value(&form.body, "csrf").context("the sign-in page has no CSRF token")?;
        let answer = self
            .post_form(
                "/sign-in",
                &[
                    ("name", name),
                    ("password", password),
                    ("csrf", csrf.as_str()),
                ],
            )
            .await
            .context("cannot post the sign-in form")?;
        match answer.status {
            303 if answer.redirects_to("/") => Ok(()),
            401 => {
                bail!("{name:?} cannot sign in: wrong name or password, or the account is disabled")
            }
            429 => {
                bail!("{name:?} cannot sign in: too many failed attempts, try again in 15 minutes")
            }
            403 => {
                bail!("{name:?} cannot sign in: the server refused the sign-in form's CSRF token")
            }
            status => bail!("{name:?} cannot sign in: the server answered {status}"),
        }
    }
}

/// The attributes of every `<tag …>` in `html`, values unescaped.
pub fn tags(html: &str, tag: &str) -> Vec<Vec<(String, String)>> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let name_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        if !rest[..name_end].eq_ignore_ascii_case(tag) {
            continue;
        }
        let (attributes, after) = attributes(&rest[name_end..]);
        found.push(attributes);
        rest = after;
    }
    found
}

/// Parses `name="value"` pairs up to the end of the tag; returns them and
/// the text after the tag.
fn attributes(mut s: &str) -> (Vec<(String, String)>, &str) {
    let mut attributes = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        if s.is_empty() {
            return (attributes, s);
        }
        if let Some(after) = s.strip_prefix('>') {
            return (attributes, after);
        }
        let name_end = s
            .find(|c: char| c.is_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(s.len())
            .max(1);
        let name = s[..name_end].to_ascii_lowercase();
        s = s[name_end..].trim_start();
        let mut value = String::new();
        if let Some(after_eq) = s.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            let (raw, after) = match after_eq.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let inner = &after_eq[1..];
                    let end = inner.find(q).unwrap_or(inner.len());
                    (&inner[..end], inner.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after_eq
                        .find(|c: char| c.is_whitespace() || c == '>')
                        .unwrap_or(after_eq.len());
                    (&after_eq[..end], &after_eq[end..])
                }
            };
            value = unescape(raw);
            s = after;
        }
        attributes.push((name, value));
    }
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The value of the first `<input name="…">` called `name`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .iter()
        .find(|a| attribute(a, "name") == Some(name))
        .and_then(|a| attribute(a, "value").map(String::from))
}

/// The values of the `<button name="…">`s called `name` (the review page's
/// label buttons).
pub fn button_values(html: &str, name: &str) -> Vec<String> {
    tags(html, "button")
        .iter()
        .filter(|a| attribute(a, "name") == Some(name))
        .filter_map(|a| attribute(a, "value").map(String::from))
        .collect()
}

/// The `action` of every form.
pub fn form_actions(html: &str) -> Vec<String> {
    tags(html, "form")
        .iter()
        .filter_map(|a| attribute(a, "action").map(String::from))
        .collect()
}

/// The text of each `<td>` of each table row, tags stripped, entities
/// decoded and white space collapsed; rows without cells are left out.
pub fn table_rows(html: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for row in html.split("<tr").skip(1) {
        let row = row.split("</tr>").next().unwrap_or("");
        let cells: Vec<String> = row
            .split("<td")
            .skip(1)
            .map(|cell| {
                let cell = cell.split("</td>").next().unwrap_or("");
                let inner = cell.split_once('>').map_or("", |(_, inner)| inner);
                text(inner)
            })
            .collect();
        if !cells.is_empty() {
            rows.push(cells);
        }
    }
    rows
}

/// The text of the page's alert (`role="alert"`), e.g. why a form was
/// refused.
pub fn alert(html: &str) -> Option<String> {
    let (_, after) = html.split_once("role=\"alert\"")?;
    let (_, inner) = after.split_once('>')?;
    let end = inner.find("</").unwrap_or(inner.len());
    Some(text(&inner[..end])).filter(|t| !t.is_empty())
}

/// Markup removed, entities decoded, white space collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Decodes HTML character references: the named ones askama and browsers
/// write (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`) and numeric ones
/// (`&#60;`, `&#x3c;`). Anything else is left as it is.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &rest[1..end];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let code = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        entity.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_references_are_decoded() {
        assert_eq!(
            unescape("a &amp; b &#60;c&#62; &#x27;d&#39; &quot;"),
            "a & b <c> 'd' \""
        );
        assert_eq!(
            unescape("AT&T &nosuch; & 5 &#xZZ;"),
            "AT&T &nosuch; & 5 &#xZZ;"
        );
    }

    #[test]
    fn attributes_are_read_in_any_order_and_with_any_quotes() {
        let html = r#"<form method="post" action="/x?a=1&#38;b=2"><INPUT value='v 1' type=hidden name="csrf" required>
            <button name="label" data-key="1" value="benign">"#;
        assert_eq!(input_value(html, "csrf").as_deref(), Some("v 1"));
        assert_eq!(input_value(html, "other"), None);
        assert_eq!(form_actions(html), ["/x?a=1&b=2"]);
        assert_eq!(button_values(html, "label"), ["benign"]);
    }

    #[test]
    fn table_cells_are_the_text_of_each_row() {
        let html = "<table><thead><tr><th>Name</th></tr></thead><tbody>
            <tr>\n <td>ana</td>\n <td>reviewer</td><td>tumor-triage, <em>b&#38;c</em></td><td><form action=\"/y\"><button>Disable</button></form></td></tr>
            </tbody></table>";
        assert_eq!(
            table_rows(html),
            [vec!["ana", "reviewer", "tumor-triage, b&c", "Disable"]]
        );
        assert_eq!(
            alert("<p class=\"error\" role=\"alert\">There is no task named &#34;x&#34;.</p>"),
            Some("There is no task named \"x\".".into())
        );
        assert_eq!(alert("<p>fine</p>"), None);
    }

    #[test]
    fn cookies_are_kept_replaced_and_removed() {
        let mut b = Browser::new("http://127.0.0.1:1/").unwrap();
        b.remember("verdict_sign_in=abc; Path=/sign-in; HttpOnly");
        b.remember("verdict_session=s1; Path=/");
        b.remember("verdict_session=s2; Path=/");
        assert_eq!(b.cookie_header(), "verdict_sign_in=abc; verdict_session=s2");
        b.remember("verdict_sign_in=; Path=/sign-in; Max-Age=0");
        assert_eq!(b.cookie_header(), "verdict_session=s2");
        assert_eq!(b.base, "http://127.0.0.1:1");
    }
}
