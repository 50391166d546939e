//! Full-text search over the replica (semantics: [`SearchQuery`]).

use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params, params_from_iter};
use uuid::Uuid;

use super::query::{Filters, Where};
use super::{ReplicaError, known_entity};
use crate::catalog::cursor::Cursor;

/// Terms beyond this many are ignored: they cannot narrow a result much
/// further, and each one costs an index lookup.
pub const MAX_TERMS: usize = 32;
/// Characters of a term beyond this are ignored.
const MAX_TERM_CHARS: usize = 200;
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
pub const MAX_SEARCH_LIMIT: usize = 100;
/// Above this many matches a search ranks by recency within the
/// title-first order instead of bm25.
const BROAD_MATCHES: i64 = 1000;
/// bm25 weights of title, body, labels.
const RANK: &str = "bm25(items_fts, 10.0, 1.0, 2.0)";
/// How long a title made from a comment's or message's content is.
const TITLE_CHARS: usize = 60;
/// How far around a substring match its snippet reaches, each side.
const CONTEXT_CHARS: usize = 30;

/// A full-text search across entities.
///
/// The index is one FTS5 table, `unicode61 remove_diacritics 2`: case and
/// diacritics fold (`cafe`, `CAFÉ` and `café` are one word), and text splits
/// on spaces and punctuation. Its columns, from the payload (the same keys
/// for every entity): `title`, `body` (content, description) and `labels`
/// (tags, author, sender, participants).
///
/// The user's text becomes terms, never FTS syntax:
/// - words split on whitespace; a double-quoted span is one phrase (an
///   unbalanced quote runs to the end); at most [`MAX_TERMS`] terms count;
/// - a word is matched as a quoted prefix (`budg` finds `budget`); a phrase
///   exactly. Every term must match (AND). Operators (`AND`, `OR`, `NEAR`,
///   `-`, `*`, `:`) are plain words, so no input is a syntax error;
/// - a term FTS cannot tokenize (only emoji or symbols), and a term in a
///   script written without spaces (CJK, Thai, ...: FTS would see a whole
///   run as one token, so only a word starting a run could be found), is
///   matched as a substring of title, body or labels instead (ASCII case
///   folded only, no diacritic folding), by scanning: slower, but exact;
/// - a term of ASCII punctuation only is dropped. No terms left (empty
///   text): the filtered items, newest first;
/// - when the words match no item at all, they are tried as substrings
///   instead: this finds letters the tokenizer does not know (its Unicode
///   tables are 6.1: later scripts are separators to it) and a word inside
///   a longer one (`port` in `passport`), and costs a scan only then.
///
/// Ranking: an item matching in its title ranks above any that does not,
/// strictly; then bm25 with the title weighted up; then the newest. Pages
/// are by offset (the cursor, [`Cursor::Offset`]), so a page may
/// shift if the replica changes between calls.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The user's words, as described above.
    pub text: String,
    /// Entities to search (of [`super::ENTITIES`]); empty: all.
    pub entities: Vec<String>,
    pub filters: Filters,
    /// Hits per page, clamped to `1..=100`.
    pub limit: usize,
    /// From [`SearchPage::next_cursor`] of the same query.
    pub cursor: Option<String>,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self {
            text: String::new(),
            entities: Vec::new(),
            filters: Filters::default(),
            limit: DEFAULT_SEARCH_LIMIT,
            cursor: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub entity: &'static str,
    pub uid: Uuid,
    /// The payload's title; without one, the start of the content.
    pub title: String,
    /// One line of text around the match, matches marked `**like this**`;
    /// the start of the content when there is no text to match.
    pub snippet: String,
    /// As the upstream sent it.
    pub updated_at: String,
    pub version: i64,
    /// A tombstone: only when [`Filters::include_deleted`] asked for them.
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Present only when the page is full: there may be more.
    pub next_cursor: Option<String>,
}

/// The user's text as terms.
#[derive(Debug, Default, PartialEq)]
struct Terms {
    /// Terms for FTS5, as typed, and whether each was a quoted phrase.
    fts: Vec<(String, bool)>,
    /// Terms matched by substring.
    substrings: Vec<String>,
}

