//! A branch or tag of a git repository to the commit it points at, with `git ls-remote`: the
//! peeled commit of an annotated tag, else the branch or tag itself.

use tokio::process::Command;

/// Why a ref could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("{repo} cannot be reached: {reason}")]
    Unreachable { repo: String, reason: String },
    #[error("{repo} has no branch or tag `{git_ref}`")]
    NoSuchRef { repo: String, git_ref: String },
    #[error("`git ls-remote {repo}` failed: {reason}")]
    Failed { repo: String, reason: String },
}

/// The commit `git_ref` points at in `repo`.
pub async fn resolve(repo: &str, git_ref: &str) -> Result<String, GitError> {
    // An annotated tag's commit is listed only when its peeled name is asked for too.
    let peeled = format!("{git_ref}^{{}}");
    let output = Command::new("git")
        .args(["ls-remote", "--", repo, git_ref, &peeled])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|err| GitError::Failed {
            repo: repo.to_owned(),
            reason: format!("cannot run git: {err} (is git installed?)"),
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let reason = stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("no message")
            .trim()
            .to_owned();
        let unreachable = [
            "Could not resolve host",
            "Failed to connect",
            "Connection refused",
            "Connection timed out",
            "Network is unreachable",
        ]
        .iter()
        .any(|sign| stderr.contains(sign));
        return Err(if unreachable {
            GitError::Unreachable {
                repo: repo.to_owned(),
                reason,
            }
        } else {
            GitError::Failed {
                repo: repo.to_owned(),
                reason,
            }
        });
    }
    pick(&String::from_utf8_lossy(&output.stdout), git_ref).ok_or_else(|| GitError::NoSuchRef {
        repo: repo.to_owned(),
        git_ref: git_ref.to_owned(),
    })
}

/// The commit for `git_ref` in `ls-remote` output (`<sha>\t<ref name>` lines).
fn pick(listing: &str, git_ref: &str) -> Option<String> {
    let refs: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, listed)| *listed == name)
            .map(|(sha, _)| (*sha).to_owned())
    };
    find(&format!("refs/tags/{git_ref}^{{}}"))
        .or_else(|| find(&format!("refs/tags/{git_ref}")))
        .or_else(|| find(&format!("refs/heads/{git_ref}")))
        .or_else(|| find(git_ref))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_the_commit_an_annotated_tag_points_at() {
        let listing = "1111111111111111111111111111111111111111\trefs/heads/master\n\
                       2222222222222222222222222222222222222222\trefs/tags/v0.3.64\n\
                       3333333333333333333333333333333333333333\trefs/tags/v0.3.64^{}\n";
        assert_eq!(pick(listing, "v0.3.64").unwrap(), "3".repeat(40));
        assert_eq!(pick(listing, "master").unwrap(), "1".repeat(40));
        assert_eq!(pick(listing, "main"), None);
    }

    #[tokio::test]
    async fn resolves_branches_and_tags_of_a_real_repository() {
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "init.defaultBranch=main",
                ])
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(status.status.success(), "{status:?}");
            String::from_utf8(status.stdout).unwrap().trim().to_owned()
        };
        git(&["init", "-q"]);
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        git(&["tag", "-a", "v1", "-m", "release"]);
        let first = git(&["rev-parse", "HEAD"]);
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        let second = git(&["rev-parse", "HEAD"]);
        let repo = dir.path().to_str().unwrap();
        assert_eq!(resolve(repo, "main").await.unwrap(), second);
        assert_eq!(resolve(repo, "v1").await.unwrap(), first);
        assert_eq!(
            resolve(repo, "nope").await.unwrap_err(),
            GitError::NoSuchRef {
                repo: repo.to_owned(),
                git_ref: "nope".to_owned()
            }
        );
        let unreachable = resolve("https://podstack-no-such-host.invalid/x", "main")
            .await
            .unwrap_err();
        assert!(
            matches!(unreachable, GitError::Unreachable { .. }),
            "{unreachable:?}"
        );
    }
}
