//! ListObjects and ListObjectsV2 as S3 pages them: keys in byte order, keys
//! that share a prefix up to the delimiter rolled into one common prefix,
//! at most `max_keys` entries (keys and prefixes together) per page, the next
//! page after a marker.

/// One page of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Page {
    /// Indexes of the keys listed.
    pub keys: Vec<usize>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix of the page: where the next page starts.
    pub last: Option<String>,
}

/// Lists `keys` (sorted, without their bucket) under `prefix`, after `marker`.
pub(crate) fn page(
    keys: &[&str],
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<&str>,
    max_keys: usize,
) -> Page {
    let mut out = Page::default();
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let start = match marker {
        Some(marker) => keys.partition_point(|k| *k <= marker),
        None => keys.partition_point(|k| *k < prefix),
    };
    let mut count = 0usize;
    for (index, key) in keys.iter().enumerate().skip(start) {
        let Some(rest) = key.strip_prefix(prefix) else {
            if *key > prefix {
                break; // sorted: no later key has the prefix
            }
            continue;
        };
        let entry = match delimiter.and_then(|d| rest.find(d).map(|at| at + d.len())) {
            Some(end) => {
                let common = &key[..prefix.len() + end];
                if out.common_prefixes.last().is_some_and(|c| c == common)
                    || marker.is_some_and(|m| common <= m)
                {
                    continue;
                }
                Entry::Prefix(common)
            }
            None => Entry::Key(index),
        };
        if count == max_keys {
            out.truncated = true;
            break;
        }
        count += 1;
        match entry {
            Entry::Prefix(common) => {
                out.common_prefixes.push(common.to_string());
                out.last = Some(common.to_string());
            }
            Entry::Key(index) => {
                out.keys.push(index);
                out.last = Some(key.to_string());
            }
        }
    }
    out
}

enum Entry<'a> {
    Key(usize),
    Prefix(&'a str),
}

/// `text` as S3 gives names with `encoding-type=url`: every byte but the
/// unreserved ones and `/` percent-encoded.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(keys: &[&str], page: &Page) -> (Vec<String>, Vec<String>) {
        (
            page.keys.iter().map(|i| keys[*i].to_string()).collect(),
            page.common_prefixes.clone(),
        )
    }

    const KEYS: &[&str] = &["a", "b/1", "b/2", "b/c/3", "c", "d/1", "e"];

    #[test]
    fn a_delimiter_rolls_up_folders() {
        let page = page(KEYS, "", Some("/"), None, 1000);
        assert_eq!(
            listed(KEYS, &page),
            (
                vec!["a".into(), "c".into(), "e".into()],
                vec!["b/".into(), "d/".into()]
            )
        );
        assert!(!page.truncated);
        let page = super::page(KEYS, "b/", Some("/"), None, 1000);
        assert_eq!(
            listed(KEYS, &page),
            (vec!["b/1".into(), "b/2".into()], vec!["b/c/".into()])
        );
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        for max in 1..=7 {
            for delimiter in [None, Some("/")] {
                let whole = page(KEYS, "", delimiter, None, 1000);
                let mut got = (Vec::new(), Vec::new());
                let mut marker: Option<String> = None;
                for _ in 0..20 {
                    let p = page(KEYS, "", delimiter, marker.as_deref(), max);
                    let (k, c) = listed(KEYS, &p);
                    assert!(k.len() + c.len() <= max);
                    got.0.extend(k);
                    got.1.extend(c);
                    if !p.truncated {
                        break;
                    }
                    marker = p.last;
                }
                assert_eq!(got, listed(KEYS, &whole), "max {max} {delimiter:?}");
            }
        }
    }

    #[test]
    fn prefix_and_start_after_narrow_the_listing() {
        let p = page(KEYS, "b/", None, Some("b/1"), 1000);
        assert_eq!(listed(KEYS, &p).0, vec!["b/2", "b/c/3"]);
        let p = page(KEYS, "zz", None, None, 1000);
        assert_eq!(p, Page::default());
        let p = page(KEYS, "", None, None, 0);
        assert!(p.keys.is_empty() && p.truncated);
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }
}