impl Terms {
    fn parse(text: &str) -> Self {
        let mut terms = Self::default();
        for (term, phrase) in split_terms(text).into_iter().take(MAX_TERMS) {
            let term: String = term.chars().take(MAX_TERM_CHARS).collect();
            if term.chars().any(unspaced_script) {
                terms.substrings.push(term.trim().to_owned());
            } else if term.chars().any(char::is_alphanumeric) {
                terms.fts.push((term, phrase));
            } else if term.chars().any(|c| !c.is_ascii_punctuation()) {
                terms.substrings.push(term.trim().to_owned());
            }
        }
        terms
    }

    /// Each FTS term as FTS5 syntax: quoted, FTS reads only a string (its
    /// tokenizer drops the punctuation inside); outside the quotes, `*`
    /// asks for a prefix.
    fn quoted(&self) -> impl Iterator<Item = String> {
        self.fts.iter().map(|(term, phrase)| {
            let star = if *phrase { "" } else { "*" };
            format!("\"{}\"{star}", term.replace('"', "\"\""))
        })
    }

    /// The FTS5 query: every term.
    fn all(&self) -> String {
        self.quoted().collect::<Vec<_>>().join(" ")
    }

    /// The FTS5 query of items with any term in their title.
    fn any_in_title(&self) -> String {
        format!(
            "title : ({})",
            self.quoted().collect::<Vec<_>>().join(" OR ")
        )
    }

    /// The same terms, all matched as substrings.
    fn as_substrings(&self) -> Self {
        let fts = self.fts.iter().map(|(term, _)| term.trim().to_owned());
        Self {
            fts: Vec::new(),
            substrings: fts.chain(self.substrings.iter().cloned()).collect(),
        }
    }
}

/// Whitespace-separated words and double-quoted phrases, each with whether
/// it was a phrase. Empty ones are dropped.
fn split_terms(text: &str) -> Vec<(String, bool)> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut in_phrase = false;
    let mut flush = |current: &mut String, phrase: bool| {
        if !current.trim().is_empty() {
            terms.push((std::mem::take(current), phrase));
        }
        current.clear();
    };
    for c in text.chars() {
        if c == '"' {
            flush(&mut current, in_phrase);
            in_phrase = !in_phrase;
        } else if c.is_whitespace() && !in_phrase {
            flush(&mut current, false);
        } else {
            current.push(c);
        }
    }
    flush(&mut current, in_phrase);
    terms
}

/// Scripts written without spaces between words, where unicode61 makes one
/// token of a whole run.
fn unspaced_script(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0E00..=0x0EFF // Thai, Lao
            | 0x1000..=0x109F // Myanmar
            | 0x1780..=0x17FF // Khmer
            | 0x3040..=0x30FF // Hiragana, Katakana
            | 0x31F0..=0x31FF // Katakana extensions
            | 0x3400..=0x4DBF // CJK extension A
            | 0x4E00..=0x9FFF // CJK unified ideographs
            | 0xAC00..=0xD7AF // Hangul syllables
            | 0xF900..=0xFAFF // CJK compatibility ideographs
            | 0xFF66..=0xFF9F // half-width Katakana
            | 0x20000..=0x3FFFF // CJK extensions B and later
    )
}

