//! What a failed pass means, with what to do: rclone's error (and the lines it logged) are
//! matched against the failures seen in the field, so the status says "the Shared Drive is
//! missing" instead of only "googleapi: Error 403".

/// The hint for rclone's error text `error`.
pub fn hint(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if has("storagequotaexceeded") || has("do not have storage quota") {
        "service accounts have no storage quota (L21): set sync.team_drive to a Shared Drive the service account is a member of"
    } else if has("failed to delete") {
        "rclone could not delete a file on the remote (the mirror's deletions stay within sync.max_delete per sync.delete_window); check that the account may delete in <root>"
    } else if has("duplicate object") {
        "two copies of a file exist on the remote; podstack runs `rclone dedupe --dedupe-mode newest` on the folder"
    } else if unreachable(error) {
        "the remote cannot be reached; podstack retries with a backoff, and nothing on the volume is lost meanwhile"
    } else if has("401")
        || has("403")
        || has("unauthorized")
        || has("forbidden")
        || has("invalid_grant")
        || has("permission")
    {
        "the remote refused the credentials: check the secrets given as RUNPOD_SECRET_RCLONE_* or PODSTACK_SYNC_* and the account's access to the folder"
    } else if has("409") || has("conflict") || has("read-only") || has("read only") {
        "the remote refused to write (409 Conflict or read-only): the account may only read the folder, or the remote is read-only; give it write access to <root>"
    } else if has("_config") || has("_filter") {
        "rclone refused a setting from [sync] (e.g. bwlimit); check the stack manifest"
    } else {
        "the sync log (GET /api/logs?service=sync) has rclone's own lines about it"
    }
}

/// Whether rclone's error `error` says the remote cannot be reached (as opposed to a remote
/// that answered and refused).
pub fn unreachable(error: &str) -> bool {
    let lower = error.to_ascii_lowercase();
    [
        "connection refused",
        "no such host",
        "timeout",
        "connection reset",
        "eof",
        "network is unreachable",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_failures_get_their_own_hint() {
        let cases = [
            (
                "googleapi: Error 403: Service Accounts do not have storage quota. Leverage shared drives, storageQuotaExceeded",
                "sync.team_drive",
            ),
            ("failed to delete 2 files", "may delete"),
            (
                "couldn't list files: Propfind \"http://127.0.0.1:1/x\": dial tcp 127.0.0.1:1: connect: connection refused",
                "cannot be reached",
            ),
            ("401 Unauthorized", "credentials"),
            (
                "failed to make directory: Put \"http://127.0.0.1:9/x/a.png\": 409 Conflict",
                "read-only",
            ),
            ("something new", "sync log"),
        ];
        for (error, expected) in cases {
            assert!(hint(error).contains(expected), "{error}: {}", hint(error));
        }
    }
}
