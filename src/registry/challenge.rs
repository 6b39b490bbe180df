//! The `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` challenge of a 401
//! from a registry (Docker Hub answers every anonymous request so): where to get a pull token
//! and for what. Text from the registry; parsed here before anything is sent to the realm.

use url::Url;

/// A token service a registry sends to, and what to ask it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: Url,
    pub service: Option<String>,
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// Reads a challenge; the reason when it is not a bearer challenge with an http(s) realm.
    pub fn parse(header: &str) -> Result<Self, String> {
        let Some(parameters) = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, rest)| rest)
        else {
            return Err(format!("it asks for `{header}`, not a bearer token"));
        };
        let parameters = auth_parameters(parameters);
        let find = |key: &str| {
            parameters
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
                .map(|(_, value)| value.clone())
        };
        let realm = find("realm").ok_or("its challenge names no realm")?;
        let realm = Url::parse(&realm)
            .ok()
            .filter(|url| matches!(url.scheme(), "https" | "http"))
            .ok_or_else(|| format!("its token realm `{realm}` is not an http(s) URL"))?;
        Ok(Self {
            realm,
            service: find("service"),
            scope: find("scope"),
        })
    }

    /// The token request: the realm with `scope` (the challenge's, else pull of `repository`)
    /// and `service` in its query.
    pub fn token_url(&self, repository: &str) -> Url {
        let mut url = self.realm.clone();
        let scope = self
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{repository}:pull"));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("scope", &scope);
            if let Some(service) = &self.service {
                query.append_pair("service", service);
            }
        }
        url
    }
}

/// `key="value", key=token, ...` (RFC 7235): a quoted value may hold commas, as a scope of
/// several actions (`repository:x:pull,push`) does.
fn auth_parameters(text: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let mut rest = text.trim_start();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remainder) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = at + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            }
        };
        parameters.push((key, value));
        rest = remainder.trim_start().trim_start_matches(',');
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_hubs_challenge() {
        let challenge = BearerChallenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
        )
        .unwrap();
        assert_eq!(
            challenge.token_url("library/debian").as_str(),
            "https://auth.docker.io/token?scope=repository%3Alibrary%2Fdebian%3Apull&service=registry.docker.io"
        );
    }

    #[test]
    fn a_quoted_scope_keeps_its_commas() {
        let challenge = BearerChallenge::parse(
            r#"Bearer realm="http://127.0.0.1:1/token", scope="repository:a:pull,push",service=reg"#,
        )
        .unwrap();
        assert_eq!(challenge.scope.as_deref(), Some("repository:a:pull,push"));
        assert_eq!(challenge.service.as_deref(), Some("reg"));
        // Without a scope, the pull of the repository asked for.
        let plain = BearerChallenge::parse(r#"bearer realm="https://t.example/t""#).unwrap();
        assert_eq!(
            plain.token_url("studio/base").as_str(),
            "https://t.example/t?scope=repository%3Astudio%2Fbase%3Apull"
        );
    }

    #[test]
    fn refuses_what_is_not_a_bearer_challenge() {
        assert_eq!(
            BearerChallenge::parse(r#"Basic realm="registry""#).unwrap_err(),
            r#"it asks for `Basic realm="registry"`, not a bearer token"#
        );
        assert_eq!(
            BearerChallenge::parse(r#"Bearer service="x""#).unwrap_err(),
            "its challenge names no realm"
        );
        assert_eq!(
            BearerChallenge::parse(r#"Bearer realm="file:///etc/passwd""#).unwrap_err(),
            "its token realm `file:///etc/passwd` is not an http(s) URL"
        );
    }
}