pub(super) fn search(conn: &Connection, q: &SearchQuery) -> Result<SearchPage, ReplicaError> {
    let limit = q.limit.clamp(1, MAX_SEARCH_LIMIT);
    let offset = q
        .cursor
        .as_deref()
        .map(decode_cursor)
        .transpose()?
        .unwrap_or(0);
    let mut terms = Terms::parse(&q.text);
    let matches = if terms.fts.is_empty() {
        None
    } else {
        Some(match_count(conn, &terms)?)
    };
    if matches == Some(0) {
        terms = terms.as_substrings();
    }

    // Words found in very many items tell bm25 little, and ranking every
    // match costs about a microsecond each: such searches rank title matches
    // first and then the most recent, from the matches' rowids alone.
    let broad = terms.substrings.is_empty() && matches.is_some_and(|n| n > BROAD_MATCHES);
    if broad && walks_by_time(&q.filters) {
        let ids = broad_page(conn, q, &terms, limit, offset)?;
        return page(conn, &ids, &terms.as_substrings(), limit, offset);
    }
    let mut filter = Where::default();
    let mut title_hit = Where::default();
    if broad {
        filter.and(
            "i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)",
            [Sql::Text(terms.all())],
        );
    } else if !terms.fts.is_empty() {
        filter.and("items_fts MATCH ?", [Sql::Text(terms.all())]);
    }
    if !q.entities.is_empty() {
        // With text, the candidates come from the text match: `+` keeps the
        // planner from walking an entity index instead (over a broad match
        // that scans every item of the entities). Without text, the entity
        // index is the way to the page.
        let column = if terms.fts.is_empty() && terms.substrings.is_empty() {
            "i.entity"
        } else {
            "+i.entity"
        };
        entity_filter(&mut filter, column, &q.entities)?;
    }
    filter.filters(&q.filters);
    for s in &terms.substrings {
        let s = Sql::Text(s.clone());
        filter.and(
            "(instr(lower(items_fts.title), lower(?)) OR instr(lower(items_fts.body), lower(?))
              OR instr(lower(items_fts.labels), lower(?)))",
            [s.clone(), s.clone(), s.clone()],
        );
        title_hit.and("instr(lower(items_fts.title), lower(?))", [s]);
    }
    if !terms.fts.is_empty() {
        // Evaluated once for the query, then a lookup per candidate.
        title_hit.and(
            "i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)",
            [Sql::Text(terms.any_in_title())],
        );
    }

    // Rank first, then build only the page's hits: snippets cost.
    let mut order = Vec::new();
    let where_sql = filter.joined("AND");
    let mut params = filter.params;
    if !title_hit.is_empty() {
        order.push(format!("({}) DESC", title_hit.joined("OR")));
        params.extend(title_hit.params);
    }
    if !terms.fts.is_empty() && !broad {
        order.push(RANK.to_owned());
    }
    order.push("i.updated_ms DESC, i.uid DESC".to_owned());
    // Without text (or with only rowids from it) the index is not needed to
    // choose the page.
    let from = if broad || (terms.fts.is_empty() && terms.substrings.is_empty()) {
        "items i"
    } else {
        "items i JOIN items_fts ON items_fts.rowid = i.id"
    };
    let sql = format!(
        "SELECT i.id FROM {from} WHERE {where_sql} ORDER BY {} LIMIT {limit} OFFSET {offset}",
        order.join(", ")
    );
    let ids: Vec<i64> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(params), |r| r.get(0))?
        .collect::<Result<_, _>>()?;

    // A snippet cut by FTS re-runs the match for its item; over a broad
    // match that is a scan per hit, so a broad search cuts its snippets
    // around the words as plain text.
    let snippet_terms = if broad { terms.as_substrings() } else { terms };
    page(conn, &ids, &snippet_terms, limit, offset)
}

/// The hits of `ids`, in order, and the cursor past them when the page is
/// full.
fn page(
    conn: &Connection,
    ids: &[i64],
    terms: &Terms,
    limit: usize,
    offset: usize,
) -> Result<SearchPage, ReplicaError> {
    let hits = ids
        .iter()
        .map(|id| hit(conn, *id, terms))
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = (hits.len() == limit).then(|| encode_cursor(offset + limit));
    Ok(SearchPage { hits, next_cursor })
}

/// `column IN (...)` of the query's entities, each checked against the
/// known names.
fn entity_filter(
    filter: &mut Where,
    column: &str,
    entities: &[String],
) -> Result<(), ReplicaError> {
    let names = entities
        .iter()
        .map(|e| known_entity(e).map(|e| Sql::Text(e.to_owned())))
        .collect::<Result<Vec<_>, _>>()?;
    let marks = vec!["?"; names.len()].join(", ");
    filter.and(&format!("{column} IN ({marks})"), names);
    Ok(())
}

