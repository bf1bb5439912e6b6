//! Property tests (bounded fuzzing) of everything that parses untrusted input: query strings,
//! invalidation patterns, generations and sealed cache entries. Run by `cargo test`.

use contact_list_cache_core::cache_key::{kv_list_key, redis_list_key};
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::invalidation::KeyPattern;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::sealed::Keyring;
use proptest::prelude::*;

const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
const WS: &str = "668953d2-25f2-b4fd-7d72-1e8cf024a277";
const ME: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";
const KNOWN_FIELDS: [&str; 10] = ["page", "pageSize", "filter", "search", "assignedTo", "sortBy", "sortOrder", "columnId", "boardId", "cursor"];

/// Query strings built from the API's parameter names and hostile values.
fn query_strings() -> impl Strategy<Value = String> {
    let name = prop_oneof![Just("page"), Just("pageSize"), Just("filter"), Just("search"), Just("assignedTo"), Just("sortBy"), Just("sortOrder"), Just("columnId"), Just("x")];
    let value = prop_oneof![
        "[0-9]{0,6}",
        Just("open".to_owned()),
        Just("name".to_owned()),
        Just("asc".to_owned()),
        Just(ME.to_owned()),
        ".{0,120}",
        "[%,().*\"'\\\\_a-zA-Z0-9 ]{0,40}",
    ];
    prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (n, v) in pairs {
            out.append_pair(n, &v);
        }
        out.finish()
    })
}

fn ids() -> (WorkspaceId, UserId) {
    (WorkspaceId::parse("ws", WS).unwrap(), UserId::parse("sub", ME).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_query_parser_never_panics_and_names_a_known_field(raw in ".{0,200}", qs in query_strings()) {
        for input in [raw.as_str(), qs.as_str()] {
            if let Err(err) = ContactQuery::parse(BOARD, input) {
                prop_assert!(KNOWN_FIELDS.contains(&err.field.as_str()), "{}", err.field);
            }
        }
    }

    #[test]
    fn canonical_query_strings_parse_back_to_the_same_query(qs in query_strings()) {
        if let Ok(query) = ContactQuery::parse(BOARD, &qs) {
            let again = ContactQuery::parse(BOARD, &query.canonical_query_string()).unwrap();
            prop_assert_eq!(again, query);
        }
    }

    #[test]
    fn keys_are_bounded_deterministic_and_never_hold_the_search_term(qs in query_strings(), term in "[a-zA-Z]{4,40}") {
        let (ws, me) = ids();
        let with_term = format!("{qs}&search={term}");
        if let Ok(query) = ContactQuery::parse(BOARD, &with_term) {
            let generation = Generation::new(u64::MAX, u32::MAX);
            let kv = kv_list_key(&ws, &me, &query, &generation);
            let redis = redis_list_key(&ws, &me, &query, &generation);
            prop_assert!(kv.len() <= 512 && redis.len() <= 512);
            prop_assert_eq!(&kv, &kv_list_key(&ws, &me, &query, &generation));
            if let Some(search) = &query.search {
                prop_assert!(!kv.contains(search.as_str()) && !redis.contains(search.as_str()));
            }
            let prefix = format!("contacts:{{{WS}}}:");
            let tagged = redis.starts_with(&prefix);
            prop_assert!(tagged);
        }
    }

    #[test]
    fn accepted_patterns_stay_inside_one_workspace(
        random in "(contacts|counts|other):[{]?[0-9a-f*-]{0,40}[}]?[:*a-z_{}?\\[\\]\\\\-]{0,30}",
        namespace in "(contacts|counts)",
        braced in any::<bool>(),
        tail in "[:*a-z_{}?\\[\\]\\\\.-]{0,30}",
    ) {
        let workspace = if braced { format!("{{{WS}}}") } else { WS.to_owned() };
        let near_valid = format!("{namespace}:{workspace}{tail}");
        for raw in [random, near_valid] {
            let Ok(pattern) = KeyPattern::parse(&raw) else { continue };
            let tag = format!("{{{}}}", pattern.workspace);
            let (contacts, counts) = (format!("contacts:{tag}"), format!("counts:{tag}"));
            let inside = pattern.glob.starts_with(&contacts) || pattern.glob.starts_with(&counts);
            prop_assert!(inside);
            let tail = pattern.glob.split_once(&tag).unwrap().1;
            let plain_glob = !tail.contains(['?', '[', ']', '\\', '{', '}']);
            prop_assert!(plain_glob);
        }
    }

    #[test]
    fn arbitrary_sealed_entries_never_open_and_never_panic(raw in ".{0,200}", forged in "v1\\.k1\\.[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,80}") {
        let keys = Keyring::parse("K", "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        prop_assert!(keys.open("k", &raw).is_err());
        prop_assert!(keys.open("k", &forged).is_err());
    }

    #[test]
    fn generations_parse_only_their_alphabet(raw in ".{0,50}") {
        if let Ok(generation) = Generation::parse("g", &raw) {
            prop_assert!(generation.as_str().bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-'));
        }
    }
}
