//! The query parser: defaults, every parameter, and every way a parameter can be wrong.
use super::*;

const BOARD: &str = "b6495e04-5abb-e13f-48ee-5435e1e75895";
const USER: &str = "d6d77053-92bc-7af6-3332-8bea8c4c6904";

fn parse(query: &str) -> Result<ContactQuery, QueryError> {
    ContactQuery::parse(BOARD, query)
}

#[test]
fn defaults_follow_the_spec() {
    let q = parse("").unwrap();
    assert_eq!(q.page.get(), 1);
    assert_eq!(q.page_size.get(), 50);
    assert_eq!(q.filter, Filter::All);
    assert_eq!(q.sort_by, SortField::CreatedAt);
    assert_eq!(q.sort_order, SortOrder::Desc);
    assert_eq!((&q.search, &q.assigned_to, &q.column_id), (&None, &None, &None));
    assert_eq!(q.offset(), 0);
}

#[test]
fn every_parameter_is_read() {
    let q = parse(&format!(
        "page=3&pageSize=20&filter=high_priority&search=%20Ann+Lee%20&assignedTo={USER}\
         &sortBy=name&sortOrder=asc&columnId={}",
        USER.to_uppercase()
    ))
    .unwrap();
    assert_eq!(q.page.get(), 3);
    assert_eq!(q.offset(), 40);
    assert_eq!(q.page_size.get(), 20);
    assert_eq!(q.filter, Filter::HighPriority);
    assert_eq!(q.search.unwrap().as_str(), "Ann Lee");
    assert_eq!(q.assigned_to.unwrap().as_str(), USER);
    assert_eq!(q.sort_by, SortField::Name);
    assert_eq!(q.sort_order, SortOrder::Asc);
    assert_eq!(q.column_id.unwrap().as_str(), USER, "UUIDs are lowercased");
}

#[test]
fn every_invalid_value_names_its_parameter() {
    let cases = [
        ("page=0", "page"),
        ("page=-1", "page"),
        ("page=10001", "page"),
        ("page=1.5", "page"),
        ("pageSize=0", "pageSize"),
        ("pageSize=101", "pageSize"),
        ("pageSize=abc", "pageSize"),
        ("filter=everything", "filter"),
        ("filter=OPEN", "filter"),
        ("sortBy=email", "sortBy"),
        ("sortOrder=up", "sortOrder"),
        ("assignedTo=bob", "assignedTo"),
        ("columnId=col_1", "columnId"),
        ("search=%00", "search"),
        ("page=1&page=2", "page"),
    ];
    for (query, field) in cases {
        assert_eq!(parse(query).unwrap_err().field, field, "{query}");
    }
    let long = format!("search={}", "a".repeat(101));
    assert_eq!(parse(&long).unwrap_err().field, "search");
    assert_eq!(ContactQuery::parse("board_123", "").unwrap_err().field, "boardId");
}

#[test]
fn empty_values_mean_the_default_and_unknown_parameters_are_ignored() {
    assert_eq!(parse("page=&filter=&search=+&utm_source=x&_t=1").unwrap(), parse("").unwrap());
}

#[test]
fn parameter_order_does_not_matter() {
    let a = parse("filter=open&page=2&sortBy=name").unwrap();
    let b = parse("sortBy=name&page=2&filter=open").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.canonical_query_string(), b.canonical_query_string());
    assert_eq!(
        a.canonical_query_string(),
        "page=2&pageSize=50&filter=open&sortBy=name&sortOrder=desc"
    );
}

#[test]
fn filters_mean_what_the_spec_says() {
    let me = UserId::parse("sub", USER).unwrap();
    assert_eq!(Filter::All.conditions(&me), vec![Condition::Archived(false)]);
    assert_eq!(Filter::Archived.conditions(&me), vec![Condition::Archived(true)]);
    assert_eq!(
        Filter::AssignedToMe.conditions(&me),
        vec![Condition::Archived(false), Condition::AssignedTo(me.clone())]
    );
    assert!(Filter::ALL.iter().all(|f| f.conditions(&me).contains(&Condition::Archived(*f == Filter::Archived))));
    let user_relative: Vec<_> = Filter::ALL.into_iter().filter(|f| f.is_user_relative()).collect();
    assert_eq!(user_relative, vec![Filter::AssignedToMe, Filter::Favorites]);
    for filter in Filter::ALL {
        assert_eq!(Filter::parse(filter.as_str()), Ok(filter));
    }
}

#[test]
fn extra_parameters_add_conditions() {
    let me = UserId::parse("sub", USER).unwrap();
    let q = parse(&format!("filter=open&assignedTo={USER}&columnId={USER}&search=x")).unwrap();
    assert_eq!(q.conditions(&me).len(), 5);
}

#[test]
fn a_short_ascii_term_needs_its_lower_cased_pairs() {
    let grams = |term: &str| SearchTerm::parse(term).unwrap().unwrap().short_grams();
    assert_eq!(grams("A"), Some(vec!["a".to_owned()]));
    assert_eq!(grams(" Zq "), Some(vec!["zq".to_owned()]), "trimmed first");
    assert_eq!(grams("a-a-"), Some(vec!["-a".to_owned(), "a-".to_owned()]));
    assert_eq!(grams("abc"), None, "a trigram");
    assert_eq!(grams("é"), None);
    assert_eq!(grams("zé"), None);
}

proptest::proptest! {
    /// Every pair is in the lower-cased term, so a contact holding the term holds them all.
    #[test]
    fn short_grams_are_pieces_of_the_lower_cased_term(term in "[ -~]{1,8}") {
        if let Ok(Some(parsed)) = SearchTerm::parse(&term) {
            let lower = parsed.as_str().to_ascii_lowercase();
            if let Some(grams) = parsed.short_grams() {
                proptest::prop_assert!(!grams.is_empty());
                for gram in grams {
                    proptest::prop_assert!(lower.contains(&gram) && (1..=2).contains(&gram.len()));
                    proptest::prop_assert!(gram.len() == 2 || lower.len() == 1);
                }
            } else {
                proptest::prop_assert!(parsed.has_trigram());
            }
        }
    }
}