/// Whether a broad match's page is found fastest by walking the items
/// newest first and keeping the matches: so when the filters keep most
/// items (entity and time bounds have indexes in that order). A filter that
/// keeps few (a tag, a status, a parent) could make the walk pass most of
/// the replica for one page, so those rank the matches instead.
fn walks_by_time(f: &Filters) -> bool {
    f.tags.is_empty()
        && f.status.is_none()
        && f.due_after.is_none()
        && f.due_before.is_none()
        && f.parent_uid.is_none()
        && f.chat_uid.is_none()
}

/// The page's ids of a broad match, in the ranked order (title matches
/// first, then the rest, each newest first), without ranking every match:
/// each half is an index walk newest first that stops at the page, so a
/// page costs about its own length over the density of matches.
fn broad_page(
    conn: &Connection,
    q: &SearchQuery,
    terms: &Terms,
    limit: usize,
    offset: usize,
) -> Result<Vec<i64>, ReplicaError> {
    // The filters, for a walk newest first or for fetching by rowid. A walk
    // of one entity goes down its own index in time order; of several, it
    // checks the entity per item walked (an entity index would fetch and
    // sort every item of them). Fetching by rowid must not be turned into
    // a walk of the entity's index either.
    let filters = |walk: bool| -> Result<Where, ReplicaError> {
        let mut filter = Where::default();
        if !q.entities.is_empty() {
            let column = if walk && q.entities.len() == 1 {
                "i.entity"
            } else {
                "+i.entity"
            };
            entity_filter(&mut filter, column, &q.entities)?;
        }
        filter.filters(&q.filters);
        Ok(filter)
    };
    let (walked, fetched) = (filters(true)?, filters(false)?);
    let in_titles = format!("({}) AND {}", terms.all(), terms.any_in_title());
    // Title matches are often few (a word common in bodies, rare in
    // titles): then they are fetched and sorted, and a walk newest first
    // would pass every item looking for them.
    let title_matches_at_most = capped_count(conn, &in_titles)?;
    let matched = |titles: bool, limit: usize, offset: usize| {
        let few = titles && title_matches_at_most <= BROAD_MATCHES;
        let text = if titles { &in_titles } else { &terms.all() };
        // `+i.id` in a walk: a membership test per item walked, not the way
        // in (which would fetch and sort every match).
        let (way_in, filter) = if few {
            ("i.id", &fetched)
        } else {
            ("+i.id", &walked)
        };
        let where_sql = filter.joined("AND");
        let mut params = vec![Sql::Text(text.clone())];
        let mut sql = format!(
            "SELECT i.id FROM items i
             WHERE {way_in} IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)"
        );
        if !titles && title_matches_at_most > 0 {
            sql.push_str(" AND +i.id NOT IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)");
            params.push(Sql::Text(in_titles.clone()));
        }
        sql.push_str(&format!(
            " AND {where_sql} ORDER BY i.updated_ms DESC, i.uid DESC LIMIT {limit} OFFSET {offset}"
        ));
        params.extend(filter.params.iter().cloned());
        conn.prepare_cached(&sql)?
            .query_map(params_from_iter(params), |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()
    };
    let mut ids = if title_matches_at_most > 0 {
        matched(true, limit, offset)?
    } else {
        Vec::new()
    };
    if ids.len() == limit {
        return Ok(ids);
    }
    // Past the title matches: where they end decides where the rest start.
    let title_matches = if !ids.is_empty() {
        offset + ids.len()
    } else if title_matches_at_most == 0 {
        0
    } else {
        let sql = format!(
            "SELECT count(*) FROM items i
             WHERE i.id IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?) AND {}",
            fetched.joined("AND")
        );
        let mut params = vec![Sql::Text(in_titles.clone())];
        params.extend(fetched.params.iter().cloned());
        let n: i64 = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(params), |r| r.get(0))?;
        usize::try_from(n).unwrap_or(usize::MAX)
    };
    let rest = matched(
        false,
        limit - ids.len(),
        offset.saturating_sub(title_matches),
    )?;
    ids.extend(rest);
    Ok(ids)
}

/// How many items the FTS terms match, filters aside, counted only up to
/// one past [`BROAD_MATCHES`]: none sends the words to substring matching,
/// many to the broad ranking. Asked before every page alike, so all pages
/// of a query take the same path.
fn match_count(conn: &Connection, terms: &Terms) -> Result<i64, ReplicaError> {
    capped_count(conn, &terms.all())
}

