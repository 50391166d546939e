//! Search quality on a seeded corpus with known answers: filler items that
//! contain none of the searched words, plus planted items that do. Every
//! expectation below is a count or an order the planting fixes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable
)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use toolbridge_mcp::replica::{
    Filters, ListQuery, Order, Replica, ReplicaKey, SearchHit, SearchQuery, replica_path,
};
use uuid::Uuid;

const T0: i64 = 1_764_498_525_000;
const DAY: i64 = 86_400_000;
const ENTITIES: [&str; 5] = ["notes", "tasks", "comments", "chats", "chat_messages"];

/// Filler vocabulary: no word here starts with, or is, a searched word.
const LOREM: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "eiusmod",
    "tempor",
    "incididunt",
    "labore",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
];
const FILLER_TAGS: &[&str] = &["alpha", "beta", "gamma", "delta"];
const STATUSES: &[&str] = &["open", "in_progress", "completed", "archived"];

/// splitmix64: a fixed seed makes the corpus the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }
    fn uid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            ((u128::from(self.next()) << 64) | u128::from(self.next())).to_le_bytes(),
        )
        .into_uuid()
    }
    fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| LOREM[self.below(LOREM.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("in range")
        .format(&Rfc3339)
        .expect("formats")
}

/// One item to apply, and what it is.
struct Seed {
    entity: &'static str,
    uid: Uuid,
    updated_ms: i64,
    deleted: bool,
    payload: Value,
}

impl Seed {
    fn item(&self) -> Value {
        let mut item = json!({
            "uid": self.uid, "version": 1, "updatedAt": rfc3339(self.updated_ms),
            "payload": self.payload
        });
        if self.deleted {
            item["deletedAt"] = json!(rfc3339(self.updated_ms));
        }
        item
    }
}

/// The payload of an entity from a title (if the entity has one), a body
/// and extras. Comments and messages have no title: their title words go
/// into the content, first.
fn payload(entity: &str, title: &str, body: &str, extra: Value) -> Value {
    let mut p = match entity {
        "notes" => json!({"title": title, "content": body}),
        "tasks" | "chats" => json!({"title": title, "description": body}),
        _ => json!({"content": format!("{title} {body}").trim().to_owned()}),
    };
    if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
        p.extend(extra);
    }
    p
}

/// What the planting put where.
struct Corpus {
    seeds: Vec<Seed>,
    parent_note: Uuid,
    chat: Uuid,
    /// Planted with `budget` in the title (and old).
    budget_titles: BTreeSet<Uuid>,
    /// Planted with `budget` in the body or tags only (and newer).
    budget_bodies: BTreeSet<Uuid>,
    /// Live `zephyr` items, and those of them tagged `urgent`, `open`, ...
    zephyr: Vec<Uuid>,
    zephyr_deleted: Vec<Uuid>,
    zephyr_urgent: BTreeSet<Uuid>,
    zephyr_open: BTreeSet<Uuid>,
    zephyr_urgent_open: BTreeSet<Uuid>,
    zephyr_comments_on_parent: BTreeSet<Uuid>,
    zephyr_in_chat: BTreeSet<Uuid>,
    quarterly_review_phrase: BTreeSet<Uuid>,
    quarterly_review_apart: BTreeSet<Uuid>,
    named: Vec<(&'static str, Uuid)>,
}

impl Corpus {
    fn uid(&self, name: &str) -> Uuid {
        self.named
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, u)| *u)
            .expect("planted")
    }

    fn seed(&self, uid: Uuid) -> &Seed {
        self.seeds.iter().find(|s| s.uid == uid).expect("seeded")
    }
}

/// Adds a planted item and returns its uid.
fn plant(
    c: &mut Corpus,
    rng: &mut Rng,
    entity: &'static str,
    updated_ms: i64,
    deleted: bool,
    payload: Value,
) -> Uuid {
    let uid = rng.uid();
    c.seeds.push(Seed {
        entity,
        uid,
        updated_ms,
        deleted,
        payload,
    });
    uid
}

