//! Routes: a path prefix (`/hello`), or a host and a path prefix (`api.example.com/`).
//! A request goes to the route with the longest matching prefix among those for its
//! `Host` and those for any host; on a tie the route for its host wins.

use std::fmt;

/// A route of `serve.toml` (`route = "/hello"`) or `--app /hello=BUNDLE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The host it is for (lower case, no port); `None` is any host.
    pub host: Option<String>,
    /// The path prefix, starting with `/`, without a trailing `/` unless it is `/`.
    pub prefix: String,
}

impl Route {
    /// Parses `/prefix` or `host/prefix`.
    pub fn parse(text: &str) -> Result<Route, String> {
        let (host, path) = match text.find('/') {
            Some(0) => (None, text),
            Some(i) => (Some(&text[..i]), &text[i..]),
            None => {
                return Err(format!(
                    "`{text}` is neither a path prefix (`/hello`) nor a host route \
                     (`hello.example.com/`)"
                ));
            }
        };
        if let Some(h) = host
            && (h.contains(char::is_whitespace) || h.contains(['?', '#', '*']))
        {
            return Err(format!("`{text}`: `{h}` is not a host name"));
        }
        if path.contains(['?', '#', '*']) || path.contains(char::is_whitespace) {
            return Err(format!(
                "`{text}`: a route is a plain path prefix (no `?`, `#`, `*` or spaces)"
            ));
        }
        let mut prefix = path.to_string();
        while prefix.len() > 1 && prefix.ends_with('/') {
            prefix.pop();
        }
        Ok(Route {
            host: host.map(|h| h.to_ascii_lowercase()),
            prefix,
        })
    }

    /// Whether `path` is under this route's prefix (whole segments: `/hello` matches
    /// `/hello` and `/hello/x`, not `/hellothere`).
    pub fn matches_path(&self, path: &str) -> bool {
        if self.prefix == "/" {
            return true;
        }
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether this route is for `host` (a `Host` header, port stripped, any case).
    pub fn matches_host(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(mine), Some(theirs)) => mine.eq_ignore_ascii_case(strip_port(theirs)),
            (Some(_), None) => false,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(h) if self.prefix == "/" => write!(f, "{h}/"),
            Some(h) => write!(f, "{h}{}", self.prefix),
            None => f.write_str(&self.prefix),
        }
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [::1]:8080
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The index of the route `host` and `path` go to, if any.
pub fn best<'a>(
    routes: impl IntoIterator<Item = &'a Route>,
    host: Option<&str>,
    path: &str,
) -> Option<usize> {
    let mut best: Option<(usize, (usize, bool))> = None;
    for (i, route) in routes.into_iter().enumerate() {
        if !route.matches_host(host) || !route.matches_path(path) {
            continue;
        }
        let rank = (route.prefix.len(), route.host.is_some());
        if best.is_none_or(|(_, b)| rank > b) {
            best = Some((i, rank));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(list: &[&str]) -> Vec<Route> {
        list.iter().map(|r| Route::parse(r).unwrap()).collect()
    }

    #[test]
    fn longest_prefix_then_host() {
        let r = routes(&["/", "/hello", "/hello/world", "api.example.com/", "/api"]);
        let at = |host: Option<&str>, path: &str| best(&r, host, path).map(|i| r[i].to_string());
        assert_eq!(at(None, "/hello/x").as_deref(), Some("/hello"));
        assert_eq!(at(None, "/hello").as_deref(), Some("/hello"));
        assert_eq!(at(None, "/hellothere").as_deref(), Some("/"));
        assert_eq!(at(None, "/hello/world/1").as_deref(), Some("/hello/world"));
        assert_eq!(
            at(Some("API.example.com:8080"), "/x").as_deref(),
            Some("api.example.com/")
        );
        assert_eq!(
            at(Some("api.example.com"), "/api/v1").as_deref(),
            Some("/api")
        );
        assert_eq!(at(Some("other"), "/x").as_deref(), Some("/"));
        let r = routes(&["/hello"]);
        assert_eq!(best(&r, None, "/"), None);
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(Route::parse("/hello/").unwrap().to_string(), "/hello");
        assert_eq!(
            Route::parse("A.example.com/").unwrap().to_string(),
            "a.example.com/"
        );
        assert_eq!(Route::parse("a.example.com/x").unwrap().prefix, "/x");
        assert!(Route::parse("hello").is_err());
        assert!(Route::parse("/a?b").is_err());
    }
}