/// How many items the FTS5 query `text` matches, filters aside, counted
/// only up to one past [`BROAD_MATCHES`].
fn capped_count(conn: &Connection, text: &str) -> Result<i64, ReplicaError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM items_fts WHERE items_fts MATCH ?1 LIMIT ?2)",
        )?
        .query_row(params![text, BROAD_MATCHES + 1], |r| r.get(0))?)
}

/// The hit for item `id`, its snippet cut by FTS when the text has FTS
/// terms, else around the first substring term.
fn hit(conn: &Connection, id: i64, terms: &Terms) -> Result<SearchHit, ReplicaError> {
    const COLUMNS: &str = "i.entity, i.uid, i.version, i.updated_at, i.deleted_at IS NOT NULL,
        items_fts.title, items_fts.body, items_fts.labels";
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(Raw, Option<String>)> {
        Ok((
            Raw {
                entity: r.get(0)?,
                uid: r.get(1)?,
                version: r.get(2)?,
                updated_at: r.get(3)?,
                deleted: r.get(4)?,
                title: r.get(5)?,
                body: r.get(6)?,
                labels: r.get(7)?,
            },
            r.get(8)?,
        ))
    };
    let (raw, snippet) = if terms.fts.is_empty() {
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, NULL FROM items i JOIN items_fts ON items_fts.rowid = i.id
             WHERE i.id = ?1"
        ))?
        .query_row([id], row)?
    } else {
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, snippet(items_fts, -1, '**', '**', '…', 12)
             FROM items i JOIN items_fts ON items_fts.rowid = i.id
             WHERE items_fts MATCH ?1 AND items_fts.rowid = ?2 AND i.id = ?2"
        ))?
        .query_row(params![terms.all(), id], row)?
    };
    let snippet = match snippet {
        Some(s) => one_line(&s),
        None => {
            let needle = terms.substrings.first().map(String::as_str);
            // The first field that holds the match; without one, the body.
            let text = [&raw.body, &raw.title, &raw.labels]
                .into_iter()
                .find(|t| needle.is_some_and(|n| find(t, n).is_some()))
                .unwrap_or(&raw.body);
            excerpt(text, needle)
        }
    };
    let entity = known_entity(&raw.entity)
        .map_err(|_| ReplicaError::Corrupt(format!("entity {:?}", raw.entity)))?;
    let uid = Uuid::parse_str(&raw.uid)
        .map_err(|_| ReplicaError::Corrupt(format!("uid {:?}", raw.uid)))?;
    let title = if raw.title.trim().is_empty() {
        shorten(&raw.body, TITLE_CHARS)
    } else {
        one_line(&raw.title)
    };
    Ok(SearchHit {
        entity,
        uid,
        title,
        snippet,
        updated_at: raw.updated_at,
        version: raw.version,
        deleted: raw.deleted,
    })
}

struct Raw {
    entity: String,
    uid: String,
    version: i64,
    updated_at: String,
    deleted: bool,
    title: String,
    body: String,
    labels: String,
}

fn encode_cursor(offset: usize) -> String {
    Cursor::Offset(offset).to_string()
}

fn decode_cursor(cursor: &str) -> Result<usize, ReplicaError> {
    match Cursor::parse(cursor) {
        Some(Cursor::Offset(offset)) => Ok(offset),
        _ => Err(ReplicaError::BadCursor),
    }
}

/// Byte range of the first occurrence of `needle` in `text`, ASCII case
/// folded as the SQL match is.
fn find(text: &str, needle: &str) -> Option<(usize, usize)> {
    // ASCII lower-casing keeps every byte offset.
    let start = text
        .to_ascii_lowercase()
        .find(&needle.to_ascii_lowercase())?;
    Some((start, start + needle.len()))
}