fn corpus(filler: usize) -> Corpus {
    let mut rng = Rng(0x5EED);
    let mut seeds = Vec::new();
    let parent_note = rng.uid();
    let chat = rng.uid();
    // Filler: every entity, tags, statuses, parents; none of the searched words.
    for i in 0..filler {
        let entity = ENTITIES[i % 5];
        let (title, body) = (rng.words(4), rng.words(25));
        let tag = FILLER_TAGS[rng.below(FILLER_TAGS.len())];
        let status = STATUSES[rng.below(STATUSES.len())];
        let extra =
            json!({"tags": [tag], "status": status, "parentUid": parent_note, "chatUid": chat});
        seeds.push(Seed {
            entity,
            uid: rng.uid(),
            updated_ms: T0 + i64::try_from(i).expect("fits") * 1000,
            deleted: false,
            payload: payload(entity, &title, &body, extra),
        });
    }
    let mut c = Corpus {
        seeds,
        parent_note,
        chat,
        budget_titles: BTreeSet::new(),
        budget_bodies: BTreeSet::new(),
        zephyr: Vec::new(),
        zephyr_deleted: Vec::new(),
        zephyr_urgent: BTreeSet::new(),
        zephyr_open: BTreeSet::new(),
        zephyr_urgent_open: BTreeSet::new(),
        zephyr_comments_on_parent: BTreeSet::new(),
        zephyr_in_chat: BTreeSet::new(),
        quarterly_review_phrase: BTreeSet::new(),
        quarterly_review_apart: BTreeSet::new(),
        named: Vec::new(),
    };
    let far_future = T0 + 3650 * DAY;
    // `budget` in titles: old items. In bodies, tags, or many times: newer,
    // so recency and term frequency both argue against the title rule.
    for i in 0..10 {
        let entity = ["notes", "tasks", "chats"][i % 3];
        let p = payload(
            entity,
            &format!("Budget plan {i}"),
            "lorem ipsum",
            json!({}),
        );
        let uid = plant(
            &mut c,
            &mut rng,
            entity,
            T0 - DAY * (i64::try_from(i).expect("small") + 10),
            false,
            p,
        );
        c.budget_titles.insert(uid);
    }
    for i in 0..10 {
        let entity = ENTITIES[i % 5];
        let body = "the budget budget budget is set, budget again";
        let p = payload(entity, "", body, json!({}));
        let p = if matches!(entity, "notes" | "tasks" | "chats") {
            payload(entity, "lorem dolor", body, json!({}))
        } else {
            p
        };
        let uid = plant(
            &mut c,
            &mut rng,
            entity,
            far_future + i64::try_from(i).expect("small"),
            false,
            p,
        );
        c.budget_bodies.insert(uid);
    }
    for i in 0..2 {
        let p = payload("notes", "dolor sit", "amet", json!({"tags": ["budget"]}));
        let uid = plant(&mut c, &mut rng, "notes", far_future + 100 + i, false, p);
        c.budget_bodies.insert(uid);
    }
    let budgetary = plant(
        &mut c,
        &mut rng,
        "notes",
        T0,
        false,
        payload("notes", "sed do", "budgetary concerns", json!({})),
    );
    c.named.push(("budgetary", budgetary));
    // `zephyr`: 37 live in every entity, with tags and statuses in a known
    // pattern, some on one note or in one chat; 3 deleted.
    for i in 0..37usize {
        let entity = ENTITIES[i % 5];
        let mut tags = vec!["gamma".to_owned()];
        if i % 3 == 0 {
            tags.push("urgent".into());
        }
        let status = if i % 2 == 0 { "open" } else { "completed" };
        let mut extra = json!({"tags": tags, "status": status});
        if entity == "comments" && i % 2 == 0 {
            extra["parentUid"] = json!(parent_note);
        }
        if entity == "chat_messages" && i % 2 == 1 {
            extra["chatUid"] = json!(chat);
        }
        let body = format!("{} zephyr {}", rng.words(8), rng.words(8));
        let p = payload(entity, &rng.words(3), &body, extra.clone());
        let uid = plant(
            &mut c,
            &mut rng,
            entity,
            T0 + i64::try_from(i).expect("fits") * 7_777,
            false,
            p,
        );
        c.zephyr.push(uid);
        if i % 3 == 0 {
            c.zephyr_urgent.insert(uid);
        }
        if i % 2 == 0 {
            c.zephyr_open.insert(uid);
        }
        if i % 6 == 0 {
            c.zephyr_urgent_open.insert(uid);
        }
        if extra.get("parentUid").is_some() {
            c.zephyr_comments_on_parent.insert(uid);
        }
        if extra.get("chatUid").is_some() {
            c.zephyr_in_chat.insert(uid);
        }
    }
    for i in 0..3 {
        let p = payload(
            "notes",
            "gone",
            "zephyr was here",
            json!({"tags": ["urgent"]}),
        );
        let uid = plant(&mut c, &mut rng, "notes", T0 + i, true, p);
        c.zephyr_deleted.push(uid);
    }
    // Phrases: adjacent in some, apart in others.
    for i in 0..6 {
        let p = payload("notes", "lorem", "the quarterly review is due", json!({}));
        let uid = plant(&mut c, &mut rng, "notes", T0 + i, false, p);
        c.quarterly_review_phrase.insert(uid);
    }
    for i in 0..4 {
        let p = payload("tasks", "lorem", "review the numbers quarterly", json!({}));
        let uid = plant(&mut c, &mut rng, "tasks", T0 + i, false, p);
        c.quarterly_review_apart.insert(uid);
    }
    // Accents, other scripts, emoji.
    let named: [(&'static str, &'static str, &'static str, &'static str); 10] = [
        (
            "cafe",
            "notes",
            "Café crème brûlée",
            "A naïve résumé of the menu",
        ),
        ("russian", "notes", "Привет мир", "Встреча в понедельник"),
        ("greek", "tasks", "Καλημέρα κόσμε", "Σημειώσεις"),
        ("japanese", "notes", "旅行メモ", "東京タワーの夜景がきれい"),
        ("chinese", "chats", "会议纪要", "下周一讨论预算"),
        ("korean", "notes", "회의 메모", "서울에서 만나요"),
        ("rocket", "notes", "Launch 🚀 day", "Countdown begins"),
        ("party", "comments", "", "🎉🎉 congrats to the team"),
        // Adlam (Unicode 9): letters to Rust, separators to the tokenizer.
        ("adlam", "notes", "𞤀𞤣𞤤𞤢𞤥 notes", "dolor"),
        ("passport", "tasks", "Renew passport", "sed do"),
    ];
    for (name, entity, title, body) in named {
        let p = payload(entity, title, body, json!({"tags": ["intl"]}));
        let uid = plant(&mut c, &mut rng, entity, T0 + DAY, false, p);
        c.named.push((name, uid));
    }
    c
}