/// About [`CONTEXT_CHARS`] characters each side of `needle`'s first
/// occurrence in `text`, marked `**`; the start of `text` without one.
fn excerpt(text: &str, needle: Option<&str>) -> String {
    let Some((start, end)) = needle.and_then(|n| find(text, n)) else {
        return shorten(text, 2 * CONTEXT_CHARS);
    };
    let before: String = {
        let mut chars: Vec<char> = text[..start].chars().rev().take(CONTEXT_CHARS).collect();
        chars.reverse();
        chars.into_iter().collect()
    };
    let after: String = text[end..].chars().take(CONTEXT_CHARS).collect();
    let mut out = String::new();
    if before.len() < start {
        out.push('…');
    }
    out.push_str(&before);
    out.push_str("**");
    out.push_str(&text[start..end]);
    out.push_str("**");
    out.push_str(&after);
    if end + after.len() < text.len() {
        out.push('…');
    }
    one_line(&out)
}

/// `text` on one line, cut to `max` characters (at a word when one ends
/// near), `…` marking a cut.
fn shorten(text: &str, max: usize) -> String {
    let line = one_line(text);
    if line.chars().count() <= max {
        return line;
    }
    let cut: String = line.chars().take(max).collect();
    let at_word = match cut.rfind(' ') {
        Some(space) if cut[space..].chars().count() < 15 => cut[..space].to_owned(),
        _ => cut,
    };
    format!("{}…", at_word.trim_end())
}

/// Whitespace runs (newlines included) as single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_prefixes_and_phrases_stay_exact() {
        let t = Terms::parse(r#"budg  "annual review" NEAR( a:b AND -x * " "#);
        assert_eq!(
            t.all(),
            r#""budg"* "annual review" "NEAR("* "a:b"* "AND"* "-x"*"#
        );
        assert_eq!(
            Terms::parse(r#"budg "annual review""#).any_in_title(),
            r#"title : ("budg"* OR "annual review")"#
        );
        assert!(t.substrings.is_empty(), "{:?}", t.substrings);
    }

    #[test]
    fn an_unbalanced_quote_runs_to_the_end() {
        let t = Terms::parse(r#"tax "q3 report"#);
        assert_eq!(t.all(), r#""tax"* "q3 report""#);
    }

    #[test]
    fn symbols_and_unspaced_scripts_are_substrings() {
        let t = Terms::parse("🎉 東京タワー café ★★ ...");
        assert_eq!(t.all(), r#""café"*"#);
        assert_eq!(t.substrings, vec!["🎉", "東京タワー", "★★"]);
    }

    #[test]
    fn punctuation_only_is_nothing() {
        for text in ["", "   ", "\"", "\"\"", "* - : ( ) ,", "\n\t"] {
            assert_eq!(Terms::parse(text), Terms::default(), "{text:?}");
        }
    }

    #[test]
    fn long_text_is_capped() {
        let text = "word ".repeat(2000);
        let t = Terms::parse(&text);
        assert_eq!(t.fts.len(), MAX_TERMS);
        assert_eq!(
            Terms::parse("\"a b\" c").as_substrings().substrings,
            vec!["a b", "c"]
        );
        let one = Terms::parse(&"x".repeat(10_000));
        assert_eq!(one.all().len(), MAX_TERM_CHARS + 3);
    }

    #[test]
    fn search_cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(40)).ok(), Some(40));
        for bad in ["40", "s.", "s.!!", "n.NDA"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_mark_the_match_and_cut_long_text() {
        let text = format!("{} needle 🎉 here {}", "a ".repeat(40), "b ".repeat(40));
        let got = excerpt(&text, Some("🎉"));
        assert!(got.contains("needle **🎉** here"), "{got}");
        assert!(got.starts_with('…') && got.ends_with('…'), "{got}");
        assert_eq!(excerpt("Short 🎉", Some("🎉")), "Short **🎉**");
        assert_eq!(excerpt("MiXed", Some("mixed")), "**MiXed**");
    }

    #[test]
    fn titles_from_content_are_short_and_on_one_line() {
        assert_eq!(shorten("one\ntwo", TITLE_CHARS), "one two");
        let long = "word ".repeat(30);
        let title = shorten(&long, TITLE_CHARS);
        assert!(title.ends_with("word…"), "{title}");
        assert!(title.chars().count() <= TITLE_CHARS + 1);
        let cjk = "東".repeat(100);
        assert_eq!(shorten(&cjk, 10), format!("{}…", "東".repeat(10)));
    }
}