fn key() -> ReplicaKey {
    ReplicaKey {
        base_url: "https://api.example.com".into(),
        tenant: "t".into(),
        user_id: "search".into(),
    }
}

fn load(corpus: &Corpus) -> (tempfile::TempDir, Replica) {
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Replica::open(&replica_path(dir.path(), &key()), &key()).expect("open");
    for entity in ENTITIES {
        let items: Vec<Value> = corpus
            .seeds
            .iter()
            .filter(|s| s.entity == entity)
            .map(Seed::item)
            .collect();
        let applied = replica.apply(entity, &items).expect("apply");
        assert_eq!(applied.inserted, items.len());
    }
    (dir, replica)
}

/// Every hit of `q`, following cursors; checks no hit repeats.
fn all_hits(replica: &Replica, q: &SearchQuery) -> Vec<SearchHit> {
    let mut q = q.clone();
    let mut hits = Vec::new();
    loop {
        let page = replica.search(&q).expect("search");
        hits.extend(page.hits);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    let unique: BTreeSet<Uuid> = hits.iter().map(|h| h.uid).collect();
    assert_eq!(unique.len(), hits.len(), "no hit twice for {:?}", q.text);
    hits
}

fn text(t: &str) -> SearchQuery {
    SearchQuery {
        text: t.into(),
        limit: 100,
        ..SearchQuery::default()
    }
}

fn uids(hits: &[SearchHit]) -> BTreeSet<Uuid> {
    hits.iter().map(|h| h.uid).collect()
}

/// The corpus is built once per test; it takes a fraction of a second.
fn loaded() -> (Corpus, tempfile::TempDir, Replica) {
    let c = corpus(2_200);
    assert!(c.seeds.len() >= 2_000);
    let (dir, replica) = load(&c);
    (c, dir, replica)
}

/// A single word finds exactly its items, across pages, and a prefix of it
/// finds the same plus longer words that start with it.
#[test]
fn words_and_prefixes_find_exactly_their_items() {
    let (c, _dir, replica) = loaded();
    let zephyr: BTreeSet<Uuid> = c.zephyr.iter().copied().collect();
    let small_pages = SearchQuery {
        limit: 7,
        ..text("zephyr")
    };
    assert_eq!(uids(&all_hits(&replica, &small_pages)), zephyr);
    for prefix in ["zeph", "ZEPHYR", "Zephyr,", "zephyr."] {
        assert_eq!(uids(&all_hits(&replica, &text(prefix))), zephyr, "{prefix}");
    }
    let budget: BTreeSet<Uuid> = c
        .budget_titles
        .union(&c.budget_bodies)
        .copied()
        .chain([c.uid("budgetary")])
        .collect();
    assert_eq!(uids(&all_hits(&replica, &text("budg"))), budget);
    assert_eq!(uids(&all_hits(&replica, &text("budget"))), budget);
    // Quoted, a word is exact: no `budgetary`.
    let exact: BTreeSet<Uuid> = c.budget_titles.union(&c.budget_bodies).copied().collect();
    assert_eq!(uids(&all_hits(&replica, &text("\"budget\""))), exact);
    // Two words: both must match.
    assert!(all_hits(&replica, &text("zephyr budget")).is_empty());
    assert!(all_hits(&replica, &text("nonexistentword")).is_empty());
}

/// A quoted phrase matches adjacent words only; unquoted, the words match
/// anywhere in the item.
#[test]
fn phrases_match_adjacent_words() {
    let (c, _dir, replica) = loaded();
    let phrase = uids(&all_hits(&replica, &text("\"quarterly review\"")));
    assert_eq!(phrase, c.quarterly_review_phrase);
    let words = uids(&all_hits(&replica, &text("quarterly review")));
    let both: BTreeSet<Uuid> = c
        .quarterly_review_phrase
        .union(&c.quarterly_review_apart)
        .copied()
        .collect();
    assert_eq!(words, both);
    // A phrase and a word together.
    let mixed = uids(&all_hits(&replica, &text("numbers \"review the\"")));
    assert_eq!(mixed, c.quarterly_review_apart);
}

/// Every title match ranks above every body-only match, though the body
/// matches are newer and say the word more often.
#[test]
fn title_matches_rank_above_body_matches() {
    let (c, _dir, replica) = loaded();
    let hits = all_hits(&replica, &text("\"budget\""));
    let n = c.budget_titles.len();
    let first: BTreeSet<Uuid> = hits[..n].iter().map(|h| h.uid).collect();
    let rest: BTreeSet<Uuid> = hits[n..].iter().map(|h| h.uid).collect();
    assert_eq!(first, c.budget_titles, "titles first");
    assert_eq!(rest, c.budget_bodies);
    // Also across pages of a prefix search.
    let hits = all_hits(
        &replica,
        &SearchQuery {
            limit: 3,
            ..text("budg")
        },
    );
    let positions: Vec<bool> = hits
        .iter()
        .map(|h| c.budget_titles.contains(&h.uid))
        .collect();
    let boundary = positions.iter().position(|t| !t).expect("some body hits");
    assert!(positions[..boundary].iter().all(|t| *t));
    assert!(positions[boundary..].iter().all(|t| !*t), "{positions:?}");
}

/// Hits carry the title (or a comment's start), a one-line snippet with
/// the match marked, and the item's stamp and version as stored.
#[test]
fn hits_describe_their_items() {
    let (c, _dir, replica) = loaded();
    for hit in all_hits(&replica, &text("zephyr")) {
        let seed = c.seed(hit.uid);
        assert_eq!(hit.entity, seed.entity);
        assert_eq!(hit.updated_at, rfc3339(seed.updated_ms));
        assert_eq!(hit.version, 1);
        assert!(!hit.deleted);
        assert!(hit.snippet.contains("**zephyr**"), "{}", hit.snippet);
        assert!(!hit.snippet.contains('\n'));
        let expected_title = seed.payload["title"].as_str().map_or_else(
            || {
                let content = seed.payload["content"].as_str().expect("content");
                content.chars().take(20).collect::<String>()
            },
            str::to_owned,
        );
        assert!(
            hit.title.starts_with(&expected_title),
            "{} / {expected_title}",
            hit.title
        );
        assert!(hit.title.chars().count() <= 61, "{}", hit.title);
    }
}

/// Accents and case fold both ways; Cyrillic, Greek, CJK (a run's start or
/// middle), Hangul, emoji, letters the tokenizer does not know, and a word
/// inside another are found, and come back intact.
#[test]
fn accents_other_scripts_and_emoji_are_found_intact() {
    let (c, _dir, replica) = loaded();
    let cases: &[(&str, &str)] = &[
        ("cafe", "cafe"),
        ("CAFÉ", "cafe"),
        ("café", "cafe"),
        ("creme brulee", "cafe"),
        ("resume", "cafe"),
        ("NAÏVE", "cafe"),
        ("привет", "russian"),
        ("ПРИВЕТ", "russian"),
        ("прив", "russian"),
        ("понедельник", "russian"),
        ("καλημέρα", "greek"),
        ("ΚΑΛΗΜΈΡΑ", "greek"),
        ("κόσμε", "greek"),
        // Japanese: the start of a run, its middle, a whole run.
        ("東京", "japanese"),
        ("夜景", "japanese"),
        ("東京タワーの夜景がきれい", "japanese"),
        ("旅行", "japanese"),
        ("纪要", "chinese"),
        ("会议", "chinese"),
        ("预算", "chinese"),
        ("서울", "korean"),
        ("🚀", "rocket"),
        ("launch 🚀", "rocket"),
        ("🎉", "party"),
        ("🎉🎉", "party"),
        // No word matches these: they are found as substrings.
        ("𞤀𞤣𞤤", "adlam"),
        ("sspor", "passport"),
    ];
    for (query, name) in cases {
        let hits = all_hits(&replica, &text(query));
        assert_eq!(uids(&hits), BTreeSet::from([c.uid(name)]), "{query}");
        let seed = c.seed(hits[0].uid);
        let stored = replica
            .get(seed.entity, seed.uid)
            .expect("get")
            .expect("stored");
        assert_eq!(stored["payload"], seed.payload, "round trip of {name}");
        match seed.payload["title"].as_str() {
            Some(title) if !title.is_empty() => assert_eq!(hits[0].title, title),
            _ => assert!(hits[0].title.starts_with("🎉🎉 congrats")),
        }
    }
    let cafe = &all_hits(&replica, &text("cafe"))[0];
    assert!(cafe.snippet.contains("**Café**"), "{}", cafe.snippet);
    let rocket = &all_hits(&replica, &text("🚀"))[0];
    assert!(rocket.snippet.contains("**🚀**"), "{}", rocket.snippet);
    let tokyo = &all_hits(&replica, &text("夜景"))[0];
    assert!(tokyo.snippet.contains("**夜景**"), "{}", tokyo.snippet);
    // Emoji that no item holds find nothing (not everything).
    assert!(all_hits(&replica, &text("🦄")).is_empty());
}

/// Tags, status, entity, parent and chat filters narrow a search exactly.
#[test]
fn filters_narrow_searches() {
    let (c, _dir, replica) = loaded();
    let with = |filters: Filters| {
        uids(&all_hits(
            &replica,
            &SearchQuery {
                filters,
                ..text("zephyr")
            },
        ))
    };
    let urgent = vec!["urgent".to_owned()];
    assert_eq!(
        with(Filters {
            tags: urgent.clone(),
            ..Filters::default()
        }),
        c.zephyr_urgent
    );
    assert_eq!(
        with(Filters {
            tags: vec!["urgent".into(), "gamma".into()],
            ..Filters::default()
        }),
        c.zephyr_urgent
    );
    assert_eq!(
        with(Filters {
            status: Some("open".into()),
            ..Filters::default()
        }),
        c.zephyr_open
    );
    assert_eq!(
        with(Filters {
            tags: urgent.clone(),
            status: Some("open".into()),
            ..Filters::default()
        }),
        c.zephyr_urgent_open
    );
    assert_eq!(
        with(Filters {
            parent_uid: Some(c.parent_note),
            ..Filters::default()
        }),
        c.zephyr_comments_on_parent
    );
    assert_eq!(
        with(Filters {
            chat_uid: Some(c.chat),
            ..Filters::default()
        }),
        c.zephyr_in_chat
    );
    let later = T0 + 20 * 7_777;
    let after: BTreeSet<Uuid> = c
        .zephyr
        .iter()
        .copied()
        .filter(|u| c.seed(*u).updated_ms > later)
        .collect();
    assert_eq!(
        with(Filters {
            updated_after: Some(later),
            ..Filters::default()
        }),
        after
    );
    let comments = uids(&all_hits(
        &replica,
        &SearchQuery {
            entities: vec!["comments".into(), "chat_messages".into()],
            ..text("zephyr")
        },
    ));
    let expected: BTreeSet<Uuid> = c
        .zephyr
        .iter()
        .copied()
        .filter(|u| matches!(c.seed(*u).entity, "comments" | "chat_messages"))
        .collect();
    assert_eq!(comments, expected);
    assert!(
        replica
            .search(&SearchQuery {
                entities: vec!["widgets".into()],
                ..text("zephyr")
            })
            .is_err()
    );
}

/// Deleted items are found only when asked for, and say so.
#[test]
fn deleted_items_are_excluded_unless_asked_for() {
    let (c, _dir, replica) = loaded();
    let live: BTreeSet<Uuid> = c.zephyr.iter().copied().collect();
    assert_eq!(uids(&all_hits(&replica, &text("zephyr"))), live);
    let all = all_hits(
        &replica,
        &SearchQuery {
            filters: Filters {
                include_deleted: true,
                ..Filters::default()
            },
            ..text("zephyr")
        },
    );
    let deleted: BTreeSet<Uuid> = all.iter().filter(|h| h.deleted).map(|h| h.uid).collect();
    assert_eq!(deleted, c.zephyr_deleted.iter().copied().collect());
    assert_eq!(all.len(), live.len() + c.zephyr_deleted.len());
}

/// No text but filters: the matching items, newest first.
#[test]
fn an_empty_query_lists_filtered_items_newest_first() {
    let (c, _dir, replica) = loaded();
    for empty in ["", "   ", "\"\"", "* - : ( )"] {
        let hits = all_hits(
            &replica,
            &SearchQuery {
                filters: Filters {
                    tags: vec!["urgent".into()],
                    ..Filters::default()
                },
                ..text(empty)
            },
        );
        assert_eq!(uids(&hits), c.zephyr_urgent, "{empty:?}");
        let stamps: Vec<i64> = hits.iter().map(|h| c.seed(h.uid).updated_ms).collect();
        assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "newest first");
    }
    let page = replica.search(&text("")).expect("unfiltered");
    assert_eq!(page.hits.len(), 100);
    assert!(page.next_cursor.is_some());
}

/// Text that would be FTS5 syntax, or is huge, is only ever words: the
/// search answers, with hits or none, never an error.
#[test]
fn hostile_queries_never_fail() {
    let (c, _dir, replica) = loaded();
    let huge: String = (0..10_240)
        .map(|i| ['"', '*', '(', 'a', ' ', ':', '-', 'é', '🎉', 'N'][i % 10])
        .collect();
    let hostile = [
        "\"",
        "\"\"",
        "\"\"\"",
        "*",
        "**",
        "NEAR(",
        "NEAR(zephyr budget, 2)",
        "-",
        "-zephyr",
        "a:b",
        "title:zephyr",
        "{title}: zephyr",
        "AND",
        "OR",
        "NOT",
        "zephyr AND",
        "AND zephyr",
        "zephyr OR budget",
        "zephyr NOT budget",
        ")",
        "(",
        "(zephyr",
        "^zephyr",
        "zephyr*",
        "+zephyr",
        "'",
        "'; DROP TABLE items; --",
        "%",
        "_",
        "\\",
        "\"unbalanced zephyr",
        "\u{0}",
        "\u{200B}",
        "\u{301}",
        &huge,
        &"zephyr ".repeat(2000),
    ];
    for q in hostile {
        let page = replica.search(&text(q));
        assert!(page.is_ok(), "{q:.40?}: {:?}", page.err());
    }
    // Operators are words: these still mean `zephyr`.
    let zephyr: BTreeSet<Uuid> = c.zephyr.iter().copied().collect();
    for q in [
        "zephyr*",
        "-zephyr",
        "+zephyr",
        "(zephyr",
        "^zephyr",
        "\"unbalanced zephyr",
    ] {
        let got = uids(&all_hits(&replica, &text(q)));
        if q.contains("unbalanced") {
            assert!(got.is_empty(), "a phrase no item holds");
        } else {
            assert_eq!(got, zephyr, "{q}");
        }
    }
    // The data survived the SQL-looking one.
    assert_eq!(uids(&all_hits(&replica, &text("zephyr"))), zephyr);
    // A bad cursor is the caller's error, not a search failure.
    let bad = SearchQuery {
        cursor: Some("garbage".into()),
        ..text("zephyr")
    };
    assert!(replica.search(&bad).is_err());
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// A word in more than a thousand items is ranked without bm25 (title
/// matches first, then the most recent), yet still finds every match exactly
/// once across pages, title matches before all others, and the others newest
/// first, each with a snippet around the word.
#[test]
fn a_broad_word_keeps_titles_first_and_every_match_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = Replica::open(&replica_path(dir.path(), &key()), &key()).expect("open");
    // 1,300 matches, 130 of them in titles (more than a page of 100, so
    // pages end inside the title matches and after them); notes and tasks
    // alternate, and so do two statuses.
    struct Match {
        n: u64,
        entity: &'static str,
        status: &'static str,
        titled: bool,
        item: Value,
    }
    let seed = |n: u64| {
        let uid = Uuid::from_u128(u128::from(n) + 1);
        let (title, body) = if n % 10 == 3 {
            (format!("ubiquitous title {n}"), "plain".to_owned())
        } else {
            (format!("note {n}"), "a ubiquitous body word".to_owned())
        };
        let entity = if n.is_multiple_of(2) {
            "notes"
        } else {
            "tasks"
        };
        let status = if n % 4 < 2 { "open" } else { "done" };
        let item = serde_json::json!({
            "uid": uid, "version": 1, "updatedAt": rfc3339(T0 + n as i64 * 1000),
            "payload": {"title": title, "content": body, "status": status}
        });
        Match {
            n,
            entity,
            status,
            titled: n % 10 == 3,
            item,
        }
    };
    let seeds: Vec<_> = (0..1_300).map(seed).collect();
    for entity in ["notes", "tasks"] {
        let items: Vec<Value> = seeds
            .iter()
            .filter(|s| s.entity == entity)
            .map(|s| s.item.clone())
            .collect();
        replica.apply(entity, &items).expect("apply");
    }
    // The ranked order: title matches newest first, then the rest newest
    // first; a filter keeps that order's subsequence.
    let expected = |keep: &dyn Fn(&Match) -> bool| -> Vec<Uuid> {
        let mut kept: Vec<_> = seeds.iter().filter(|s| keep(s)).collect();
        kept.sort_by_key(|s| (!s.titled, std::cmp::Reverse(s.n)));
        kept.iter()
            .map(|s| Uuid::from_u128(u128::from(s.n) + 1))
            .collect()
    };
    let order =
        |q: &SearchQuery| -> Vec<Uuid> { all_hits(&replica, q).iter().map(|h| h.uid).collect() };

    assert_eq!(
        order(&text("ubiquitous")),
        expected(&|_| true),
        "every match once, titles first"
    );
    let mut tasks = text("ubiquitous");
    tasks.entities = vec!["tasks".into()];
    assert_eq!(
        order(&tasks),
        expected(&|s| s.entity == "tasks"),
        "one entity"
    );
    // A word in 1,170 titles: the title matches are walked too.
    let mut in_titles: Vec<_> = seeds.iter().filter(|s| !s.titled).collect();
    in_titles.sort_by_key(|s| std::cmp::Reverse(s.n));
    let in_titles: Vec<Uuid> = in_titles
        .iter()
        .map(|s| Uuid::from_u128(u128::from(s.n) + 1))
        .collect();
    assert_eq!(order(&text("note")), in_titles, "many title matches");
    // As the service asks: every enabled entity named.
    let mut named = text("ubiquitous");
    named.entities = ["notes", "tasks", "comments", "chats", "chat_messages"]
        .map(String::from)
        .to_vec();
    assert_eq!(order(&named), expected(&|_| true), "every entity named");
    let mut recent = text("ubiquitous");
    recent.filters.updated_after = Some(T0 + 1_000 * 1000);
    assert_eq!(order(&recent), expected(&|s| s.n > 1_000), "a time bound");
    let mut open = text("ubiquitous");
    open.filters.status = Some("open".into());
    assert_eq!(
        order(&open),
        expected(&|s| s.status == "open"),
        "a status (ranked, not walked)"
    );

    let first = replica.search(&text("ubiquitous")).expect("search");
    assert!(
        first.hits[0].snippet.to_lowercase().contains("ubiquitous"),
        "{}",
        first.hits[0].snippet
    );
}

/// Informational, not asserted: search and newest-first listing over
/// 10,000 items. Run with `--nocapture` to see the numbers (build with
/// `--release` for representative ones).
#[test]
fn timings_over_ten_thousand_items() {
    let c = corpus(10_000);
    let (_dir, replica) = load(&c);
    // Listing: one entity of 10,000 items.
    let (_notes_dir, notes_only) = {
        let all_notes = Corpus {
            seeds: c
                .seeds
                .iter()
                .map(|s| Seed {
                    entity: "notes",
                    uid: s.uid,
                    updated_ms: s.updated_ms,
                    deleted: s.deleted,
                    payload: s.payload.clone(),
                })
                .take(10_000)
                .collect(),
            ..corpus(0)
        };
        load(&all_notes)
    };
    let notes = ListQuery {
        order: Order::Newest,
        limit: 50,
        ..ListQuery::default()
    };
    let time = |f: &dyn Fn()| {
        f(); // warm the statement cache and pages
        median(
            (0..25)
                .map(|_| {
                    let start = Instant::now();
                    f();
                    start.elapsed()
                })
                .collect(),
        )
    };
    let list = time(&|| {
        notes_only.list("notes", &notes).expect("list");
    });
    let mut page2 = notes.clone();
    page2.cursor = notes_only.list("notes", &notes).expect("list").next_cursor;
    let list_next = time(&|| {
        notes_only.list("notes", &page2).expect("list");
    });
    let search = |q: &'static str| {
        time(&|| {
            replica
                .search(&SearchQuery {
                    text: q.into(),
                    ..SearchQuery::default()
                })
                .expect("search");
        })
    };
    let path = replica.path().to_owned();
    let open = time(&|| {
        Replica::open(&path, &key()).expect("reopen");
    });
    let size_mb = replica.stats().expect("stats").size_bytes / 1_000_000;
    eprintln!(
        "replica timings (median of 25): open of the {size_mb} MB file (integrity check included): {open:?}; \
         newest-first list page of 50 of 10,000 notes: {list:?}, \
         its next page: {list_next:?}; over {} items of all entities, search (20 hits) `zephyr` (37 matches): {:?}, `budg` prefix: {:?}, \
         `lorem` (thousands of matches): {:?}, `\"quarterly review\"`: {:?}, `夜景` (substring scan): {:?}, \
         empty text + tag filter: {:?}",
        c.seeds.len(),
        search("zephyr"),
        search("budg"),
        search("lorem"),
        search("\"quarterly review\""),
        search("夜景"),
        time(&|| {
            replica
                .search(&SearchQuery {
                    filters: Filters {
                        tags: vec!["urgent".into()],
                        ..Filters::default()
                    },
                    ..SearchQuery::default()
                })
                .expect("search");
        }),
    );
}
